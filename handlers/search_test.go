package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// secrets returns the secret of every item of a list answer, by the
// field name given, in order.
func secrets(t *testing.T, r response, field string) []string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: status %d: %s", r.status, r.body)
	}
	var page struct {
		Items []struct {
			Secret map[string]any `json:"secret"`
			Public map[string]any `json:"public"`
		} `json:"items"`
		Next string `json:"next"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, it := range page.Items {
		out = append(out, fmt.Sprint(it.Secret[field]))
	}
	return out
}

// tagOf is the one search tag of subject.
func (a *api) tagOf(subject string) []byte {
	a.t.Helper()
	tag, err := pgx.CollectExactlyOneRow(a.adminQuery(`SELECT tag FROM fieldseal.search_tags WHERE subject = $1`, subject), pgx.RowTo[[]byte])
	if err != nil {
		a.t.Fatal(err)
	}
	return tag
}

func (a *api) search(token, key, query string) response {
	a.t.Helper()
	return a.do(req{method: "GET", path: "/v1/records?" + query, token: token, key: key})
}

func (a *api) setSearchable(token, key, collection, body string) response {
	a.t.Helper()
	return a.do(req{method: "PUT", path: "/v1/collections/" + url.PathEscape(collection), token: token, key: key, body: body})
}

// TestSearchBySecretField makes fields of existing records searchable and
// finds records by them: exact and case-insensitive (Unicode), numbers
// and booleans, ANDed with each other and with public filters, page by
// page; writes after that keep the index current.
func TestSearchBySecretField(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("clinic-app", allScopes), newKey(t)
	people := []string{
		`{"name":"Alice","email":"Alice@Example.org","ssn":"123-45-6789","age":41,"vip":true}`,
		`{"name":"Bob","email":"bob@example.org","ssn":"987-65-4321","age":41.0,"vip":false}`,
		`{"name":"José","email":"JOSÉ@example.org","ssn":"555","age":30}`,
		`{"name":"Άλφα","email":"ΆΛΦΑ@example.org","ssn":["in","an","array"],"age":"41"}`,
	}
	for i, p := range people {
		a.create(tok, key, fmt.Sprintf(`{"collection":"patients","public":{"ward":%q,"n":%d},"secret":%s}`, []string{"A", "B", "A", "B"}[i], i, p))
	}
	a.create(tok, key, `{"collection":"staff","secret":{"email":"alice@example.org"}}`)

	// Before the fields are searchable, a secret filter says so.
	r := a.search(tok, key, "collection=patients&secret.email=bob@example.org")
	wantProblem(t, r, http.StatusBadRequest, "invalid_request")
	if !strings.Contains(string(r.body), "secret.email") {
		t.Errorf("the refusal does not name the field: %s", r.body)
	}

	r = a.setSearchable(tok, key, "patients", `{"searchable":{"email":{"case_insensitive":true},"ssn":{},"age":{},"vip":{}}}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	if got := r.json(t); got["indexed"] != float64(4) || got["collection"] != "patients" {
		t.Errorf("PUT collection answered %s; want collection patients, indexed 4", r.body)
	}
	g := a.do(req{method: "GET", path: "/v1/collections/patients", token: tok})
	if g.status != http.StatusOK || !strings.Contains(string(g.body), `"email":{"case_insensitive":true}`) || !strings.Contains(string(g.body), `"ssn":{"case_insensitive":false}`) {
		t.Errorf("GET collection: %d %s", g.status, g.body)
	}

	for _, c := range []struct {
		query string
		want  []string // names, in creation order
	}{
		{"secret.email=alice@example.org", []string{"Alice"}},
		{"secret.email=ALICE@EXAMPLE.ORG", []string{"Alice"}},
		{"secret.email=jos%C3%A9@example.org", []string{"José"}},                // composed é
		{"secret.email=JOSE%CC%81@EXAMPLE.ORG", []string{"José"}},               // decomposed: NFC makes them one
		{"secret.email=%CE%AC%CE%BB%CF%86%CE%B1@example.org", []string{"Άλφα"}}, // Greek lower-cased
		{"secret.ssn=123-45-6789", []string{"Alice"}},
		{"secret.ssn=in", []string{}},                       // arrays are not indexed
		{"secret.age=41", []string{"Alice", "Bob", "Άλφα"}}, // 41, 41.0 and the string "41"
		{"secret.age=41.00", []string{"Alice", "Bob"}},
		{"secret.vip=true", []string{"Alice"}},
		{"secret.age=41&secret.vip=false", []string{"Bob"}},
		{"secret.age=41&public.ward=A", []string{"Alice"}},
		{"secret.age=41&public.n=3", []string{"Άλφα"}},
		{"secret.email=nobody@example.org", []string{}},
	} {
		r := a.search(tok, key, "collection=patients&"+c.query)
		if got := secrets(t, r, "name"); !slices.Equal(got, c.want) {
			t.Errorf("%s: found %q; want %q", c.query, got, c.want)
		}
	}
	// Case-sensitive fields stay so.
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.ssn=123-45-6789"), "name"); len(got) != 1 {
		t.Errorf("exact ssn: %q", got)
	}
	// Settings are per collection: staff's email is not searchable.
	wantProblem(t, a.search(tok, key, "collection=staff&secret.email=alice@example.org"), http.StatusBadRequest, "invalid_request")

	// Pages: two matches, one per page.
	r = a.search(tok, key, "collection=patients&secret.age=41&limit=2")
	if got := secrets(t, r, "name"); !slices.Equal(got, []string{"Alice", "Bob"}) {
		t.Fatalf("page 1: %q", got)
	}
	next, _ := r.json(t)["next"].(string)
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.age=41&limit=2&after="+next), "name"); !slices.Equal(got, []string{"Άλφα"}) {
		t.Errorf("page 2: %q", got)
	}

	// A create, a replace and a delete keep the index current.
	id := a.create(tok, key, `{"collection":"patients","secret":{"name":"Carol","email":"carol@example.org"}}`)
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.email=Carol@example.org"), "name"); !slices.Equal(got, []string{"Carol"}) {
		t.Errorf("a new record is not found: %q", got)
	}
	if r := a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: key, body: `{"collection":"patients","secret":{"name":"Carol","email":"carol@example.net"}}`}); r.status != http.StatusOK {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.email=carol@example.org"), "name"); len(got) != 0 {
		t.Errorf("the replaced value is still found: %q", got)
	}
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.email=carol@example.net"), "name"); !slices.Equal(got, []string{"Carol"}) {
		t.Errorf("the new value is not found: %q", got)
	}
	if r := a.do(req{method: "PUT", path: "/v1/records/" + id, token: tok, key: key, body: `{"collection":"staff","secret":{"name":"Carol","email":"carol@example.net"}}`}); r.status != http.StatusOK {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.email=carol@example.net"), "name"); len(got) != 0 {
		t.Errorf("a record moved to another collection is still found: %q", got)
	}
	a.do(req{method: "DELETE", path: "/v1/records/" + id, token: tok})
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE record_id = $1`, id); n != 0 {
		t.Errorf("a deleted record keeps %d tags", n)
	}

	// Making fewer fields searchable drops the others' tags.
	if r := a.setSearchable(tok, key, "patients", `{"searchable":{"ssn":{}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE field <> 'ssn'`); n != 0 {
		t.Errorf("%d tags of fields no longer searchable remain", n)
	}
	wantProblem(t, a.search(tok, key, "collection=patients&secret.email=bob@example.org"), http.StatusBadRequest, "invalid_request")
}

// TestSearchRefusals: what a search needs, and what it says without it.
func TestSearchRefusals(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("clinic-app", allScopes), newKey(t)
	a.create(tok, key, `{"collection":"patients","secret":{"email":"a@example.org"}}`)
	if r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	wantProblem(t, a.search(tok, "", "collection=patients&secret.email=a@example.org"), http.StatusBadRequest, "key_required")
	wantProblem(t, a.search(tok, newKey(t), "collection=patients&secret.email=a@example.org"), http.StatusForbidden, "wrong_key")
	wantProblem(t, a.search(tok, key, "secret.email=a@example.org"), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.search(tok, key, "collection=patients&secret.email=a&secret.email=b"), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.search(tok, key, "collection=patients&secret.=a"), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.search(tok, key, "collection=patients&secret.email=%00"), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.search(tok, key, "collection=patients&secret.email=%ff"), http.StatusBadRequest, "invalid_request")
	// Numbers beyond numeric's range are only strings.
	if r := a.search(tok, key, "collection=patients&secret.email=1e999999"); r.status != http.StatusOK {
		t.Errorf("a huge number: %d %s", r.status, r.body)
	}

	for _, body := range []string{
		`{}`, `{"searchable":null}`, `{"searchable":[]}`, `{"searchable":{"email":{"exact":true}}}`,
		`{"searchable":{"":{}}}`, `{"searchable":{"email":true}}`, `{"searchable":{"a\u0000b":{}}}`,
		`{"searchable":{"email":{}},"extra":1}`,
	} {
		r := a.setSearchable(tok, key, "patients", body)
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
	}
	wantProblem(t, a.setSearchable(tok, "", "patients", `{"searchable":{}}`), http.StatusBadRequest, "key_required")
	wantProblem(t, a.setSearchable(tok, newKey(t), "patients", `{"searchable":{}}`), http.StatusForbidden, "wrong_key")
	// Nothing refused changed the settings.
	g := a.do(req{method: "GET", path: "/v1/collections/patients", token: tok})
	if !strings.Contains(string(g.body), `"searchable":{"email":{"case_insensitive":false}}`) {
		t.Errorf("settings after refused changes: %s", g.body)
	}
	// A collection never set has no searchable field.
	g = a.do(req{method: "GET", path: "/v1/collections/" + url.PathEscape("never set"), token: tok})
	if g.status != http.StatusOK || !strings.Contains(string(g.body), `"searchable":{}`) || !strings.Contains(string(g.body), `"collection":"never set"`) {
		t.Errorf("GET of a collection never set: %d %s", g.status, g.body)
	}
	// A record written before secrets were checked, whose secret jsonb
	// cannot read: making its collection searchable names it, quotes
	// nothing of it, and stops there. The new settings stay, the field
	// they add answers 409 until the reindex ends, the field they kept
	// still finds what it found; once the record is gone, the same PUT
	// goes on and ends it.
	legacy := "0192f3a4-5b6c-7d8e-9f01-23456789abcd"
	a.exec("", `INSERT INTO fieldseal.records (subject, id, collection, public, secret)
		VALUES ('clinic-app', $1, 'patients', '{}', fieldseal.pgp_sym_encrypt('{"email":"legacy-\u0000-text"}', $2, 'cipher-algo=aes256, s2k-mode=1'))`, legacy, key)
	r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{},"other":{}}}`)
	wantProblem(t, r, http.StatusBadRequest, "invalid_request")
	if !strings.Contains(string(r.body), legacy) || strings.Contains(string(r.body), "legacy-") || !strings.Contains(string(r.body), "PUT them again") {
		t.Errorf("the refusal should name the record, say how to go on and quote nothing of it: %s", r.body)
	}
	if g := a.do(req{method: "GET", path: "/v1/collections/patients", token: tok}); !strings.Contains(string(g.body), `"indexing":{"fields":["other"],"records":0,"total":2`) {
		t.Errorf("a stopped reindex should show in the settings: %s", g.body)
	}
	wantProblem(t, a.search(tok, key, "collection=patients&secret.other=x"), http.StatusConflict, "still_indexing")
	if r := a.search(tok, key, "collection=patients&secret.email=a@example.org"); r.status != http.StatusOK || !strings.Contains(string(r.body), "a@example.org") {
		t.Errorf("a field the new settings kept should stay searchable while the others are indexed: %d %s", r.status, r.body)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags`); n != 1 {
		t.Errorf("%d tags after a refused batch; want the 1 from before", n)
	}
	if r := a.do(req{method: "DELETE", path: "/v1/records/" + legacy, token: tok, key: key}); r.status != http.StatusNoContent {
		t.Fatalf("delete the legacy record: %d %s", r.status, r.body)
	}
	if r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{},"other":{}}}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"indexed":1`) {
		t.Errorf("the same settings again should end the reindex: %d %s", r.status, r.body)
	}
	if g := a.do(req{method: "GET", path: "/v1/collections/patients", token: tok}); strings.Contains(string(g.body), "indexing") {
		t.Errorf("an ended reindex still shows: %s", g.body)
	}
	if r := a.search(tok, key, "collection=patients&secret.other=x"); r.status != http.StatusOK {
		t.Errorf("a field indexed whole should be searchable: %d %s", r.status, r.body)
	}

	// Scopes.
	ro := a.token("clinic-app", "records:read")
	wantProblem(t, a.setSearchable(ro, key, "patients", `{"searchable":{}}`), http.StatusForbidden, "insufficient_scope")
}

