package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

// One byte flipped in one stored record: the right key is still the right
// key. The record answers 500 corrupt_record naming it, never wrong_key,
// nothing counts toward the wrong-key throttle, a list page serves the
// other records with the damaged one marked, and rotation refuses naming
// it, changing nothing, until the owner deletes it.
func TestDamagedRecordIsNotAWrongKey(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	good := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"n": "good"}})
	bad := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"n": "bad"}})
	a.exec("", `UPDATE fieldseal.records SET secret = overlay(secret PLACING decode(lpad(to_hex(get_byte(secret, 40) # 1), 2, '0'), 'hex') FROM 41 FOR 1) WHERE id = $1`, bad)

	for range 15 { // more than the wrong-key limit of 10
		r := a.do(req{method: "GET", path: "/v1/records/" + bad, token: tok, key: key})
		wantProblem(t, r, http.StatusInternalServerError, "corrupt_record")
		if !strings.Contains(string(r.body), bad) {
			t.Fatalf("the problem does not name the damaged record: %s", r.body)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.key_failures`); n != 0 {
		t.Errorf("%d wrong-key failures counted for a damaged record; want 0", n)
	}
	if r := a.do(req{method: "GET", path: "/v1/records/" + good, token: tok, key: key}); r.status != http.StatusOK {
		t.Errorf("the intact record after 15 reads of the damaged one: %d %s", r.status, r.body)
	}
	if r := a.do(req{method: "POST", path: "/v1/keys/verify", token: tok, key: key}); r.status != http.StatusNoContent {
		t.Errorf("verify: %d", r.status)
	}
	page := a.do(req{method: "GET", path: "/v1/records?collection=c", token: tok, key: key})
	if page.status != http.StatusOK {
		t.Fatalf("a list page holding the damaged record: %d %s", page.status, page.body)
	}
	for _, item := range page.json(t)["items"].([]any) {
		rec := item.(map[string]any)
		switch rec["id"] {
		case good:
			if rec["secret"] == nil || rec["damaged"] != nil {
				t.Errorf("the intact record on the page: %v", rec)
			}
		case bad:
			if rec["secret"] != nil || rec["damaged"] != true {
				t.Errorf("the damaged record on the page: %v; want damaged and no secret", rec)
			}
		}
	}
	newK := newKey(t)
	rotate := a.do(req{method: "POST", path: "/v1/keys/rotate", token: tok, key: key, header: map[string]string{"New-Encryption-Key": newK},
		body: map[string]any{"reencrypt": true}})
	wantProblem(t, rotate, http.StatusInternalServerError, "corrupt_record")
	if !strings.Contains(string(rotate.body), bad) {
		t.Errorf("the rotation's refusal does not name the damaged record: %s", rotate.body)
	}
	if r := a.do(req{method: "GET", path: "/v1/records/" + good, token: tok, key: key}); r.status != http.StatusOK {
		t.Errorf("after the refused rotation the old key reads %d; want 200 (nothing changed)", r.status)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE outcome = 'corrupt_record'`); n < 16 {
		t.Errorf("%d corrupt_record entries in the trail; want one per refusal (16)", n)
	}
	// The owner deletes it; rotation works.
	if r := a.do(req{method: "DELETE", path: "/v1/records/" + bad, token: tok}); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	if r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: tok, key: key, header: map[string]string{"New-Encryption-Key": newK},
		body: map[string]any{"reencrypt": true}}); r.status != http.StatusOK {
		t.Errorf("rotation after the delete: %d %s", r.status, r.body)
	}
}
