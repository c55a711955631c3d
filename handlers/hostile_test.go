package handlers_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// Malformed input that PostgreSQL would refuse (invalid UTF-8, NUL, lone
// surrogates, numbers beyond numeric's range) is a 400 saying what is
// wrong, and nothing is written; never a 500.
func TestHostileInputIs400(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})
	records := func() int { return a.count(`SELECT count(*) FROM fieldseal.records`) }
	before := records()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"invalid UTF-8 in secret", "{\"collection\":\"c\",\"secret\":{\"s\":\"\xff\"}}", "secret is not valid UTF-8"},
		{"invalid UTF-8 in a public value", "{\"collection\":\"c\",\"public\":{\"p\":\"\xfe\"},\"secret\":{}}", "public is not valid UTF-8"},
		{"invalid UTF-8 in a public key", "{\"collection\":\"c\",\"public\":{\"\xff\":1},\"secret\":{}}", "public is not valid UTF-8"},
		{"overlong NUL in public", "{\"collection\":\"c\",\"public\":{\"p\":\"\xc0\x80\"},\"secret\":{}}", "public is not valid UTF-8"},
		{"invalid UTF-8 in collection", "{\"collection\":\"c\xff\",\"secret\":{}}", "collection"},
		{"lone high surrogate in public", `{"collection":"c","public":{"p":"\ud800"},"secret":{}}`, "lone high surrogate"},
		// A secret's fields may be made searchable, which reads it as jsonb.
		{"lone high surrogate in secret", `{"collection":"c","secret":{"s":"\ud800 secret"}}`, "secret holds a lone high surrogate"},
		{"NUL escape in secret", `{"collection":"c","secret":{"s":"a\u0000b"}}`, `secret may not contain the character \\u0000`},
		{"huge exponent in secret", `{"collection":"c","secret":{"n":1e1000000}}`, "secret holds a number whose exponent"},
		{"lone low surrogate in public", `{"collection":"c","public":{"p":"\udc00x"},"secret":{}}`, "lone low surrogate"},
		{"reversed surrogates in public", `{"collection":"c","public":{"p":"\udc00\ud800"},"secret":{}}`, "lone low surrogate"},
		{"huge exponent", `{"collection":"c","public":{"n":1e131072},"secret":{}}`, "exponent"},
		{"huger exponent", `{"collection":"c","public":{"n":1e1000000},"secret":{}}`, "exponent"},
		{"tiny exponent", `{"collection":"c","public":{"n":1e-1000000},"secret":{}}`, "exponent"},
		{"200,000-digit integer", `{"collection":"c","public":{"n":` + strings.Repeat("9", 200000) + `},"secret":{}}`, "more digits"},
		{"20,000 fraction digits", `{"collection":"c","public":{"n":0.` + strings.Repeat("1", 20000) + `},"secret":{}}`, "more digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: tc.body})
			wantProblem(t, r, http.StatusBadRequest, "invalid_request")
			if !strings.Contains(string(r.body), tc.want) {
				t.Errorf("the problem does not say %q: %s", tc.want, r.body)
			}
		})
	}
	if n := records(); n != before {
		t.Errorf("%d records after the malformed creates; want %d", n, before)
	}
	// What jsonb and numeric do hold still goes through.
	for _, ok := range []string{
		`{"collection":"c","public":{"p":"\ud83d\ude00 ok","q":"\\ud800 is text here"},"secret":{"s":"\ud83d\ude00 secret","t":"\\u0000 is text here"}}`,
		`{"collection":"c","public":{"n":1e1000,"m":-1.5e-900,"z":0.000001,"big":` + strings.Repeat("9", 1000) + `},"secret":{}}`,
	} {
		if r := a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: ok}); r.status != http.StatusCreated {
			t.Errorf("a valid body answered %d: %s", r.status, r.body)
		}
	}
	// Query strings.
	for _, tc := range []struct{ path, want string }{
		{"/v1/records?collection=%00", "collection may not contain the NUL character"},
		{"/v1/records?collection=%FF", "collection is not valid UTF-8"},
		{"/v1/audit/events?subject=%00", "subject may not contain the NUL character"},
		{"/v1/audit/events?action=%FF", "action is not valid UTF-8"},
	} {
		r := a.do(req{method: "GET", path: tc.path, token: tok, key: key})
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: the problem does not say %q: %s", tc.path, tc.want, r.body)
		}
	}
	if strings.Contains(a.logBuf.String(), `"status":500`) {
		t.Errorf("a 500 in the log:\n%s", a.logBuf.String())
	}
}

