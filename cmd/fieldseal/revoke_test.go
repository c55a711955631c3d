package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// status GETs /v1/records with token and returns the status and the
// WWW-Authenticate header.
func status(t *testing.T, url, token string) (int, string) {
	t.Helper()
	code, h, _ := call(t, "GET", url+"/v1/records", token, "", "", nil)
	return code, h.Get("WWW-Authenticate")
}

// refusedWithin waits until every server refuses token as revoked.
func refusedWithin(t *testing.T, d time.Duration, token string, servers ...*server) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, s := range servers {
		for {
			code, wa := status(t, s.URL, token)
			if code == http.StatusUnauthorized && strings.Contains(wa, "token revoked") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers %d (%s) %s after the revocation", s.URL, code, wa, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestRevocationReachesEveryInstance(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	one, two := startServer(t, vars), startServer(t, vars)
	for _, s := range []*server{one, two} {
		if code, _ := status(t, s.URL, tok); code != http.StatusOK {
			t.Fatalf("before revocation: %d", code)
		}
	}
	claims := decodeClaims(t, tok)
	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	if code, out, errOut := runCmd(t, context.Background(), admin, "token", "revoke", "--jti", claims["jti"].(string)); code != 0 {
		t.Fatalf("token revoke: exit %d: %s %s", code, out, errOut)
	}
	refusedWithin(t, time.Second, tok, one, two)

	// By subject: tokens issued before now are refused, later ones work.
	_, old := tokenSetupWith(t, vars, "bob", 0)
	if code, _ := status(t, one.URL, old); code != http.StatusOK {
		t.Fatalf("bob before revocation: %d", code)
	}
	if code, _, errOut := runCmd(t, context.Background(), admin, "token", "revoke", "--subject", "bob"); code != 0 {
		t.Fatalf("token revoke --subject: %s", errOut)
	}
	refusedWithin(t, time.Second, old, one, two)
	_, fresh := tokenSetupWith(t, vars, "bob", 2*time.Second)
	if code, wa := status(t, two.URL, fresh); code != http.StatusOK {
		t.Errorf("bob's token issued after the revocation: %d %s", code, wa)
	}

	// Expired revocations are pruned when an instance re-reads the list.
	conn, err := pgx.Connect(context.Background(), database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO fieldseal.revocations (jti, expires_at) VALUES ('old', now() - interval '1 hour');
		SELECT pg_notify('fieldseal_revocations', '')`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM fieldseal.revocations WHERE jti = 'old'`).Scan(&n)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired revocation was not pruned")
		}
	}
	// Usage errors.
	if code, _, _ := runCmd(t, context.Background(), admin, "token", "revoke"); code != 2 {
		t.Errorf("revoke with neither --jti nor --subject: exit %d; want 2", code)
	}
}
