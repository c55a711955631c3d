package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

func TestRecordLifecycle(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)

	// Create.
	r := a.do(req{method: "POST", path: "/v1/records", token: tok, key: key,
		body: map[string]any{"collection": "notes", "public": map[string]any{"title": "hello"}, "secret": map[string]any{"body": "s3cret"}}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d: %s", r.status, r.body)
	}
	created := r.json(t)
	id := created["id"].(string)
	if got, want := r.header.Get("Location"), "/v1/records/"+id; got != want {
		t.Errorf("Location = %q; want %q", got, want)
	}
	if got := r.header.Get("ETag"); got != `"1"` {
		t.Errorf("ETag = %q; want \"1\"", got)
	}
	if _, ok := created["secret"]; ok {
		t.Errorf("create response echoes the secret: %s", r.body)
	}

	// Read with the key: decrypted.
	r = a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: key})
	if r.status != http.StatusOK {
		t.Fatalf("get: status %d: %s", r.status, r.body)
	}
	got := r.json(t)
	if s, _ := json.Marshal(got["secret"]); string(s) != `{"body":"s3cret"}` {
		t.Errorf("secret = %s; want {\"body\":\"s3cret\"}", s)
	}
	if p, _ := json.Marshal(got["public"]); string(p) != `{"title":"hello"}` {
		t.Errorf("public = %s; want {\"title\":\"hello\"}", p)
	}
	if got["collection"] != "notes" || got["version"] != float64(1) || got["created_at"] == nil || got["updated_at"] == nil {
		t.Errorf("metadata = %v", got)
	}

	// Read without the key: metadata and public only.
	r = a.do(req{method: "GET", path: "/v1/records/" + id, token: tok})
	if r.status != http.StatusOK {
		t.Fatalf("get without key: status %d: %s", r.status, r.body)
	}
	if _, ok := r.json(t)["secret"]; ok || strings.Contains(string(r.body), "s3cret") {
		t.Errorf("a read without a key shows the secret: %s", r.body)
	}

	// Replace with the current ETag.
	r = a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: key, header: map[string]string{"If-Match": `"1"`},
		body: map[string]any{"collection": "notes", "public": map[string]any{"title": "v2"}, "secret": map[string]any{"body": "new"}}})
	if r.status != http.StatusOK {
		t.Fatalf("replace: status %d: %s", r.status, r.body)
	}
	if r.header.Get("ETag") != `"2"` || r.json(t)["version"] != float64(2) {
		t.Errorf("replace: ETag %q, body %s; want version 2", r.header.Get("ETag"), r.body)
	}
	r = a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: key})
	if !strings.Contains(string(r.body), `"secret":{"body":"new"}`) || !strings.Contains(string(r.body), `"title":"v2"`) {
		t.Errorf("after replace, get = %s", r.body)
	}

	// A stale If-Match is refused and changes nothing.
	r = a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: key, header: map[string]string{"If-Match": `"1"`},
		body: map[string]any{"collection": "notes", "secret": map[string]any{"body": "lost update"}}})
	wantProblem(t, r, http.StatusPreconditionFailed, "version_conflict")
	r = a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: key})
	if !strings.Contains(string(r.body), `"secret":{"body":"new"}`) {
		t.Errorf("a refused replace changed the record: %s", r.body)
	}

	// Delete with a stale If-Match is refused; without, it deletes.
	wantProblem(t, a.do(req{method: "DELETE", path: "/v1/records/" + id, token: tok, header: map[string]string{"If-Match": `"1"`}}),
		http.StatusPreconditionFailed, "version_conflict")
	r = a.do(req{method: "DELETE", path: "/v1/records/" + id, token: tok})
	if r.status != http.StatusNoContent {
		t.Fatalf("delete: status %d: %s", r.status, r.body)
	}
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id, token: tok}), http.StatusNotFound, "not_found")
	wantProblem(t, a.do(req{method: "DELETE", path: "/v1/records/" + id, token: tok}), http.StatusNotFound, "not_found")
	wantProblem(t, a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: key,
		body: map[string]any{"collection": "notes", "secret": map[string]any{}}}), http.StatusNotFound, "not_found")
}