// TestBlindIndexTags: a tag is keyed by the client's key, the subject,
// the collection and the field, is not the value or its plain hash, and
// a rotation recomputes every tag under the new key.
func TestBlindIndexTags(t *testing.T) {
	a := newAPI(t)
	key := newKey(t)
	tokA, tokB := a.token("subject-a", allScopes), a.token("subject-b", allScopes)
	for _, tok := range []string{tokA, tokB} {
		a.create(tok, key, `{"collection":"patients","secret":{"email":"same@example.org"}}`)
		if r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{}}}`); r.status != http.StatusOK {
			t.Fatalf("PUT collection: %d %s", r.status, r.body)
		}
	}
	// Same key, same value, two subjects: two tags.
	if n := a.count(`SELECT count(DISTINCT tag) FROM fieldseal.search_tags`); n != 2 {
		t.Errorf("two subjects' tags for one value under one key: %d distinct; want 2", n)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags
		WHERE tag IN (fieldseal.digest('s:same@example.org', 'sha256'), fieldseal.digest('same@example.org', 'sha256'))
		   OR position(convert_to('same@example.org', 'UTF8') IN tag) > 0`); n != 0 {
		t.Errorf("a tag is the value or its plain hash")
	}
	// Each subject finds its own record only.
	if got := secrets(t, a.search(tokB, key, "collection=patients&secret.email=same@example.org"), "email"); len(got) != 1 {
		t.Errorf("subject b found %d records; want its 1", len(got))
	}

	// Tags are keyed by the data keys: a rotation (a rewrap) keeps them;
	// one that replaces the subject's keys makes every one anew.
	before := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE subject = 'subject-a'`)
	for _, reencrypt := range []bool{false, true} {
		oldTag := a.tagOf("subject-a")
		next := newKey(t)
		r := a.do(req{method: "POST", path: "/v1/keys/rotate", token: tokA, key: key, header: map[string]string{"New-Encryption-Key": next},
			body: map[string]any{"reencrypt": reencrypt}})
		if r.status != http.StatusOK {
			t.Fatalf("rotate: %d %s", r.status, r.body)
		}
		newTag := a.tagOf("subject-a")
		if after := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE subject = 'subject-a'`); after != before || bytes.Equal(oldTag, newTag) != !reencrypt {
			t.Errorf("after rotation (reencrypt %v): %d tags (before %d), tag changed: %v", reencrypt, after, before, !bytes.Equal(oldTag, newTag))
		}
		if got := secrets(t, a.search(tokA, next, "collection=patients&secret.email=same@example.org"), "email"); len(got) != 1 {
			t.Errorf("after rotation the new key finds %d records; want 1", len(got))
		}
		wantProblem(t, a.search(tokA, key, "collection=patients&secret.email=same@example.org"), http.StatusForbidden, "wrong_key")
		key = next
	}
}

