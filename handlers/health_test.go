package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	if r := a.do(req{method: "GET", path: "/healthz"}); r.status != http.StatusOK {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
	r := a.do(req{method: "GET", path: "/readyz"})
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"ready"`) {
		t.Errorf("readyz: %d %s", r.status, r.body)
	}

	// A schema behind the binary is not ready.
	a.exec("", `DELETE FROM fieldseal_migrations.goose_db_version WHERE version_id = (SELECT max(version_id) FROM fieldseal_migrations.goose_db_version)`)
	r = a.do(req{method: "GET", path: "/readyz"})
	wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
}

func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	database := newDB(t)
	a := startAPI(t, database, apitest.Options{})
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})

	// Forbid new connections and end the open ones: the database is gone.
	a.exec("postgres", `ALTER DATABASE `+pgx.Identifier{database.Name}.Sanitize()+` ALLOW_CONNECTIONS false`)
	a.exec("postgres", `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = $1`, database.Name)
	t.Cleanup(func() {
		a.exec("postgres", `ALTER DATABASE `+pgx.Identifier{database.Name}.Sanitize()+` ALLOW_CONNECTIONS true`)
	})
	for _, path := range []string{"/v1/records", "/readyz"} {
		r := a.do(req{method: "GET", path: path, token: tok, key: key})
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
		if strings.Contains(string(r.body), "SQLSTATE") || strings.Contains(string(r.body), "connect") {
			t.Errorf("503 shows internals: %s", r.body)
		}
	}
	if r := a.do(req{method: "GET", path: "/healthz"}); r.status != http.StatusOK {
		t.Errorf("healthz with the database down: %d; want 200 (liveness is not readiness)", r.status)
	}
}

func TestInternalErrorShowsNoDetail(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})
	// A DBA's mistake: the app role loses a privilege it needs.
	a.exec("", `REVOKE SELECT ON fieldseal.records FROM fieldseal_app`)
	r := a.do(req{method: "GET", path: "/v1/records", token: tok, key: key})
	wantProblem(t, r, http.StatusInternalServerError, "internal")
	for _, leak := range []string{"permission", "fieldseal.records", "SQLSTATE", "42501"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("500 body shows %q: %s", leak, r.body)
		}
	}
	// The log line with the same request id holds the detail.
	id := r.header.Get("X-Request-Id")
	found := false
	for _, line := range strings.Split(a.logBuf.String(), "\n") {
		if strings.Contains(line, id) && strings.Contains(line, "permission denied") {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line with request id %s and the cause; log:\n%s", id, a.logBuf.String())
	}
}