func TestIfMatchForms(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	id := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})
	body := map[string]any{"collection": "c", "secret": map[string]any{}}
	for _, tc := range []struct {
		ifMatch string
		status  int
	}{
		{`W/"1"`, http.StatusPreconditionFailed}, // weak tags never match (strong comparison)
		{`"abc"`, http.StatusPreconditionFailed},
		{`"7", "1"`, http.StatusOK},
		{`*`, http.StatusOK},
		{`"3"`, http.StatusOK},
	} {
		r := a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: key, body: body, header: map[string]string{"If-Match": tc.ifMatch}})
		if r.status != tc.status {
			t.Errorf("If-Match %s: status %d; want %d (%s)", tc.ifMatch, r.status, tc.status, r.body)
		}
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	var ids []string
	for i := range 7 {
		coll := "even"
		if i%2 == 1 {
			coll = "odd"
		}
		ids = append(ids, a.create(tok, key, map[string]any{"collection": coll, "public": map[string]any{"n": i}, "secret": map[string]any{"n": i}}))
	}
	// Walk every page of 3, with the key.
	var seen []string
	path := "/v1/records?limit=3"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := a.do(req{method: "GET", path: path, token: tok, key: key})
		if r.status != http.StatusOK {
			t.Fatalf("list: status %d: %s", r.status, r.body)
		}
		if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
			t.Errorf("list: Content-Length %q for a body of %d bytes", cl, len(r.body))
		}
		var page struct {
			Items []struct {
				ID     string          `json:"id"`
				Secret json.RawMessage `json:"secret"`
				Public json.RawMessage `json:"public"`
			} `json:"items"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			seen = append(seen, it.ID)
			if string(it.Secret) != string(it.Public) {
				t.Errorf("item %s: secret %s; want %s decrypted", it.ID, it.Secret, it.Public)
			}
		}
		if page.Next == "" {
			break
		}
		path = "/v1/records?limit=3&after=" + page.Next
	}
	if fmt.Sprint(seen) != fmt.Sprint(ids) {
		t.Errorf("pages gave %v; want every record once in creation order %v", seen, ids)
	}

	// A collection filter, without the key: no secrets.
	r := a.do(req{method: "GET", path: "/v1/records?collection=odd", token: tok})
	var page struct {
		Items []map[string]any `json:"items"`
	}
	_ = json.Unmarshal(r.body, &page)
	if len(page.Items) != 3 {
		t.Errorf("collection=odd gave %d items; want 3: %s", len(page.Items), r.body)
	}
	for _, it := range page.Items {
		if it["collection"] != "odd" || it["secret"] != nil {
			t.Errorf("collection=odd item %v", it)
		}
	}

	// A subject that never wrote sees an empty list, with or without a key.
	other := a.token("bob", allScopes)
	for _, k := range []string{"", newKey(t)} {
		r := a.do(req{method: "GET", path: "/v1/records", token: other, key: k})
		if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"items":[]}` {
			t.Errorf("bob's list = %d %s; want 200 {\"items\":[]}", r.status, r.body)
		}
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	id := a.create(tok, key, map[string]any{"collection": "c", "public": map[string]any{"p": 1}, "secret": map[string]any{"s": "keep me"}})
	good := map[string]any{"collection": "c", "secret": map[string]any{"s": 1}}

	for _, tc := range []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"malformed JSON", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":`}, 400, "invalid_request"},
		{"not JSON", req{method: "POST", path: "/v1/records", key: key, body: `collection=c`}, 400, "invalid_request"},
		{"empty body", req{method: "POST", path: "/v1/records", key: key, body: ``}, 400, "invalid_request"},
		{"unknown field", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","secret":{},"owner":"bob"}`}, 400, "invalid_request"},
		{"two objects", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","secret":{}} {}`}, 400, "invalid_request"},
		{"missing collection", req{method: "POST", path: "/v1/records", key: key, body: `{"secret":{}}`}, 400, "invalid_request"},
		{"empty collection", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"","secret":{}}`}, 400, "invalid_request"},
		{"long collection", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"` + strings.Repeat("x", 129) + `","secret":{}}`}, 400, "invalid_request"},
		{"control char in collection", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"a\nb","secret":{}}`}, 400, "invalid_request"},
		{"missing secret", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c"}`}, 400, "invalid_request"},
		{"secret not an object", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","secret":"plain"}`}, 400, "invalid_request"},
		{"public not an object", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","public":[1],"secret":{}}`}, 400, "invalid_request"},
		{"NUL in public", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":"c","public":{"a":"\u0000"},"secret":{}}`}, 400, "invalid_request"},
		{"collection wrong type", req{method: "POST", path: "/v1/records", key: key, body: `{"collection":5,"secret":{}}`}, 400, "invalid_request"},
		{"no key on create", req{method: "POST", path: "/v1/records", body: good}, 400, "key_required"},
		{"no key on replace", req{method: "PUT", path: "/v1/records/" + id, body: good}, 400, "key_required"},
		{"short key", req{method: "POST", path: "/v1/records", key: "c2hvcnQ=", body: good}, 400, "invalid_key"},
		{"unpadded key", req{method: "POST", path: "/v1/records", key: strings.TrimRight(key, "=") + "A", body: good}, 400, "invalid_key"},
		{"url-safe base64 key", req{method: "POST", path: "/v1/records", key: "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8=", body: good}, 400, "invalid_key"},
		{"48-byte key", req{method: "POST", path: "/v1/records", key: key + key[:20], body: good}, 400, "invalid_key"},
		{"bad key on read", req{method: "GET", path: "/v1/records/" + id, key: "not base64!"}, 400, "invalid_key"},
		{"bad id on get", req{method: "GET", path: "/v1/records/not-a-uuid"}, 400, "invalid_request"},
		{"bad id on put", req{method: "PUT", path: "/v1/records/123", key: key, body: good}, 400, "invalid_request"},
		{"bad id on delete", req{method: "DELETE", path: "/v1/records/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"}, 400, "invalid_request"},
		{"bad cursor", req{method: "GET", path: "/v1/records?after=nope"}, 400, "invalid_request"},
		{"limit zero", req{method: "GET", path: "/v1/records?limit=0"}, 400, "invalid_request"},
		{"limit too big", req{method: "GET", path: "/v1/records?limit=501"}, 400, "invalid_request"},
		{"limit not a number", req{method: "GET", path: "/v1/records?limit=ten"}, 400, "invalid_request"},
		{"unknown id", req{method: "GET", path: "/v1/records/01900000-0000-7000-8000-000000000000"}, 404, "not_found"},
		{"unknown endpoint", req{method: "GET", path: "/v1/nothing"}, 404, "not_found"},
		{"method not allowed", req{method: "PATCH", path: "/v1/records/" + id, body: good}, 405, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.token = tok
			wantProblem(t, a.do(tc.r), tc.status, tc.code)
		})
	}
	// None of that wrote or lost anything.
	if n := a.count(`SELECT count(*)::int FROM fieldseal.records`); n != 1 {
		t.Errorf("records after bad requests = %d; want 1", n)
	}
	r := a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: key})
	if !strings.Contains(string(r.body), `"secret":{"s":"keep me"}`) || r.header.Get("ETag") != `"1"` {
		t.Errorf("the record changed: %s", r.body)
	}
	// The key never appears in an error or the log.
	if strings.Contains(a.logBuf.String(), key) {
		t.Error("the server log contains the key")
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	a := startAPI(t, newDB(t), apitest.Options{MaxBody: 1024})
	tok, key := a.token("alice", allScopes), newKey(t)
	big := map[string]any{"collection": "c", "secret": map[string]any{"s": strings.Repeat("x", 2000)}}
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: big}), 413, "payload_too_large")
	// Without Content-Length (chunked), the limit still holds.
	r := a.doChunked(tok, key, `{"collection":"c","secret":{"s":"`+strings.Repeat("x", 2000)+`"}}`)
	wantProblem(t, r, 413, "payload_too_large")
	if n := a.count(`SELECT count(*)::int FROM fieldseal.records`); n != 0 {
		t.Errorf("records = %d; want 0", n)
	}
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": "small"}})
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key, wrong := a.token("alice", allScopes), newKey(t), newKey(t)
	id := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": "mine"}})

	body := map[string]any{"collection": "c", "secret": map[string]any{"s": "under another key"}}
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records", token: tok, key: wrong, body: body}), 403, "wrong_key")
	wantProblem(t, a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: wrong, body: body}), 403, "wrong_key")
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: wrong}), 403, "wrong_key")
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records", token: tok, key: wrong}), 403, "wrong_key")

	// Nothing was written under the wrong key.
	if n := a.count(`SELECT count(*)::int FROM fieldseal.records`); n != 1 {
		t.Errorf("records = %d; want 1", n)
	}
	r := a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: key})
	if !strings.Contains(string(r.body), `"secret":{"s":"mine"}`) || r.header.Get("ETag") != `"1"` {
		t.Errorf("record after wrong-key writes: %s", r.body)
	}
	// Every stored message opens with the right key only.
	if n := a.opening("alice", key); n != 1 {
		t.Errorf("records that open under the subject's key = %d; want 1", n)
	}
	// A wrong key is an answer, not a server error in the log.
	if strings.Contains(a.logBuf.String(), `"level":"ERROR"`) {
		t.Errorf("wrong-key requests logged errors: %s", a.logBuf.String())
	}
}