// HEAD answers as GET does, without a body.
func TestHEADOnGETRoutes(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	id := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 1}})
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/v1/records", "/v1/records/" + id, "/v1/records/" + id + "/ciphertext", "/v1/audit/events"} {
		req, _ := http.NewRequest("HEAD", a.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d; want 200", path, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("HEAD", a.URL+"/v1/records/"+url.PathEscape("not-an-id"), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD of a bad id: %d; want 400", resp.StatusCode)
	}
}

// FuzzAPI sends generated bodies and query strings to the real API on a
// real database and fails on any 5xx, or an answer that takes over 10 s. `go test` runs its seeds; CI fuzzes
// it briefly (.ci/run).
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct{ body, query string }{
		{`{"collection":"c","public":{"a":1},"secret":{"b":"x"}}`, "c"},
		{"{\"collection\":\"c\",\"secret\":{\"s\":\"\xff\"}}", "%00"},
		{`{"collection":"c","public":{"p":"\ud800"},"secret":{}}`, "%FF"},
		{`{"collection":"c","public":{"n":1e131072},"secret":{}}`, "a%20b"},
		{`{"collection":"","public":[],"secret":null}`, ""},
		{`[]`, "%"},
		{`{"records":[{"collection":"c","secret":{"email":"a"}}]}`, "a@example.org"},
		{`{"searchable":{"email":{"case_insensitive":true}}}`, "1e999999"},
		{`{"id":"0192f3a4-5b6c-7d8e-9f01-23456789abcd","collection":"c","public":{},"version":1,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","ciphertext":"-----BEGIN PGP MESSAGE-----\n\nwx4=\n-----END PGP MESSAGE-----"}`, "-0.0"},
		{`{"records":[{"collection":"c","secret":{"a":1}},{"collection":"c","secret":{"b":2}},{"collection":"d","secret":{"c":3}}]}`, "c"},
		{`{"records":[{"collection":"c","secret":{"a":1,"a":2}},{"collection":"c","secret":{}}]}`, "c"},
	} {
		// which: 0 the subject's key; 1 a wrong key, on a token whose
		// throttle soon trips (then 429s); 2 the right key on that token.
		for which := range byte(3) {
			f.Add([]byte(seed.body), seed.query, which)
		}
	}
	a := startAPI(f, pgtest.NewDB(f), apitest.Options{Throttle: db.Throttle{TokenLimit: 5, SubjectLimit: 1 << 30, Window: time.Minute}})
	tok, key := a.token("alice", allScopes), newKey(f)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"email": "a@example.org"}})
	if r := a.setSearchable(tok, key, "c", `{"searchable":{"email":{"case_insensitive":true}}}`); r.status != http.StatusOK {
		f.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	// A token of the same subject for the wrong and throttled keys: its
	// refusals trip its own throttle, not the subject's (the limit per
	// subject is above what a run sends).
	throttled := a.token("alice", allScopes)
	wrong := newKey(f)
	f.Fuzz(func(t *testing.T, body []byte, query string, which byte) {
		token, k := tok, key
		switch which % 3 {
		case 1:
			token, k = throttled, wrong
		case 2:
			token = throttled
		}
		requests := []struct {
			method, target string
			body           []byte
		}{
			{"POST", "/v1/records", body},
			{"GET", "/v1/records?collection=" + query, nil},
			{"GET", "/v1/records?limit=" + query + "&after=" + query, nil},
			{"GET", "/v1/audit/events?subject=" + query + "&action=" + query + "&since=" + query, nil},
			{"GET", "/v1/records?collection=c&secret.email=" + query + "&public." + query + "=" + query, nil},
			{"POST", "/v1/records/batch", body},
			{"PUT", "/v1/collections/" + query, body},
			{"GET", "/v1/collections/" + query, nil},
			{"POST", "/v1/import", body},
		}
		for _, r := range requests {
			req, err := http.NewRequest(r.method, a.URL+r.target, bytes.NewReader(r.body))
			if err != nil {
				continue // not a request a client could send
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Encryption-Key", k)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if took := time.Since(start); took > 10*time.Second { // a hang, short of the 15 s request timeout's 503
				t.Errorf("%s %s with body %q: %d after %s", r.method, r.target, r.body, resp.StatusCode, took)
			}
			if resp.StatusCode >= 500 {
				t.Errorf("%s %s with body %q: %d", r.method, r.target, r.body, resp.StatusCode)
			}
		}
	})
}