// TestPublicFilters: public.F=V needs no key, compares top-level scalars
// only, and ANDs.
func TestPublicFilters(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("clinic-app", allScopes), newKey(t)
	a.create(tok, key, `{"collection":"patients","public":{"ward":"A","bed":7,"open":true},"secret":{"name":"one"}}`)
	a.create(tok, key, `{"collection":"patients","public":{"ward":"B","bed":"7"},"secret":{"name":"two"}}`)
	a.create(tok, key, `{"collection":"patients","public":{"ward":["A"]},"secret":{"name":"three"}}`)
	a.create(tok, key, `{"collection":"other","public":{"ward":"A","odd \"key\"":"x"},"secret":{"name":"four"}}`)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"public.ward=A", []string{"one", "four"}},
		{"collection=patients&public.ward=A", []string{"one"}},
		{"public.bed=7", []string{"one", "two"}},
		{"public.bed=7&public.ward=B", []string{"two"}},
		{"public.open=true", []string{"one"}},
		{"public.missing=A", []string{}},
		{"public." + url.QueryEscape(`odd "key"`) + "=x", []string{"four"}},
	} {
		if got := secrets(t, a.search(tok, key, c.query), "name"); !slices.Equal(got, c.want) {
			t.Errorf("%s (with key): %q; want %q", c.query, got, c.want)
		}
		r := a.search(tok, "", c.query)
		if got := secrets(t, r, "name"); len(got) != len(c.want) || strings.Contains(string(r.body), `"secret"`) {
			t.Errorf("%s (no key): %d records, body %s; want %d without secrets", c.query, len(got), r.body, len(c.want))
		}
	}
}

