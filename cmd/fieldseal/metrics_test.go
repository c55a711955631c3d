package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	// The JWKS over HTTP, so that refreshes happen and are counted.
	jwks, _ := os.ReadFile(vars["FIELDSEAL_JWKS_FILE"])
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer idp.Close()
	delete(vars, "FIELDSEAL_JWKS_FILE")
	vars["FIELDSEAL_JWKS_URL"] = idp.URL + "/jwks.json"
	srv := startServer(t, vars)
	key := dataKey(t)
	send := func(method, path, k, body string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if k != "" {
			req.Header.Set("Encryption-Key", k)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("POST", "/v1/records", key, `{"collection":"c","secret":{}}`); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if code := send("GET", "/v1/records", dataKey(t), ""); code != http.StatusForbidden {
		t.Fatalf("wrong key: %d", code)
	}
	send("GET", "/v1/nothing/here-0192f3a4", "", "")
	forged := tok[:len(tok)-8] + "AAAAAAAA"
	for _, bad := range []string{"garbage", "garbage", forged} {
		if code, _ := status(t, srv.URL, bad); code != http.StatusUnauthorized {
			t.Fatalf("bad token: %d", code)
		}
	}
	if code, _ := status(t, srv.URL, tok); code != http.StatusOK {
		t.Fatalf("good token: %d", code)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(body)
	for _, want := range []string{
		`fieldseal_token_refusals_total{reason="malformed token"} 2`,
		`fieldseal_token_refusals_total{reason="bad signature"} 1`,
		`fieldseal_http_requests_total{code="",method="POST",route="/v1/records",status="201"} 1`,
		`fieldseal_http_requests_total{code="wrong_key",method="GET",route="/v1/records",status="403"} 1`,
		`fieldseal_http_requests_total{code="invalid_token",method="GET",route="/v1/records",status="401"} 3`,
		`fieldseal_http_request_duration_seconds_count{method="POST",route="/v1/records"} 1`,
		`fieldseal_wrong_key_refusals_total 1`,
		`fieldseal_audit_appends_total{action="record.create",outcome="ok"} 1`,
		`fieldseal_audit_appends_total{action="record.list",outcome="wrong_key"} 1`,
		`fieldseal_jwks_refreshes_total{result="ok",trigger="background"} 1`,
		`fieldseal_db_pool_max_connections`,
		`fieldseal_db_pool_acquires_total`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(m, tok[len(tok)-20:]) || strings.Contains(m, "alice") || strings.Contains(m, key) {
		t.Error("/metrics holds a token, a key or a subject")
	}
	if strings.Contains(m, "here-0192f3a4") {
		t.Error("an unknown path became a label value")
	}
}
