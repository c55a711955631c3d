package handlers_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// scenarioUse is what serviceScenario sent, and the subject keys it made
// (wrapped, with the client key that opens each): for checks of the logs.
type scenarioUse struct {
	keys, tokens, secrets []string
	wrapped               [][2]string
}

// subjectKeys is every subject key the scenario's subjects had, and the
// data keys of their collections, in base64: none may reach a log.
func (u scenarioUse) subjectKeys(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, w := range u.wrapped {
		message, err := base64.StdEncoding.DecodeString(w[0])
		if err != nil {
			t.Fatal(err)
		}
		sk := gpgDecrypt(t, string(message), w[1])
		out = append(out, base64.StdEncoding.EncodeToString([]byte(sk)))
		for _, collection := range []string{"notes", "b"} {
			out = append(out, dataKey(t, w[0], w[1], collection, 1))
		}
	}
	return out
}

// serviceScenario sends, as alice, bob and carol, a request of every kind
// whose statements differ between one PostgreSQL and a Citus coordinator
// (db/dialect.go) and checks each answer: reads and lists, a replace, a
// batch create, tagging on write and on PUT collection, searches, a
// rotation (records re-encrypted, tags computed again), an import, and
// audit reading. TestServiceOnCitus runs it on a cluster;
// TestCitusFormsOnOnePostgreSQL runs Citus's forms on one PostgreSQL.
func serviceScenario(t *testing.T, a *api) scenarioUse {
	t.Helper()
	alice, bob := a.token("alice", allScopes), a.token("bob", allScopes)
	key, key2, key3, wrong := newKey(t), newKey(t), newKey(t), newKey(t)
	secrets := []string{"citus-secret-one", "citus-secret-two", "citus-secret-three", "citus-secret-four"}

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
	wrapped := [][2]string{{a.subjectKey("alice"), key}}
	// Rotation: the subject key rewrapped on the shard (the trigger
	// checks the old key), the old key refused; then, under the same key,
	// the subject's keys replaced and every record re-encrypted there.
	if r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: alice, key: key, header: map[string]string{"New-Encryption-Key": key3}}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"rotated":0`) {
		t.Errorf("rotate: %d %.300s; want the subject key rewrapped, no record re-encrypted", r.status, r.body)
	}
	if r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: alice, key: key3, header: map[string]string{"New-Encryption-Key": key3},
		body: map[string]any{"reencrypt": true}}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"rotated":5`) {
		t.Errorf("rotate with reencrypt: %d %.300s; want 5 records re-encrypted", r.status, r.body)
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

	if r := a.do(req{method: "GET", path: "/v1/audit/events?subject=alice", token: a.token("dba", "audit:read")}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"record.read"`) {
		t.Errorf("audit events: %d %.300s", r.status, r.body)
	}
	wrapped = append(wrapped, [2]string{a.subjectKey("alice"), key3}, [2]string{a.subjectKey("bob"), key2}, [2]string{a.subjectKey("carol"), key3})
	return scenarioUse{keys: []string{key, key2, key3, wrong}, tokens: []string{alice, bob, carol}, secrets: secrets, wrapped: wrapped}
}

// Citus's forms of every write (the split writes, the paged rotation, SET
// LOCAL settings, statements bound to their subject, the throttle's
// answer heard apart) run on one PostgreSQL too: make test runs them here,
// so that a break in them shows without a cluster.
func TestCitusFormsOnOnePostgreSQL(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	a := startAPI(t, database, apitest.Options{CitusForms: true})
	serviceScenario(t, a)
	rep, err := openAdmin(t, database.AdminURL).VerifyAuditTrail(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Subjects != 3 || rep.Entries < 15 {
		t.Errorf("audit verify after Citus's forms: %+v; want an intact trail of 3 subjects", rep)
	}
	// A damaged record stops the paged re-encryption and is named.
	tok, key := a.token("dave", allScopes), newKey(t)
	good := a.create(tok, key, `{"collection":"c","secret":{"n":1}}`)
	bad := a.create(tok, key, `{"collection":"c","secret":{"n":2}}`)
	a.exec("", `UPDATE fieldseal.records SET secret = overlay(secret PLACING decode(lpad(to_hex(get_byte(secret, 40) # 1), 2, '0'), 'hex') FROM 41 FOR 1) WHERE id = $1`, bad)
	rotate := a.do(req{method: "POST", path: "/v1/keys/rotate", token: tok, key: key, header: map[string]string{"New-Encryption-Key": newKey(t)},
		body: map[string]any{"reencrypt": true}})
	wantProblem(t, rotate, http.StatusInternalServerError, "corrupt_record")
	if !strings.Contains(string(rotate.body), bad) {
		t.Errorf("the paged rotation's refusal does not name the damaged record: %s", rotate.body)
	}
	if r := a.do(req{method: "GET", path: "/v1/records/" + good, token: tok, key: key}); r.status != http.StatusOK {
		t.Errorf("after the refused rotation the old key reads %d; want 200 (nothing changed)", r.status)
	}
}
