package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/internal/pgtest"
)

func TestTokenRefusalsAreCountedByReason(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(t, vars)
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
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(m, tok[len(tok)-20:]) || strings.Contains(m, "alice") {
		t.Error("/metrics holds a token or a subject")
	}
}