// TestBatchCreate: all or nothing, one audit entry per record, in order.
func TestBatchCreate(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("clinic-app", allScopes), newKey(t)
	if r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range 50 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"collection":"patients","public":{"i":%d},"secret":{"email":"p%d@example.org"}}`, i, i)
	}
	b.WriteString(`]}`)
	r := a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: b.String()})
	if r.status != http.StatusCreated {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	var got struct {
		Items []struct {
			ID     string         `json:"id"`
			Public map[string]any `json:"public"`
			Secret any            `json:"secret"`
		} `json:"items"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Items) != 50 {
		t.Fatalf("batch answer: %v %s", err, r.body)
	}
	for i, it := range got.Items {
		if it.Public["i"] != float64(i) || it.Secret != nil {
			t.Fatalf("item %d: %+v; want public.i %d, no secret", i, it, i)
		}
		if i > 0 && it.ID <= got.Items[i-1].ID {
			t.Fatalf("ids out of order at %d", i)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE action = 'record.create' AND outcome = 'ok'`); n != 50 {
		t.Errorf("%d audit entries; want one per record (50)", n)
	}
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.email=p37@example.org"), "email"); !slices.Equal(got, []string{"p37@example.org"}) {
		t.Errorf("a batch record is not found: %q", got)
	}

	// One bad record: 400 naming it, nothing written.
	for _, body := range []string{
		`{"records":[{"collection":"x","secret":{}},{"collection":"x","secret":"not an object"}]}`,
		`{"records":[{"collection":"x","secret":{}},{"collection":"","secret":{}}]}`,
		`{"records":[{"collection":"x","secret":{}},{"collection":"x","secret":{"a":"\u0000"}}]}`,
	} {
		r := a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: body})
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), "records[1]") {
			t.Errorf("the refusal does not name records[1]: %s", r.body)
		}
	}
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: `{"records":[]}`}), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key,
		body: `{"records":[` + strings.Repeat(`{"collection":"x","secret":{}},`, 1000) + `{"collection":"x","secret":{}}]}`}), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: newKey(t), body: `{"records":[{"collection":"x","secret":{}}]}`}), http.StatusForbidden, "wrong_key")
	if n := a.count(`SELECT count(*) FROM fieldseal.records WHERE collection = 'x'`); n != 0 {
		t.Errorf("refused batches wrote %d records", n)
	}

	// Idempotent: the same batch with the same key is done once.
	body := `{"records":[{"collection":"y","secret":{}},{"collection":"y","secret":{}}]}`
	h := map[string]string{"Idempotency-Key": "batch-1"}
	r1 := a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: body, header: h})
	r2 := a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: body, header: h})
	if r1.status != http.StatusCreated || r2.status != http.StatusCreated || !bytes.Equal(r1.body, r2.body) {
		t.Errorf("an idempotent retry: %d %s / %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.records WHERE collection = 'y'`); n != 2 {
		t.Errorf("an idempotent batch sent twice wrote %d records; want 2", n)
	}
}

