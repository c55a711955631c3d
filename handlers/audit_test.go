package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"bytes"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

type auditItem struct {
	Subject     string  `json:"subject"`
	Seq         int64   `json:"seq"`
	Action      string  `json:"action"`
	Outcome     string  `json:"outcome"`
	RecordID    *string `json:"record_id"`
	RecordCount *int64  `json:"record_count"`
	TokenJTI    string  `json:"token_jti"`
	ClientID    string  `json:"client_id"`
	RequestID   string  `json:"request_id"`
	ClientAddr  string  `json:"client_addr"`
}

// auditEvents reads every entry through the API with an audit:read token.
func (a *api) auditEvents(query string) []auditItem {
	a.t.Helper()
	auditor := a.token("dba", "audit:read")
	var all []auditItem
	path := "/v1/audit/events?limit=7&" + query
	for range 100 {
		r := a.do(req{method: "GET", path: path, token: auditor})
		if r.status != http.StatusOK {
			a.t.Fatalf("audit events: %d %s", r.status, r.body)
		}
		var page struct {
			Items []auditItem `json:"items"`
			Next  string      `json:"next"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			a.t.Fatal(err)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		path = "/v1/audit/events?limit=7&" + query + "&after=" + page.Next
	}
	a.t.Fatal("audit pagination does not end")
	return nil
}

func TestAuditTrailRecordsEveryRequest(t *testing.T) {
	t.Parallel()
	a := startAPI(t, newDB(t), apitest.Options{Throttle: db.Throttle{TokenLimit: 2, SubjectLimit: 10, Window: time.Minute}})
	tok, key, newK := a.token("alice", allScopes), newKey(t), newKey(t)
	secret := "audit-plaintext-marker"

	r := a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: map[string]any{"collection": "c", "secret": map[string]any{"s": secret}}})
	id, _ := r.json(t)["id"].(string)
	createReqID := r.header.Get("X-Request-Id")
	steps := []struct {
		r               req
		action, outcome string
	}{
		{req{method: "GET", path: "/v1/records/" + id, key: key}, "record.read", "ok"},
		{req{method: "GET", path: "/v1/records/" + id}, "", ""}, // no key, nothing decrypted: not audited
		{req{method: "GET", path: "/v1/records", key: key}, "record.list", "ok"},
		{req{method: "PUT", path: "/v1/records/" + id, key: key, body: map[string]any{"collection": "c", "secret": map[string]any{"s": secret}}}, "record.replace", "ok"},
		{req{method: "PUT", path: "/v1/records/" + id, key: key, header: map[string]string{"If-Match": `"9"`}, body: map[string]any{"collection": "c", "secret": map[string]any{}}}, "record.replace", "version_conflict"},
		{req{method: "GET", path: "/v1/records/01900000-0000-7000-8000-000000000000"}, "record.read", "not_found"},
		{req{method: "POST", path: "/v1/keys/verify", key: key}, "key.verify", "ok"},
		{req{method: "GET", path: "/v1/records/" + id + "/ciphertext"}, "record.ciphertext", "ok"},
		{req{method: "GET", path: "/v1/export"}, "records.export", "ok"},
		{req{method: "POST", path: "/v1/keys/rotate", key: key, header: map[string]string{"New-Encryption-Key": newK}}, "key.rotate", "ok"},
		{req{method: "GET", path: "/v1/records/" + id, key: key}, "record.read", "wrong_key"},
		{req{method: "GET", path: "/v1/records", key: key}, "record.list", "wrong_key"},
		{req{method: "GET", path: "/v1/records/" + id, key: newK}, "record.read", "rate_limited"},
		{req{method: "DELETE", path: "/v1/records/" + id}, "record.delete", "ok"},
	}
	want := []string{"record.create ok"}
	for _, s := range steps {
		s.r.token = tok
		a.do(s.r)
		if s.action != "" {
			want = append(want, s.action+" "+s.outcome)
		}
	}
	// A token without the scope: refused and audited.
	a.do(req{method: "POST", path: "/v1/records", token: a.token("alice", "records:read"), key: newK, body: map[string]any{"collection": "c", "secret": map[string]any{}}})
	want = append(want, "record.create insufficient_scope")

	events := a.auditEvents("subject=alice")
	var got []string
	for _, e := range events {
		got = append(got, e.Action+" "+e.Outcome)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first := events[0]
	if first.RecordID == nil || *first.RecordID != id || first.RequestID != createReqID || first.ClientAddr != "127.0.0.1" ||
		first.TokenJTI == "" || first.ClientID != "fieldseal-dev" || first.Seq != 1 {
		t.Errorf("first entry = %+v; want record id, request id %s, client address, jti and client_id", first, createReqID)
	}
	for _, e := range events {
		if e.Action == "key.rotate" && (e.RecordCount == nil || *e.RecordCount != 0) {
			t.Errorf("rotation entry = %+v; want record_count 0 (a rewrap re-encrypts no record)", e)
		}
	}
	// Filters.
	if n := len(a.auditEvents("subject=alice&action=record.read")); n != 4 {
		t.Errorf("action=record.read: %d entries; want 4", n)
	}
	if n := len(a.auditEvents("subject=alice&since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339))); n != 0 {
		t.Errorf("since an hour from now: %d entries; want 0", n)
	}
	// Never a key, a token or a plaintext value.
	rows := a.adminQuery(`SELECT row_to_json(e)::text FROM fieldseal.audit_events e`)
	defer rows.Close()
	for rows.Next() {
		var row string
		_ = rows.Scan(&row)
		for _, s := range []string{key, newK, secret, tok, tok[len(tok)-20:]} {
			if strings.Contains(row, s) {
				t.Fatalf("an audit row holds a key, token or secret: %.60s…", row)
			}
		}
	}
	// The chain is intact.
	rep, err := openAdmin(t, a.db.AdminURL).VerifyAuditTrail(context.Background(), "alice", nil)
	if err != nil || len(rep.Breaks) != 0 || rep.Entries != int64(len(events)) {
		t.Errorf("verify alice's chain: %+v %v; want %d entries, intact", rep, err, len(events))
	}
}

func TestAuditEventsNeedAuditRead(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok := a.token("alice", allScopes)
	a.create(tok, newKey(t), map[string]any{"collection": "c", "secret": map[string]any{}})
	wantProblem(t, a.do(req{method: "GET", path: "/v1/audit/events", token: a.token("alice", "records:read records:write")}), 403, "insufficient_scope")
	wantProblem(t, a.do(req{method: "GET", path: "/v1/audit/events?since=yesterday", token: a.token("dba", "audit:read")}), 400, "invalid_request")
	wantProblem(t, a.do(req{method: "GET", path: "/v1/audit/events?after=xyz", token: a.token("dba", "audit:read")}), 400, "invalid_request")
	// The refused read is itself in the trail.
	found := false
	for _, e := range a.auditEvents("subject=alice") {
		if e.Action == "audit.read" && e.Outcome == "insufficient_scope" {
			found = true
		}
	}
	if !found {
		t.Error("a refused audit read was not audited")
	}
}

func TestNoWorkWithoutItsAuditEntry(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})
	// If the entry cannot be written, neither can the work.
	a.exec("", `REVOKE INSERT ON fieldseal.audit_events FROM fieldseal_app`)
	r := a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: map[string]any{"collection": "c", "secret": map[string]any{}}})
	wantProblem(t, r, http.StatusInternalServerError, "internal")
	if n := a.count(`SELECT count(*)::int FROM fieldseal.records`); n != 1 {
		t.Errorf("records = %d; want 1: work was committed without its audit entry", n)
	}
}

func TestAuditChainsUnderConcurrency(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	var wg sync.WaitGroup
	for _, sub := range []string{"alice", "bob", "carol"} {
		tok, key := a.token(sub, allScopes), newKey(t)
		a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{}})
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: map[string]any{"collection": "c", "secret": map[string]any{}}})
			}()
		}
	}
	wg.Wait()
	rep, err := openAdmin(t, a.db.AdminURL).VerifyAuditTrail(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Entries != 33 || rep.Subjects != 3 {
		t.Errorf("after 30 concurrent writes over 3 subjects: %+v; want 33 entries in 3 intact chains", rep)
	}
}

func TestGrantsReportOverHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	wantProblem(t, a.do(req{method: "GET", path: "/v1/audit/grants", token: a.token("alice", allScopes[:len("records:read records:write keys:rotate")])}), 403, "insufficient_scope")
	r := a.do(req{method: "GET", path: "/v1/audit/grants", token: a.token("dba", "audit:read")})
	if r.status != http.StatusOK {
		t.Fatalf("grants: %d %s", r.status, r.body)
	}
	var rep struct {
		Drift      []map[string]any `json:"drift"`
		Privileges []map[string]any `json:"privileges"`
		Tables     []map[string]any `json:"tables"`
	}
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Drift == nil || len(rep.Privileges) < 50 || len(rep.Tables) < 5 {
		t.Errorf("grants report: %d drift, %d privileges, %d tables", len(rep.Drift), len(rep.Privileges), len(rep.Tables))
	}
	// A DBA's slip shows at once.
	a.exec("", `GRANT SELECT ON fieldseal.records TO PUBLIC`)
	r = a.do(req{method: "GET", path: "/v1/audit/grants", token: a.token("dba", "audit:read")})
	if !strings.Contains(string(r.body), `"problem":"unexpected privilege","role":"PUBLIC","object_type":"table","object":"fieldseal.records"`) {
		t.Errorf("drift not reported over HTTP: %s", r.body)
	}
}

// After an archive, the API pages through what is left, and appends go on.
func TestAuditEventsAfterArchive(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	for range 10 {
		a.create(tok, key, `{"collection":"c","secret":{}}`)
	}
	// The cut is taken after the tenth create has answered and before the
	// next is sent, so the next entries are stamped after it (one clock:
	// PostgreSQL's, on this machine).
	cut := time.Now()
	for range 3 {
		a.create(tok, key, `{"collection":"c","secret":{}}`)
	}
	var file bytes.Buffer
	res, err := openAdmin(t, a.db.AdminURL).Archive(context.Background(), cut, &file, func() error { return nil })
	if err != nil || res.Entries != 10 {
		t.Fatalf("archive: %+v %v; want 10 entries", res, err)
	}
	a.create(tok, key, `{"collection":"c","secret":{}}`)
	events := a.auditEvents("subject=alice")
	if len(events) != 4 || events[0].Seq != 11 || events[3].Seq != 14 {
		t.Errorf("after the archive the API lists %d entries (first %+v); want entries 11 to 14", len(events), events)
	}
	if _, breaks, err := fieldseal.VerifyArchive(&file, nil); err != nil || len(breaks) != 0 {
		t.Errorf("the archive does not verify: %v %v", breaks, err)
	}
}
