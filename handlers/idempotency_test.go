package handlers_test

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestIdempotentCreate(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	const secret = "idempotent-secret-marker"
	body := `{"collection":"c","public":{"n":1},"secret":{"s":"` + secret + `"}}`
	create := func(token, key, idemKey, body string) response {
		return a.do(req{method: "POST", path: "/v1/records", token: token, key: key, body: body,
			header: map[string]string{"Idempotency-Key": idemKey}})
	}
	records := func() int { return a.count(`SELECT count(*) FROM fieldseal.records WHERE subject = 'alice'`) }

	first := create(tok, key, "k-1", body)
	if first.status != http.StatusCreated || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first create: %d, replayed %q: %s", first.status, first.header.Get("Idempotent-Replayed"), first.body)
	}
	again := create(tok, key, `"k-1"`, body) // the draft's quoted form is the same key
	if again.status != first.status || !bytes.Equal(again.body, first.body) ||
		again.header.Get("Location") != first.header.Get("Location") || again.header.Get("ETag") != first.header.Get("ETag") {
		t.Errorf("retry answered %d %s (Location %q); want the first answer again: %d %s (Location %q)",
			again.status, again.body, again.header.Get("Location"), first.status, first.body, first.header.Get("Location"))
	}
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a replayed answer lacks Idempotent-Replayed: true")
	}
	if n := records(); n != 1 {
		t.Errorf("%d records after a create and its retry; want 1", n)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE subject = 'alice' AND action = 'record.create'`); n != 1 {
		t.Errorf("%d create entries in the audit trail; want 1 (the retry ran nothing)", n)
	}

	// The same key for another request: another body, or the same body
	// under another data key.
	wantProblem(t, create(tok, key, "k-1", strings.Replace(body, `"n":1`, `"n":2`, 1)), http.StatusUnprocessableEntity, "idempotency_key_reused")
	wantProblem(t, create(tok, newKey(t), "k-1", body), http.StatusUnprocessableEntity, "idempotency_key_reused")
	if n := a.count(`SELECT count(*) FROM fieldseal.key_failures`); n != 0 {
		t.Errorf("a reused key was counted as a wrong key (%d failures)", n)
	}
	// Keys are per subject.
	if r := create(a.token("bob", allScopes), newKey(t), "k-1", body); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("bob's request with alice's Idempotency-Key: %d, replayed %q; want a create of his own", r.status, r.header.Get("Idempotent-Replayed"))
	}
	// After 24 hours the key is free again.
	a.exec("", `UPDATE fieldseal.idempotency_keys SET created_at = now() - interval '25 hours' WHERE subject = 'alice'`)
	if r := create(tok, key, "k-1", body); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" || bytes.Equal(r.body, first.body) {
		t.Errorf("a key 25 hours old: %d, replayed %q; want a new create", r.status, r.header.Get("Idempotent-Replayed"))
	}
	if n := records(); n != 2 {
		t.Errorf("%d records; want 2", n)
	}

	// Malformed keys: 400 and nothing written.
	for _, bad := range []string{"", strings.Repeat("x", 256), "has space", "naïve", `""`} {
		wantProblem(t, create(tok, key, bad, body), http.StatusBadRequest, "invalid_request")
	}
	if n := records(); n != 2 {
		t.Errorf("%d records after malformed keys; want 2", n)
	}

	// What is stored: a fingerprint that is not a plain hash of the body,
	// and an answer without the secret.
	rows := a.adminQuery(`SELECT fingerprint, body FROM fieldseal.idempotency_keys`)
	defer rows.Close()
	for rows.Next() {
		var fp, answer []byte
		if err := rows.Scan(&fp, &answer); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256([]byte(body)); bytes.Equal(fp, sum[:]) {
			t.Error("the stored fingerprint is the body's SHA-256: anyone with the database could test guesses of it")
		}
		if bytes.Contains(answer, []byte(secret)) {
			t.Error("a stored answer holds the secret")
		}
	}
}

// Concurrent duplicates: one runs, the others wait for it and answer the
// same, or say it is still running; never a second record.
func TestIdempotentConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}}) // registers the key
	body := `{"collection":"c","secret":{"s":1}}`
	var wg sync.WaitGroup
	answers := make([]response, 8)
	for i := range answers {
		wg.Go(func() {
			answers[i] = a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: body,
				header: map[string]string{"Idempotency-Key": "same"}})
		})
	}
	wg.Wait()
	var created []byte
	for _, r := range answers {
		switch r.status {
		case http.StatusCreated:
			if created != nil && !bytes.Equal(created, r.body) {
				t.Errorf("two different creates answered for one key: %s and %s", created, r.body)
			}
			created = r.body
		case http.StatusConflict:
			wantProblem(t, r, http.StatusConflict, "idempotency_key_in_use")
		default:
			t.Errorf("a concurrent duplicate answered %d: %s", r.status, r.body)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.records`); n != 2 {
		t.Errorf("%d records; want 2 (one before, one for the key)", n)
	}
}