// TestExportDeleteImport: an export, deleted and imported back, gives
// every record back as it was, decryptable and searchable.
func TestExportDeleteImport(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("clinic-app", allScopes), newKey(t)
	if r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{"case_insensitive":true}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	var ids []string
	for i := range 30 {
		ids = append(ids, a.create(tok, key, fmt.Sprintf(`{"collection":"patients","public":{"i":%d},"secret":{"email":"p%d@example.org"}}`, i, i)))
	}
	a.do(req{method: "PUT", path: "/v1/records/" + ids[3], token: tok, key: key, body: `{"collection":"patients","public":{"i":3},"secret":{"email":"changed@example.org"}}`})
	ex := a.do(req{method: "GET", path: "/v1/export", token: tok})
	if ex.status != http.StatusOK {
		t.Fatalf("export: %d", ex.status)
	}
	before := a.do(req{method: "GET", path: "/v1/records?limit=500", token: tok, key: key}).body

	imp := func(key, body string, h map[string]string) response {
		h = maps.Clone(h)
		if h == nil {
			h = map[string]string{}
		}
		h["Content-Type"] = "application/x-ndjson"
		return a.do(req{method: "POST", path: "/v1/import", token: tok, key: key, body: body, header: h})
	}
	// Wrong key: nothing.
	wantProblem(t, imp(newKey(t), string(ex.body), nil), http.StatusForbidden, "wrong_key")
	// Everything there already: all skipped.
	if r := imp(key, string(ex.body), nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `{"imported":0,"skipped":30}`) {
		t.Fatalf("import of what exists: %d %s", r.status, r.body)
	}
	for _, id := range ids {
		a.do(req{method: "DELETE", path: "/v1/records/" + id, token: tok})
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags`); n != 0 {
		t.Fatalf("%d tags after deleting every record", n)
	}
	r := imp(key, string(ex.body), nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `{"imported":30,"skipped":0}`) {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	after := a.do(req{method: "GET", path: "/v1/records?limit=500", token: tok, key: key}).body
	if !bytes.Equal(before, after) {
		t.Errorf("records after export, delete, import differ:\n%s\n%s", before, after)
	}
	if got := secrets(t, a.search(tok, key, "collection=patients&secret.email=CHANGED@example.org"), "email"); !slices.Equal(got, []string{"changed@example.org"}) {
		t.Errorf("an imported record is not found: %q", got)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE action = 'records.import' AND outcome = 'ok' AND record_count = 30`); n != 1 {
		t.Errorf("the import's audit entry: %d; want 1 with record_count 30", n)
	}

	// Bad lines: 400 naming the line, nothing written.
	lines := strings.Split(strings.TrimSpace(string(ex.body)), "\n")
	a.do(req{method: "DELETE", path: "/v1/records/" + ids[0], token: tok})
	tamper := func(i int, from, to string) string {
		l := slices.Clone(lines)
		l[i] = strings.Replace(l[i], from, to, 1)
		return strings.Join(l, "\n")
	}
	for _, c := range []struct {
		body, want string
	}{
		{tamper(1, `"ciphertext":"-----BEGIN`, `"ciphertext":"BEGIN`), "line 2"},
		{tamper(1, `"version":`, `"versio":`), "line 2"},
		{tamper(2, `"collection":"patients"`, `"collection":""`), "line 3"},
		{strings.Join(append(slices.Clone(lines), lines[0]), "\n"), "line 31"},
		{tamper(4, `"public":{`, `"public":{"z":"\u0000",`), "line 5"},
		{"", "no records"},
	} {
		r := imp(key, c.body, nil)
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), c.want) {
			t.Errorf("refusal does not say %q: %s", c.want, r.body)
		}
	}
	// An altered ciphertext (checksum line kept) fails its CRC.
	alt := []byte(lines[5])
	i := bytes.Index(alt, []byte(`\n\n`)) + 6
	alt[i] ^= 1
	if alt[i] == '\\' || alt[i] == '=' {
		alt[i] = 'A'
	}
	altered := slices.Clone(lines)
	altered[5] = string(alt)
	wantProblem(t, imp(key, strings.Join(altered, "\n"), nil), http.StatusBadRequest, "invalid_request")
	if n := a.count(`SELECT count(*) FROM fieldseal.records WHERE id = $1`, ids[0]); n != 0 {
		t.Errorf("a refused import wrote the deleted record back")
	}
}

