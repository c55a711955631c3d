package handlers_test

import (
	"fmt"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

// opening counts subject's records that open under client key k, through
// the keys in layers (the subject's row, then each record's data key).
func (a *api) opening(subject, k string) int {
	a.t.Helper()
	return a.count(`SELECT count(*)::int FROM fieldseal.records r JOIN fieldseal.subjects s ON s.subject = r.subject
		WHERE r.subject = $2 AND fieldseal.decrypt_or_null(r.secret,
			fieldseal.record_key(fieldseal.open_subject(s.wrapped_key, s.key_verifier, $1), $1, r.collection, r.key_version)) IS NOT NULL`, k, subject)
}

// subjectKey is subject's row's wrapped subject key.
func (a *api) subjectKey(subject string) string {
	a.t.Helper()
	wrapped, err := pgx.CollectExactlyOneRow(a.adminQuery(`SELECT encode(wrapped_key, 'base64') FROM fieldseal.subjects WHERE subject = $1`, subject), pgx.RowTo[string])
	if err != nil {
		a.t.Fatal(err)
	}
	return wrapped
}

func TestVerifyKey(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	verify := func(k string) response {
		return a.do(req{method: "POST", path: "/v1/keys/verify", token: tok, key: k})
	}
	wantProblem(t, verify(key), http.StatusForbidden, "wrong_key") // no key registered yet
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})
	if r := verify(key); r.status != http.StatusNoContent {
		t.Errorf("verify with the current key: %d %s; want 204", r.status, r.body)
	}
	wantProblem(t, verify(newKey(t)), http.StatusForbidden, "wrong_key")
	wantProblem(t, verify(""), http.StatusBadRequest, "key_required")
	wantProblem(t, verify("short"), http.StatusBadRequest, "invalid_key")
	wantProblem(t, a.do(req{method: "POST", path: "/v1/keys/verify", token: a.token("alice", "records:write"), key: key}),
		http.StatusForbidden, "insufficient_scope")
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, oldKey, newK := a.token("alice", allScopes), newKey(t), newKey(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, a.create(tok, oldKey, map[string]any{"collection": "c", "secret": map[string]any{"n": i}}))
	}
	bobTok, bobKey := a.token("bob", allScopes), newKey(t)
	bobID := a.create(bobTok, bobKey, map[string]any{"collection": "c", "secret": map[string]any{"bob": true}})

	rotate := func(token, current, next string, body ...any) response {
		r := req{method: "POST", path: "/v1/keys/rotate", token: token, key: current, header: map[string]string{"New-Encryption-Key": next}}
		if len(body) > 0 {
			r.body = body[0]
		}
		return a.do(r)
	}
	// Refusals change nothing.
	for _, tc := range []struct {
		name          string
		token         string
		current, next string
		status        int
		code          string
	}{
		{"wrong current key", tok, newKey(t), newK, 403, "wrong_key"},
		{"new equals current", tok, oldKey, oldKey, 400, "invalid_request"},
		{"malformed new key", tok, oldKey, "not-a-key", 400, "invalid_key"},
		{"missing new key", tok, oldKey, "", 400, "key_required"},
		{"missing current key", tok, "", newK, 400, "key_required"},
		{"without keys:rotate", a.token("alice", "records:read records:write"), oldKey, newK, 403, "insufficient_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, rotate(tc.token, tc.current, tc.next), tc.status, tc.code)
		})
	}
	wantProblem(t, rotate(tok, oldKey, newK, map[string]any{"reencrypt": "yes"}), 400, "invalid_request")
	wantProblem(t, rotate(tok, oldKey, newK, map[string]any{"reencrypt": true, "other": 1}), 400, "invalid_request")
	if n := a.opening("alice", oldKey); n != 3 {
		t.Fatalf("after refused rotations, %d of alice's records open with the old key; want 3", n)
	}

	// A rotation rewraps the subject key: no record is re-encrypted.
	wrapped := a.subjectKey("alice")
	stored := a.count(`SELECT count(*)::int FROM fieldseal.records WHERE subject = 'alice' AND key_version = 1`)
	secrets := a.count(`SELECT hashtext(string_agg(encode(secret, 'hex'), ',' ORDER BY id))::int FROM fieldseal.records WHERE subject = 'alice'`)
	r := rotate(tok, oldKey, newK)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"rotated":0}` {
		t.Fatalf("rotate: %d %s; want 200 {\"rotated\":0}", r.status, r.body)
	}
	if a.subjectKey("alice") == wrapped || stored != 3 ||
		a.count(`SELECT hashtext(string_agg(encode(secret, 'hex'), ',' ORDER BY id))::int FROM fieldseal.records WHERE subject = 'alice'`) != secrets {
		t.Error("a rotation should rewrap the subject key and leave every record as it was")
	}
	// Every record opens under the new key; the old key opens nothing.
	for i, id := range ids {
		r := a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: newK})
		if !strings.Contains(string(r.body), fmt.Sprintf(`"secret":{"n":%d}`, i)) {
			t.Errorf("record %d under the new key: %d %s", i, r.status, r.body)
		}
		wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: oldKey}), 403, "wrong_key")
	}
	if r := a.do(req{method: "POST", path: "/v1/keys/verify", token: tok, key: newK}); r.status != http.StatusNoContent {
		t.Errorf("verify with the new key after rotation: %d", r.status)
	}
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records", token: tok, key: oldKey,
		body: map[string]any{"collection": "c", "secret": map[string]any{}}}), 403, "wrong_key")
	if n, old := a.opening("alice", newK), a.opening("alice", oldKey); n != 3 || old != 0 {
		t.Errorf("%d of alice's records open with the new key, %d with the old; want 3 and 0", n, old)
	}
	// With reencrypt, the subject's keys are replaced and every record
	// re-encrypted: under the same client key too (for a database copy
	// believed leaked while the client key is not).
	for _, next := range []string{newK, ""} {
		current := newK
		if next == "" {
			current, next = newK, newKey(t)
		}
		before := a.subjectKey("alice")
		if r := rotate(tok, current, next, map[string]any{"reencrypt": true}); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"rotated":3}` {
			t.Fatalf("rotate with reencrypt: %d %s; want 200 {\"rotated\":3}", r.status, r.body)
		}
		if a.subjectKey("alice") == before {
			t.Error("a rotation with reencrypt kept the subject key")
		}
		if n := a.opening("alice", next); n != 3 {
			t.Errorf("after a rotation with reencrypt, %d of alice's records open with the new key; want 3", n)
		}
		newK = next
	}
	// Versions are unchanged (the content is), so If-Match keeps working.
	if r := a.do(req{method: "GET", path: "/v1/records/" + ids[0], token: tok}); r.header.Get("ETag") != `"1"` {
		t.Errorf("ETag after rotation = %s; want \"1\"", r.header.Get("ETag"))
	}
	// Bob is untouched.
	if r := a.do(req{method: "GET", path: "/v1/records/" + bobID, token: bobTok, key: bobKey}); !strings.Contains(string(r.body), `"bob":true`) {
		t.Errorf("bob's record after alice's rotation: %d %s", r.status, r.body)
	}
	// A subject with nothing to rotate.
	wantProblem(t, rotate(a.token("carol", allScopes), newKey(t), newKey(t)), 403, "wrong_key")
	// The keys reached no log line.
	for _, k := range []string{oldKey, newK, wrapped} {
		if strings.Contains(a.logBuf.String(), k) {
			t.Error("the server log holds a key")
		}
	}
}

