//go:build citus

package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/apitest"
	"github.com/fieldseal/fieldseal/internal/pgtest"
)

// The service on a Citus coordinator and two workers (make test-citus):
// a subject's requests each run on the subject's shard alone (Citus's
// own counters of single- and multi-shard executions), a rotation too,
// no key, token or secret reaches any node's log with every statement
// logged, and the audit trail verifies.
func TestServiceOnCitus(t *testing.T) {
	if !pgtest.Citus() {
		t.Fatalf("this test needs a Citus cluster: run it with %s=1 (make test-citus does)", pgtest.CitusVariable)
	}
	database := pgtest.NewDB(t)
	a := startAPI(t, database, apitest.Options{Throttle: db.Throttle{TokenLimit: 5, SubjectLimit: 10, Window: time.Minute}})
	ctx := context.Background()
	counters := func() (single, multi int64) {
		t.Helper()
		conn, err := pgx.Connect(ctx, database.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT query_execution_single_shard, query_execution_multi_shard FROM citus_stat_counters WHERE name = current_database()`).Scan(&single, &multi); err != nil {
			t.Fatal(err)
		}
		return single, multi
	}

	alice, bob := a.token("alice", allScopes), a.token("bob", allScopes)
	key, key2, key3, wrong := newKey(t), newKey(t), newKey(t), newKey(t)
	secrets := []string{"citus-secret-one", "citus-secret-two", "citus-secret-three", "citus-secret-four"}
	single0, multi0 := counters()

	id := a.create(alice, key, map[string]any{"collection": "notes", "public": map[string]any{"n": 1}, "secret": map[string]any{"v": secrets[0]}})
	a.create(alice, key, map[string]any{"collection": "notes", "public": map[string]any{"n": 2}, "secret": map[string]any{"v": secrets[1]}})
	a.create(bob, key2, map[string]any{"collection": "notes", "secret": map[string]any{"v": "bob's"}})
	ok := []struct {
		r      req
		status int
		want   string // in the body
	}{
		{req{method: "GET", path: "/v1/records/" + id, key: key}, 200, secrets[0]},
		{req{method: "GET", path: "/v1/records/" + id}, 200, `"notes"`},
		{req{method: "GET", path: "/v1/records?limit=5", key: key}, 200, secrets[1]},
		{req{method: "GET", path: "/v1/records?collection=notes", key: key}, 200, secrets[0]},
		{req{method: "GET", path: "/v1/records?limit=5"}, 200, id},
		{req{method: "GET", path: "/v1/records?public.n=2", key: key}, 200, secrets[1]},
		{req{method: "PUT", path: "/v1/records/" + id, key: key, body: map[string]any{"collection": "notes", "secret": map[string]any{"v": secrets[2]}}}, 200, `"version":2`},
		{req{method: "PUT", path: "/v1/records/" + id, key: key, header: map[string]string{"If-Match": `"99"`}, body: map[string]any{"collection": "notes", "secret": map[string]any{}}}, 412, "version_conflict"},
		{req{method: "POST", path: "/v1/records", key: key, header: map[string]string{"Idempotency-Key": "k-1"}, body: map[string]any{"collection": "notes", "secret": map[string]any{}}}, 201, `"notes"`},
		{req{method: "POST", path: "/v1/records", key: key, header: map[string]string{"Idempotency-Key": "k-1"}, body: map[string]any{"collection": "notes", "secret": map[string]any{}}}, 201, `"notes"`},
		{req{method: "POST", path: "/v1/records/batch", key: key, body: map[string]any{"records": []any{map[string]any{"collection": "b", "secret": map[string]any{"i": 1}}, map[string]any{"collection": "b", "secret": map[string]any{"i": 2}}}}}, 201, `"b"`},
		{req{method: "POST", path: "/v1/keys/verify", key: key}, 204, ""},
		{req{method: "GET", path: "/v1/records/" + id, key: wrong}, 403, "wrong_key"},
		{req{method: "GET", path: "/v1/records/" + id + "/ciphertext"}, 200, "BEGIN PGP MESSAGE"},
		{req{method: "GET", path: "/v1/export"}, 200, id},
		{req{method: "GET", path: "/v1/collections/notes"}, 200, "notes"},
		// Searchable fields: the collection tagged on the shard, a new
		// record tagged as it is written, a search by its secret value.
		{req{method: "PUT", path: "/v1/collections/notes", key: key, body: map[string]any{"searchable": map[string]any{"v": map[string]any{}}}}, 200, `"indexed":`},
		{req{method: "POST", path: "/v1/records", key: key, body: map[string]any{"collection": "notes", "secret": map[string]any{"v": secrets[3]}}}, 201, `"notes"`},
		{req{method: "GET", path: "/v1/records?collection=notes&secret.v=" + secrets[3], key: key}, 200, secrets[3]},
		{req{method: "GET", path: "/v1/records?collection=notes&secret.v=" + secrets[1], key: key}, 200, secrets[1]},
	}
	for _, c := range ok {
		c.r.token = alice
		r := a.do(c.r)
		if r.status != c.status || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s: %d %.300s; want %d with %q", c.r.method, c.r.path, r.status, r.body, c.status, c.want)
		}
	}
	if r := a.do(req{method: "GET", path: "/v1/records/" + id, token: bob, key: key2}); r.status != http.StatusNotFound {
		t.Errorf("bob reads alice's record: %d; want 404", r.status)
	}
	if r := a.do(req{method: "DELETE", path: "/v1/records/" + id, token: alice}); r.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	// Rotation: every record re-encrypted on the shard, the verifier
	// replaced there (the trigger checks the old key), the old key refused.
	if r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: alice, key: key, header: map[string]string{"New-Encryption-Key": key3}}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"rotated":5`) {
		t.Errorf("rotate: %d %.300s; want 5 records re-encrypted", r.status, r.body)
	}
	if r := a.do(req{method: "GET", path: "/v1/records?limit=10", token: alice, key: key3}); r.status != http.StatusOK || !strings.Contains(string(r.body), secrets[1]) {
		t.Errorf("after the rotation, the new key: %d %.300s", r.status, r.body)
	}
	if r := a.do(req{method: "GET", path: "/v1/records?limit=10", token: alice, key: key}); r.status != http.StatusForbidden {
		t.Errorf("after the rotation, the old key: %d %.300s; want 403", r.status, r.body)
	}
	if r := a.do(req{method: "GET", path: "/v1/records?collection=notes&secret.v=" + secrets[3], token: alice, key: key3}); r.status != http.StatusOK || !strings.Contains(string(r.body), secrets[3]) {
		t.Errorf("after the rotation, a search (tags computed again under the new key): %d %.300s", r.status, r.body)
	}
	// Import: alice's export into carol's shard, where the collection is
	// searchable: every record written, and tagged there; again, every
	// record skipped; under another key, nothing.
	carol := a.token("carol", allScopes)
	exported := a.do(req{method: "GET", path: "/v1/export", token: alice})
	lines := strings.Count(string(exported.body), "\n")
	if r := a.do(req{method: "PUT", path: "/v1/collections/notes", token: carol, key: key3, body: map[string]any{"searchable": map[string]any{"v": map[string]any{}}}}); r.status != http.StatusOK {
		t.Errorf("carol's collection: %d %.300s", r.status, r.body)
	}
	imp := func(key string) response {
		return a.do(req{method: "POST", path: "/v1/import", token: carol, key: key, body: string(exported.body), header: map[string]string{"Content-Type": "application/x-ndjson"}})
	}
	if r := imp(wrong); r.status != http.StatusForbidden || a.count(`SELECT count(*) FROM fieldseal.records WHERE subject = 'carol'`) != 0 {
		t.Errorf("an import under another key: %d %.300s; want 403 and nothing written", r.status, r.body)
	}
	if r := imp(key3); r.status != http.StatusOK || !strings.Contains(string(r.body), fmt.Sprintf(`{"imported":%d,"skipped":0}`, lines)) {
		t.Errorf("import: %d %.300s; want %d imported", r.status, r.body, lines)
	}
	if r := imp(key3); r.status != http.StatusOK || !strings.Contains(string(r.body), fmt.Sprintf(`{"imported":0,"skipped":%d}`, lines)) {
		t.Errorf("import again: %d %.300s; want %d skipped", r.status, r.body, lines)
	}
	if r := a.do(req{method: "GET", path: "/v1/records?collection=notes&secret.v=" + secrets[3], token: carol, key: key3}); r.status != http.StatusOK || !strings.Contains(string(r.body), secrets[3]) {
		t.Errorf("an imported record, searched for: %d %.300s", r.status, r.body)
	}

	// Every request above ran on its subject's shard alone.
	single1, multi1 := counters()
	if multi1 != multi0 || single1-single0 < 20 {
		t.Errorf("Citus ran %d multi-shard and %d single-shard statements for one subject's requests; want none and every one", multi1-multi0, single1-single0)
	}

	if r := a.do(req{method: "GET", path: "/v1/audit/events?subject=alice", token: a.token("dba", "audit:read")}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"record.read"`) {
		t.Errorf("audit events: %d %.300s", r.status, r.body)
	}
	// The grants report over HTTP (the app's role) says whether it
	// compared the workers.
	if r := a.do(req{method: "GET", path: "/v1/audit/grants", token: a.token("dba", "audit:read")}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"workers`) {
		t.Errorf("grants report on Citus: %d %.300s; want it to say what it checked on the workers", r.status, r.body)
	}
	rep, err := db.VerifyAuditTrail(ctx, database.AdminURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Subjects != 3 || rep.Entries < 15 {
		t.Errorf("audit verify on Citus: %+v; want an intact trail of 3 subjects", rep)
	}

	// No node logged a key, a token or a secret.
	needles := traces([]string{key, key2, key3, wrong}, []string{alice, bob, carol}, secrets)
	sawDecrypt := false
	for i, file := range pgtest.CitusNodeLogs() {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if i > 0 && strings.Contains(log, "decrypt_or_null(") {
			sawDecrypt = true
		}
		for _, n := range needles {
			if strings.Contains(log, n) {
				t.Errorf("node %d's log holds %.20q…", i, n)
			}
		}
	}
	if !sawDecrypt {
		t.Fatal("no worker's log holds a decrypting statement: the log check would prove nothing")
	}
}