// Collection names with a slash, a percent sign or non-ASCII letters go
// through the path, percent-encoded, and come back as they were.
func TestCollectionNamesInThePath(t *testing.T) {
	a := newAPI(t)
	tok, key := a.token("clinic-app", allScopes), newKey(t)
	for _, name := range []string{"a/b", "50%off", "ünï cødé", "a%2Fb"} {
		a.create(tok, key, map[string]any{"collection": name, "secret": map[string]any{"e": "x@example.org"}})
		if r := a.setSearchable(tok, key, name, `{"searchable":{"e":{}}}`); r.status != http.StatusOK || r.json(t)["collection"] != name || r.json(t)["indexed"] != float64(1) {
			t.Errorf("PUT %q: %d %s", name, r.status, r.body)
		}
		g := a.do(req{method: "GET", path: "/v1/collections/" + url.PathEscape(name), token: tok})
		if g.status != http.StatusOK || g.json(t)["collection"] != name {
			t.Errorf("GET %q: %d %s", name, g.status, g.body)
		}
		if got := secrets(t, a.search(tok, key, "collection="+url.QueryEscape(name)+"&secret.e=x@example.org"), "e"); len(got) != 1 {
			t.Errorf("search in %q: %q", name, got)
		}
	}
}

// TestImportAcrossPages: an import of more lines than one page holds
// (1,000: db.importPageLines) is still one transaction: a line that does
// not open, past the first thousand, refuses it all and is named; lines
// the subject has are skipped in any page; every record imported is
// tagged.
func TestImportAcrossPages(t *testing.T) {
	a := newAPI(t)
	alice, bob, carol := a.token("alice", allScopes), a.token("bob", allScopes), a.token("carol", allScopes)
	key, key2 := newKey(t), newKey(t)
	const n = 1200
	for _, tok := range []string{alice, carol} {
		if r := a.setSearchable(tok, key, "p", `{"searchable":{"e":{}}}`); r.status != http.StatusOK {
			t.Fatalf("PUT collection: %d %s", r.status, r.body)
		}
	}
	for lo := 0; lo < n; lo += 600 {
		var recs []any
		for i := lo; i < lo+600; i++ {
			recs = append(recs, map[string]any{"collection": "p", "secret": map[string]any{"e": fmt.Sprintf("p%d@example.org", i)}})
		}
		if r := a.do(req{method: "POST", path: "/v1/records/batch", token: alice, key: key, body: map[string]any{"records": recs}}); r.status != http.StatusCreated {
			t.Fatalf("batch: %d %.300s", r.status, r.body)
		}
	}
	a.create(bob, key2, map[string]any{"collection": "p", "secret": map[string]any{"e": "bob@example.org"}})
	export := func(tok string) []string {
		r := a.do(req{method: "GET", path: "/v1/export", token: tok})
		if r.status != http.StatusOK {
			t.Fatalf("export: %d", r.status)
		}
		return strings.Split(strings.TrimSpace(string(r.body)), "\n")
	}
	lines, bobs := export(alice), export(bob)
	if len(lines) != n {
		t.Fatalf("export of %d lines; want %d", len(lines), n)
	}
	imp := func(lines []string) response {
		return a.do(req{method: "POST", path: "/v1/import", token: carol, key: key, body: strings.Join(lines, "\n"), header: map[string]string{"Content-Type": "application/x-ndjson"}})
	}
	carols := func() (records, tags int) {
		return a.count(`SELECT count(*) FROM fieldseal.records WHERE subject = 'carol'`), a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE subject = 'carol'`)
	}

	bad := slices.Clone(lines)
	bad[1100] = bobs[0]
	r := imp(bad)
	wantProblem(t, r, http.StatusBadRequest, "invalid_request")
	if !strings.Contains(string(r.body), "line 1101 ") {
		t.Errorf("the refusal does not name line 1101: %s", r.body)
	}
	if recs, tags := carols(); recs != 0 || tags != 0 {
		t.Errorf("a refused import left %d records and %d tags", recs, tags)
	}
	// A line whose secret jsonb cannot read (written before secrets were
	// checked), in a collection carol searches: refused, named, nothing
	// written.
	// (dave is a subject of the old form: a verifier, records under his
	// client key.)
	a.execTx(`INSERT INTO fieldseal.subjects (subject, key_verifier) VALUES ('dave', fieldseal.new_key_verifier('`+key+`'))`,
		`INSERT INTO fieldseal.records (subject, id, collection, public, secret)
		VALUES ('dave', '0192f3a4-5b6c-7d8e-9f01-23456789abcd', 'p', '{}', fieldseal.pgp_sym_encrypt('{"e":"legacy-\u0000-text"}', '`+key+`', 'cipher-algo=aes256, s2k-mode=1'))`)
	bad = slices.Clone(lines)
	bad[1049] = export(a.token("dave", allScopes))[0]
	r = imp(bad)
	wantProblem(t, r, http.StatusBadRequest, "invalid_request")
	if !strings.Contains(string(r.body), "line 1050 ") || strings.Contains(string(r.body), "legacy-") {
		t.Errorf("the refusal should name line 1050 and quote nothing of it: %s", r.body)
	}
	if recs, tags := carols(); recs != 0 || tags != 0 {
		t.Errorf("a refused import left %d records and %d tags", recs, tags)
	}

	if r := imp(lines[:500]); r.status != http.StatusOK || !strings.Contains(string(r.body), `{"imported":500,"skipped":0}`) {
		t.Fatalf("import of 500: %d %s", r.status, r.body)
	}
	if r := imp(lines); r.status != http.StatusOK || !strings.Contains(string(r.body), `{"imported":700,"skipped":500}`) {
		t.Fatalf("import of all: %d %s; want 700 imported, 500 skipped", r.status, r.body)
	}
	if recs, tags := carols(); recs != n || tags != n {
		t.Errorf("carol has %d records and %d tags; want %d of each", recs, tags, n)
	}
	for _, i := range []int{7, 1150} {
		if got := secrets(t, a.search(carol, key, fmt.Sprintf("collection=p&secret.e=p%d@example.org", i)), "e"); len(got) != 1 {
			t.Errorf("imported record %d found by search: %q", i, got)
		}
	}
}