// TestWritesRacingRotation fires creates under the old key while a long
// rotation (with reencrypt) runs: each either lands before the rotation (and is re-encrypted
// by it) or waits and is refused; once the rotation commits, no record is
// under the old key.
func TestWritesRacingRotation(t *testing.T) {
	t.Parallel()
	// A throttle that 20 refusals do not trip: when the rotation wins every
	// race, the default's 10 wrong keys a token would turn the rest to 429.
	a := startAPI(t, newDB(t), apitest.Options{Throttle: db.Throttle{TokenLimit: 50, SubjectLimit: 50, Window: time.Minute}})
	tok, oldKey, newK := a.token("alice", allScopes), newKey(t), newKey(t)
	a.create(tok, oldKey, map[string]any{"collection": "c", "secret": map[string]any{}})
	a.exec("", `INSERT INTO fieldseal.records (subject, id, collection, public, secret, key_version)
		SELECT 'alice', gen_random_uuid(), 'c', '{}',
		       fieldseal.pgp_sym_encrypt('{}', fieldseal.record_key(fieldseal.open_subject(s.wrapped_key, NULL, $1), $1, 'c', 1), 'cipher-algo=aes256, s2k-mode=1'), 1
		FROM fieldseal.subjects s CROSS JOIN generate_series(1, 8000) WHERE s.subject = 'alice'`, oldKey)

	// A long rotation: it replaces the subject's keys and re-encrypts.
	rotated := make(chan response, 1)
	go func() {
		rotated <- a.do(req{method: "POST", path: "/v1/keys/rotate", token: tok, key: oldKey, header: map[string]string{"New-Encryption-Key": newK},
			body: map[string]any{"reencrypt": true}})
	}()
	statuses := make(chan int, 20)
	for range 20 {
		go func() {
			statuses <- a.do(req{method: "POST", path: "/v1/records", token: tok, key: oldKey,
				body: map[string]any{"collection": "race", "secret": map[string]any{"late": true}}}).status
		}()
	}
	created := 0
	for range 20 {
		switch s := <-statuses; s {
		case http.StatusCreated:
			created++
		case http.StatusForbidden:
		default:
			t.Errorf("a racing create answered %d; want 201 or 403", s)
		}
	}
	if r := <-rotated; r.status != http.StatusOK {
		t.Fatalf("rotation: %d %s", r.status, r.body)
	}
	total := a.count(`SELECT count(*)::int FROM fieldseal.records WHERE subject = 'alice'`)
	if total != 8001+created {
		t.Errorf("%d records; want %d (8001 + %d racing creates that succeeded)", total, 8001+created, created)
	}
	if n := a.opening("alice", newK); n != total {
		t.Errorf("%d of %d records open under the new key after the rotation", n, total)
	}
	t.Logf("%d of 20 racing creates landed before the rotation, the rest were refused", created)
}
