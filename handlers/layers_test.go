package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
	"github.com/fieldseal/fieldseal/migrations"
)

// TestDataWrittenBeforeKeysInLayers: a database written in the old form
// (a key verifier, records and tags under the client key itself, an
// audit trail, an export), migrated to keys in layers, serves every
// subject as before with no re-encryption; a rotation moves a subject to
// the new form, and an export made before the migration still imports.
func TestDataWrittenBeforeKeysInLayers(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	ctx := context.Background()
	migrateTo := func(version int64) {
		t.Helper()
		m, err := migrations.Open(ctx, database.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if version == 0 {
			_, err = m.Up(ctx)
		} else {
			_, err = m.DownTo(ctx, version)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	migrateTo(22)
	key, key2 := newKey(t), newKey(t)
	// What the code of migration 00022's time wrote, for olivia and quinn:
	// a verifier, six records in a searchable collection with their tags.
	conn, err := pgx.Connect(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, subject := range []string{"olivia", "quinn"} {
		for _, stmt := range []string{
			`INSERT INTO fieldseal.subjects (subject, key_verifier) VALUES ($1, fieldseal.new_key_verifier($2))`,
			`INSERT INTO fieldseal.collections (subject, collection, searchable, updated_at) SELECT $1, 'p', '{"e":{}}', now() WHERE $2 <> ''`,
			`INSERT INTO fieldseal.records (subject, id, collection, public, secret)
			 SELECT $1, gen_random_uuid(), 'p', jsonb_build_object('i', i),
			        fieldseal.pgp_sym_encrypt(jsonb_build_object('e', 'e' || i || '@example.org')::text, $2, 'cipher-algo=aes256, s2k-mode=1')
			 FROM generate_series(1, 6) AS i`,
			`INSERT INTO fieldseal.search_tags (subject, record_id, field, tag)
			 SELECT r.subject, r.id, t.field, t.tag FROM fieldseal.records r
			 JOIN fieldseal.collections c ON c.subject = r.subject AND c.collection = r.collection
			 CROSS JOIN LATERAL fieldseal.search_tags_in($2, r.subject, r.collection, c.searchable,
			                                             fieldseal.pgp_sym_decrypt(r.secret, $2)::jsonb) t
			 WHERE r.subject = $1`,
		} {
			if _, err := conn.Exec(ctx, stmt, subject, key); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		pgtest.AppendAudit(t, database.AdminURL, subject, 2)
	}
	// An export of olivia's records as GET /v1/export wrote it then.
	var exported string
	if err := conn.QueryRow(ctx, `SELECT string_agg(json_build_object('id', id, 'collection', collection, 'public', public, 'version', version,
		'created_at', created_at, 'updated_at', updated_at, 'ciphertext', fieldseal.armor(secret))::text, E'\n' ORDER BY id)
		FROM fieldseal.records WHERE subject = 'olivia'`).Scan(&exported); err != nil {
		t.Fatal(err)
	}
	migrateTo(0)
	if n := query[int](t, conn, `SELECT count(*)::int FROM fieldseal.subjects WHERE wrapped_key IS NULL AND key_verifier IS NOT NULL`); n != 2 {
		t.Fatalf("%d subjects of the old form after the migration; want 2", n)
	}

	a := startAPI(t, database, apitest.Options{})
	olivia, quinn, pam := a.token("olivia", allScopes), a.token("quinn", allScopes), a.token("pam", allScopes)
	found := func(tok, k, email string) []string {
		t.Helper()
		return secrets(t, a.search(tok, k, "collection=p&secret.e="+email), "e")
	}
	// Served as before: reads, lists, searches on the old tags, a wrong
	// key refused, a new record written in the subject's old form.
	if got := found(olivia, key, "e3@example.org"); len(got) != 1 {
		t.Errorf("search of a record written before the migration: %q", got)
	}
	if r := a.do(req{method: "GET", path: "/v1/records?collection=p", token: olivia, key: key}); r.status != http.StatusOK || strings.Count(string(r.body), "@example.org") != 6 {
		t.Errorf("list: %d %.300s", r.status, r.body)
	}
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records?collection=p", token: olivia, key: key2}), http.StatusForbidden, "wrong_key")
	id := a.create(olivia, key, map[string]any{"collection": "p", "secret": map[string]any{"e": "new@example.org"}})
	if r := a.do(req{method: "GET", path: "/v1/records/" + id, token: olivia, key: key}); !strings.Contains(string(r.body), "new@example.org") {
		t.Errorf("a record written after the migration: %d %s", r.status, r.body)
	}
	if got := found(olivia, key, "new@example.org"); len(got) != 1 {
		t.Errorf("search of a record written after the migration: %q", got)
	}
	if n := query[int](t, conn, `SELECT count(*)::int FROM fieldseal.records WHERE subject = 'olivia' AND key_version = 0`); n != 7 {
		t.Errorf("%d of olivia's records in the old form; want all 7 (nothing re-encrypted before her rotation)", n)
	}
	// The export made before the migration imports into a new subject,
	// in the new form.
	imp := func(tok, k string) response {
		return a.do(req{method: "POST", path: "/v1/import", token: tok, key: k, body: exported, header: map[string]string{"Content-Type": "application/x-ndjson"}})
	}
	if r := a.setSearchable(pam, key, "p", `{"searchable":{"e":{}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	if r := imp(pam, key); r.status != http.StatusOK || !strings.Contains(string(r.body), `"imported":6`) {
		t.Errorf("import of an export made before the migration: %d %s", r.status, r.body)
	}
	if got := found(pam, key, "e5@example.org"); len(got) != 1 {
		t.Errorf("an imported record, searched for: %q", got)
	}
	if n := query[int](t, conn, `SELECT count(*)::int FROM fieldseal.records WHERE subject = 'pam' AND key_version = 1`); n != 6 {
		t.Errorf("%d of pam's imported records under data keys; want 6", n)
	}

	// A rotation moves olivia to keys in layers: every record and tag
	// under her new data keys, her verifier gone.
	r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: olivia, key: key, header: map[string]string{"New-Encryption-Key": key2}})
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"rotated":7}` {
		t.Fatalf("rotation of a subject of the old form: %d %s; want every record re-encrypted", r.status, r.body)
	}
	if n := query[int](t, conn, `SELECT count(*)::int FROM fieldseal.subjects WHERE subject = 'olivia' AND wrapped_key IS NOT NULL AND key_verifier IS NULL`); n != 1 {
		t.Error("olivia's row is not in the new form after her rotation")
	}
	if n := query[int](t, conn, `SELECT count(*)::int FROM fieldseal.records WHERE subject = 'olivia' AND key_version = 1`); n != 7 {
		t.Errorf("%d of olivia's records under data keys; want 7", n)
	}
	if n := a.opening("olivia", key2); n != 7 {
		t.Errorf("%d of olivia's records open under her new key; want 7", n)
	}
	if got := found(olivia, key2, "e3@example.org"); len(got) != 1 {
		t.Errorf("search after the move: %q", got)
	}
	wantProblem(t, a.search(olivia, key, "collection=p&secret.e=e3@example.org"), http.StatusForbidden, "wrong_key")
	// Her next rotation is a rewrap.
	if r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: olivia, key: key2, header: map[string]string{"New-Encryption-Key": key}}); strings.TrimSpace(string(r.body)) != `{"rotated":0}` {
		t.Errorf("the second rotation: %d %s; want a rewrap", r.status, r.body)
	}
	// An explicit move under the same key (quinn): the export made
	// before still imports, the lines quinn has skipped.
	if r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: quinn, key: key, header: map[string]string{"New-Encryption-Key": key},
		body: map[string]any{"reencrypt": true}}); strings.TrimSpace(string(r.body)) != `{"rotated":6}` {
		t.Errorf("quinn's move under the same key: %d %s", r.status, r.body)
	}
	if r := imp(quinn, key); r.status != http.StatusOK || !strings.Contains(string(r.body), `"imported":6`) {
		t.Errorf("import into quinn after the move: %d %s", r.status, r.body)
	}
	if got := found(quinn, key, "e2@example.org"); len(got) != 2 {
		t.Errorf("quinn's own and the imported record: %q", got)
	}
	// The trail of before and after holds.
	rep, err := openAdmin(t, database.AdminURL).VerifyAuditTrail(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 {
		t.Errorf("audit verify across the migration: %+v", rep.Breaks)
	}
}

func query[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	v, err := pgx.CollectExactlyOneRow(must(conn.Query(context.Background(), sql, args...)), pgx.RowTo[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