func TestCrossSubjectIsolation(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	alice, bob := a.token("alice", allScopes), a.token("bob", allScopes)
	aliceKey, bobKey := newKey(t), newKey(t)
	id := a.create(alice, aliceKey, map[string]any{"collection": "c", "public": map[string]any{"p": "alice's"}, "secret": map[string]any{"s": "alice's secret"}})
	a.create(bob, bobKey, map[string]any{"collection": "c", "secret": map[string]any{"s": "bob's"}})

	// Another subject's record answers 404, never 403, whatever the key.
	for _, k := range []string{"", bobKey, aliceKey} {
		wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id, token: bob, key: k}), 404, "not_found")
	}
	wantProblem(t, a.do(req{method: "PUT", path: "/v1/records/" + id, token: bob, key: bobKey,
		body: map[string]any{"collection": "c", "secret": map[string]any{}}}), 404, "not_found")
	wantProblem(t, a.do(req{method: "DELETE", path: "/v1/records/" + id, token: bob}), 404, "not_found")
	r := a.do(req{method: "GET", path: "/v1/records", token: bob, key: bobKey})
	if strings.Contains(string(r.body), id) || strings.Contains(string(r.body), "alice") {
		t.Errorf("bob's list shows alice's record: %s", r.body)
	}
	// Alice's record is intact.
	r = a.do(req{method: "GET", path: "/v1/records/" + id, token: alice, key: aliceKey})
	if !strings.Contains(string(r.body), "alice's secret") {
		t.Errorf("alice's record: %d %s", r.status, r.body)
	}
}