func TestIdempotentRotate(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, oldKey, newK := a.token("alice", allScopes), newKey(t), newKey(t)
	for range 3 {
		a.create(tok, oldKey, map[string]any{"collection": "c", "secret": map[string]any{"x": 1}})
	}
	rotate := func(next string, body ...any) response {
		r := req{method: "POST", path: "/v1/keys/rotate", token: tok, key: oldKey,
			header: map[string]string{"New-Encryption-Key": next, "Idempotency-Key": "rot-1"}, body: map[string]any{"reencrypt": true}}
		if len(body) > 0 {
			r.body = body[0]
		}
		return a.do(r)
	}
	first := rotate(newK)
	if first.status != http.StatusOK || string(first.body) != "{\"rotated\":3}\n" {
		t.Fatalf("rotation: %d %s", first.status, first.body)
	}
	// The retry runs nothing: run again, it would find the old key wrong.
	again := rotate(newK)
	if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retried rotation: %d %s (replayed %q); want the first answer again", again.status, again.body, again.header.Get("Idempotent-Replayed"))
	}
	// A retry that names another new key is another request: were it
	// answered 200, the client would keep a key that opens nothing.
	wantProblem(t, rotate(newKey(t)), http.StatusUnprocessableEntity, "idempotency_key_reused")
	wantProblem(t, rotate(newK, map[string]any{"reencrypt": false}), http.StatusUnprocessableEntity, "idempotency_key_reused")
	if r := a.do(req{method: "POST", path: "/v1/keys/verify", token: tok, key: newK}); r.status != http.StatusNoContent {
		t.Errorf("after the rotation and its retries the new key verifies %d; want 204", r.status)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE action = 'key.rotate'`); n != 1 {
		t.Errorf("%d rotation entries; want 1", n)
	}
}

// An import retried with its Idempotency-Key gets the first answer (not
// "all skipped"); the key with another body is refused.
func TestIdempotentImport(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	alice, bob, key := a.token("alice", allScopes), a.token("bob", allScopes), newKey(t)
	for range 3 {
		a.create(alice, key, map[string]any{"collection": "c", "secret": map[string]any{"x": 1}})
	}
	ex := a.do(req{method: "GET", path: "/v1/export", token: alice})
	imp := func(body string) response {
		return a.do(req{method: "POST", path: "/v1/import", token: bob, key: key, body: body,
			header: map[string]string{"Content-Type": "application/x-ndjson", "Idempotency-Key": "imp-1"}})
	}
	first := imp(string(ex.body))
	if first.status != http.StatusOK || string(first.body) != "{\"imported\":3,\"skipped\":0}\n" {
		t.Fatalf("import: %d %s", first.status, first.body)
	}
	again := imp(string(ex.body))
	if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retried import: %d %s (replayed %q); want the first answer again", again.status, again.body, again.header.Get("Idempotent-Replayed"))
	}
	lines := strings.SplitAfter(string(ex.body), "\n")
	wantProblem(t, imp(lines[0]), http.StatusUnprocessableEntity, "idempotency_key_reused")
	if n := a.count(`SELECT count(*) FROM fieldseal.records WHERE subject = 'bob'`); n != 3 {
		t.Errorf("bob has %d records; want 3", n)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE subject = 'bob' AND action = 'records.import'`); n != 1 {
		t.Errorf("%d import entries; want 1", n)
	}
}
