package handlers_test

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// TestNoTraceInAnyLog runs traffic over every endpoint, errors included,
// against a PostgreSQL that logs every statement, every duration and every
// failing statement, then searches PostgreSQL's log and fieldseal's log for
// every key (base64, and hex of both the key bytes and the passphrase),
// every token and every secret value.
func TestNoTraceInAnyLog(t *testing.T) {
	t.Parallel()
	database, cluster, _ := pgtest.NewCluster(t, map[string]string{
		"log_statement": "all", "log_min_duration_statement": "0", "log_min_error_statement": "error",
	})
	a := startAPI(t, database, apitest.Options{MaxBody: 2048, Throttle: db.Throttle{TokenLimit: 2, SubjectLimit: 4, Window: time.Minute}})
	tok, key, key2, wrong := a.token("alice", allScopes), newKey(t), newKey(t), newKey(t)
	secrets := []string{"notrace-secret-one", "notrace-secret-two", "notrace-secret-three"}
	keys := []string{key, key2, wrong}
	tokens := []string{tok}

	id := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"v": secrets[0]}})
	calls := []req{
		{method: "GET", path: "/v1/records/" + id, key: key},
		{method: "GET", path: "/v1/records/" + id},
		{method: "GET", path: "/v1/records?limit=5", key: key},
		{method: "PUT", path: "/v1/records/" + id, key: key, body: map[string]any{"collection": "c", "secret": map[string]any{"v": secrets[1]}}},
		{method: "PUT", path: "/v1/records/" + id, key: key, header: map[string]string{"If-Match": `"99"`}, body: map[string]any{"collection": "c", "secret": map[string]any{"v": secrets[2]}}},
		{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","secret":{"v":"` + secrets[2] + `"` + strings.Repeat(" ", 3000) + `}}`},
		{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","secret":{"v":"` + secrets[2] + `"},"extra":1}`},
		{method: "POST", path: "/v1/records", key: key[:40] + "====", body: map[string]any{"collection": "c", "secret": map[string]any{}}},
		{method: "POST", path: "/v1/keys/verify", key: key},
		{method: "GET", path: "/v1/records/" + id + "/ciphertext"},
		{method: "GET", path: "/v1/export"},
		{method: "POST", path: "/v1/keys/rotate", key: key, header: map[string]string{"New-Encryption-Key": key2}},
		{method: "GET", path: "/v1/records/" + id, key: wrong},
		{method: "POST", path: "/v1/keys/verify", key: wrong},
		{method: "GET", path: "/v1/records/" + id, key: key2}, // throttled: 429
		{method: "DELETE", path: "/v1/records/" + id},
	}
	for _, c := range calls {
		c.token = tok
		r := a.do(c)
		if r.status >= 500 {
			t.Errorf("%s %s: %d", c.method, c.path, r.status)
		}
	}
	// Refused tokens: a forged one and an expired one.
	forged := tok[:len(tok)-10] + "AAAAAAAAAA"
	expired, _ := a.idp.Mint("alice", audience, allScopes, time.Hour, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})
	tokens = append(tokens, forged, expired)
	for _, bad := range []string{forged, expired} {
		if r := a.do(req{method: "GET", path: "/v1/records", token: bad, key: key2}); r.status != http.StatusUnauthorized {
			t.Errorf("bad token: %d", r.status)
		}
	}
	cluster.Stop()

	pgLog, err := os.ReadFile(cluster.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pgLog), "pgp_sym_decrypt") || !strings.Contains(string(pgLog), "key_failures") {
		t.Fatal("PostgreSQL's log does not hold the traffic's statements: the test would prove nothing")
	}
	logs := map[string]string{"PostgreSQL's log": string(pgLog), "fieldseal's log": a.logBuf.String()}
	needles := traces(keys, tokens, secrets)
	for name, log := range logs {
		for _, n := range needles {
			if strings.Contains(log, n) {
				t.Errorf("%s holds %.20q…", name, n)
			}
		}
	}
}

// traces are what must never reach a log: every key in base64 and hex
// (of the key bytes and of the passphrase), every token and its
// signature's tail, every secret value.
func traces(keys, tokens, secrets []string) []string {
	var needles []string
	for _, k := range keys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		needles = append(needles, k, hex.EncodeToString(raw), hex.EncodeToString([]byte(k)))
	}
	for _, tk := range tokens {
		needles = append(needles, tk, tk[len(tk)-30:])
	}
	return append(needles, secrets...)
}
