package handlers_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

func TestWrongKeyThrottling(t *testing.T) {
	t.Parallel()
	throttle := db.Throttle{TokenLimit: 3, SubjectLimit: 5, Window: time.Minute}
	database := newDB(t)
	a := startAPI(t, database, apitest.Options{Throttle: throttle})
	second := startAPI(t, database, apitest.Options{Throttle: throttle}) // another instance, same database
	key := newKey(t)
	// The second instance trusts another issuer URL; a token it accepts
	// with token A's jti is token A as far as throttling goes.
	mintJTI := func(api *api, jti string) string {
		tok, err := api.idp.Mint("alice", audience, allScopes, time.Hour, map[string]any{"jti": jti})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tokA, tokB, tokC := mintJTI(a, "token-a"), mintJTI(a, "token-b"), mintJTI(a, "token-c")
	id := a.create(tokA, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 1}})
	get := func(api *api, tok, k string) response {
		return api.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: k})
	}

	for range 3 {
		wantProblem(t, get(a, tokA, newKey(t)), http.StatusForbidden, "wrong_key")
	}
	// Throttled: refused before the key is tried, so a right guess and a
	// wrong one look the same.
	for _, k := range []string{key, newKey(t)} {
		r := get(a, tokA, k)
		wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 50 || s > 60 {
			t.Errorf("Retry-After = %q; want the rest of the 60 s window", r.header.Get("Retry-After"))
		}
	}
	wantProblem(t, second.do(req{method: "POST", path: "/v1/keys/verify", token: mintJTI(second, "token-a"), key: key}), http.StatusTooManyRequests, "rate_limited")
	// A list or a create sends its statements in the same round trip as
	// the throttle check; with the right key they must still do nothing:
	// no page decrypted, no record written, no entry saying anything was
	// served.
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records", token: tokA, key: key}), http.StatusTooManyRequests, "rate_limited")
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records", token: tokA, key: key,
		body: map[string]any{"collection": "c", "secret": map[string]any{"s": 2}}}), http.StatusTooManyRequests, "rate_limited")
	if n := a.count(`SELECT count(*)::int FROM fieldseal.records WHERE subject = 'alice'`); n != 1 {
		t.Errorf("alice has %d records after a throttled create; want 1", n)
	}
	if n := a.count(`SELECT count(*)::int FROM fieldseal.audit_events WHERE token_id = 'token-a' AND outcome = 'ok'`); n != 1 {
		t.Errorf("%d entries of token-a say ok; want 1 (its create before the throttle)", n)
	}
	if n := a.count(`SELECT count(*)::int FROM fieldseal.audit_events WHERE token_id = 'token-a' AND outcome = 'rate_limited'`); n != 5 {
		t.Errorf("%d entries of token-a say rate_limited; want 5", n)
	}
	// Requests without a key are not throttled.
	if r := get(a, tokA, ""); r.status != http.StatusOK {
		t.Errorf("a keyless read of a throttled token: %d", r.status)
	}
	// The user's other tokens keep working below the subject's ceiling.
	if r := get(second, mintJTI(second, "token-b"), key); r.status != http.StatusOK {
		t.Errorf("another token of the subject: %d %s", r.status, r.body)
	}
	// Two more wrong keys from token B reach the subject's ceiling of 5:
	// now every token of the subject is refused.
	for range 2 {
		wantProblem(t, get(a, tokB, newKey(t)), http.StatusForbidden, "wrong_key")
	}
	wantProblem(t, get(a, tokC, key), http.StatusTooManyRequests, "rate_limited")
	// Another subject is not affected.
	bob := a.token("bob", allScopes)
	a.create(bob, newKey(t), map[string]any{"collection": "c", "secret": map[string]any{}})

	// The window passes (the counters are aged past it); the right key
	// works again.
	// (The trigger that keeps counters from shrinking within their window
	// stands aside for the test, in its transaction: on Citus too, where
	// ALTER TABLE reaches every shard (Citus wants enable_unsafe_triggers
	// for it, as migrate does). now() rather than window_start -
	// interval, which Citus refuses in an UPDATE of a distributed table.)
	a.execTx(`SET LOCAL citus.enable_unsafe_triggers = on`,
		`ALTER TABLE fieldseal.key_failures DISABLE TRIGGER only_grow`,
		`UPDATE fieldseal.key_failures SET window_start = now() - interval '2 minutes'`,
		`ALTER TABLE fieldseal.key_failures ENABLE TRIGGER only_grow`)
	if r := get(a, tokA, key); r.status != http.StatusOK {
		t.Errorf("after the window: %d %s", r.status, r.body)
	}
	// The counters hold token ids, never keys or tokens.
	rows := a.adminQuery(`SELECT token_id FROM fieldseal.key_failures`)
	defer rows.Close()
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		if !strings.HasPrefix(id, "jti:") || strings.Contains(id, tokA) || strings.Contains(id, key) {
			t.Errorf("key_failures.token_id = %q", id)
		}
	}
}
