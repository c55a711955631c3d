package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/client"
	"github.com/fieldseal/fieldseal/internal/rsakey"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// start runs the real API and returns a client for subject with scopes.
func start(t *testing.T) (*apitest.Server, func(subject, scopes string) *client.Client) {
	t.Helper()
	pemKey, err := os.ReadFile("testdata/signing-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsakey.Parse(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.Start(t, pgtest.NewDB(t), key, apitest.Options{})
	return srv, func(subject, scopes string) *client.Client {
		tok, err := srv.IdP.Mint(subject, apitest.Audience, scopes, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		return client.New(srv.URL, tok, nil)
	}
}

func TestEveryEndpoint(t *testing.T) {
	t.Parallel()
	_, as := start(t)
	ctx := context.Background()
	c := as("alice", "records:read records:write keys:rotate")
	key := newKey()

	rec, err := c.CreateRecord(ctx, key, client.RecordInput{Collection: "notes", Public: map[string]any{"t": 1}, Secret: map[string]string{"s": "x"}})
	if err != nil || rec.Version != 1 {
		t.Fatalf("create: %+v %v", rec, err)
	}
	id := rec.ID.String()
	got, err := c.GetRecord(ctx, id, key)
	if err != nil || string(got.Secret) != `{"s":"x"}` {
		t.Errorf("get with key: %s %v", got.Secret, err)
	}
	if got, err := c.GetRecord(ctx, id, ""); err != nil || got.Secret != nil {
		t.Errorf("get without key: %s %v", got.Secret, err)
	}
	page, err := c.ListRecords(ctx, key, client.ListOptions{Collection: "notes", Limit: 10})
	if err != nil || len(page.Items) != 1 || page.Next != "" {
		t.Errorf("list: %+v %v", page, err)
	}
	if _, err := c.ReplaceRecord(ctx, id, key, 7, client.RecordInput{Collection: "notes", Secret: map[string]any{}}); client.Code(err) != fieldseal.ECONFLICT {
		t.Errorf("stale replace: %v; want version_conflict", err)
	}
	if rec, err = c.ReplaceRecord(ctx, id, key, 1, client.RecordInput{Collection: "notes", Secret: map[string]string{"s": "y"}}); err != nil || rec.Version != 2 {
		t.Errorf("replace: %+v %v", rec, err)
	}
	if armored, err := c.Ciphertext(ctx, id); err != nil || !strings.HasPrefix(armored, "-----BEGIN PGP MESSAGE-----") {
		t.Errorf("ciphertext: %.40q %v", armored, err)
	}
	var exported []fieldseal.ExportedRecord
	if err := c.Export(ctx, func(r fieldseal.ExportedRecord) error { exported = append(exported, r); return nil }); err != nil || len(exported) != 1 {
		t.Errorf("export: %d records, %v", len(exported), err)
	}
	if err := c.VerifyKey(ctx, key); err != nil {
		t.Errorf("verify: %v", err)
	}
	wrong := newKey()
	if err := c.VerifyKey(ctx, wrong); client.Code(err) != fieldseal.EWRONGKEY {
		t.Errorf("verify a wrong key: %v; want wrong_key", err)
	}
	next := newKey()
	if n, err := c.RotateKey(ctx, key, next, false); err != nil || n != 0 {
		t.Errorf("rotate: %d %v; want a rewrap", n, err)
	}
	if n, err := c.RotateKey(ctx, next, next, true); err != nil || n != 1 {
		t.Errorf("rotate with reencrypt: %d %v; want 1 record re-encrypted", n, err)
	}
	if got, err := c.GetRecord(ctx, id, next); err != nil || string(got.Secret) != `{"s":"y"}` {
		t.Errorf("get after rotation: %s %v", got.Secret, err)
	}
	// Search, batch, import.
	if n, err := c.SetCollection(ctx, next, "notes", map[string]fieldseal.SearchableField{"s": {CaseInsensitive: true}}); err != nil || n != 1 {
		t.Errorf("set collection: %d %v", n, err)
	}
	if got, err := c.GetCollection(ctx, "notes"); err != nil || !got.Searchable["s"].CaseInsensitive {
		t.Errorf("get collection: %+v %v", got, err)
	}
	batch, err := c.CreateRecords(ctx, next, []client.RecordInput{
		{Collection: "notes", Public: map[string]any{"t": 2}, Secret: map[string]string{"s": "Z"}},
		{Collection: "notes", Public: map[string]any{"t": 2}, Secret: map[string]string{"s": "w"}},
	})
	if err != nil || len(batch) != 2 {
		t.Errorf("batch: %d records, %v", len(batch), err)
	}
	found, err := c.ListRecords(ctx, next, client.ListOptions{Collection: "notes", Secret: map[string]string{"s": "z"}, Public: map[string]string{"t": "2"}})
	if err != nil || len(found.Items) != 1 || string(found.Items[0].Secret) != `{"s":"Z"}` {
		t.Errorf("search: %+v %v", found, err)
	}
	var ndjson bytes.Buffer
	for _, r := range exported {
		_ = json.NewEncoder(&ndjson).Encode(r)
	}
	if _, err := c.Import(ctx, next, bytes.NewReader(ndjson.Bytes())); client.Code(err) != fieldseal.EINVALID {
		t.Errorf("import of an export from before the rotation: %v; want invalid_request naming the lines (they open only under the old key; the key sent is right)", err)
	}
	ndjson.Reset()
	if err := c.Export(ctx, func(r fieldseal.ExportedRecord) error { return json.NewEncoder(&ndjson).Encode(r) }); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Import(ctx, next, &ndjson); err != nil || res != (fieldseal.ImportResult{Imported: 0, Skipped: 3}) {
		t.Errorf("import of what exists: %+v %v; want 3 skipped", res, err)
	}
	if err := c.DeleteRecord(ctx, id, 0); err != nil {
		t.Errorf("delete: %v", err)
	}
	_, err = c.GetRecord(ctx, id, "")
	var e *client.Error
	if client.Code(err) != fieldseal.ENOTFOUND {
		t.Errorf("get a deleted record: %v; want not_found", err)
	} else if e = err.(*client.Error); e.Status != 404 || e.RequestID == "" {
		t.Errorf("error = %+v; want status 404 and a request id", e)
	}

	// The auditor's endpoints.
	dba := as("dba", "audit:read")
	events, err := dba.AuditEvents(ctx, client.AuditQuery{Subject: "alice", Limit: 100})
	if err != nil || len(events.Items) < 8 {
		t.Errorf("audit events: %d, %v", len(events.Items), err)
	}
	report, err := dba.Grants(ctx)
	if err != nil || len(report.Drift) != 0 || len(report.Privileges) == 0 {
		t.Errorf("grants: %d drift, %d privileges, %v", len(report.Drift), len(report.Privileges), err)
	}
	if _, err := c.Grants(ctx); client.Code(err) != fieldseal.EFORBIDDEN {
		t.Errorf("grants without audit:read: %v; want insufficient_scope", err)
	}
}

func TestThrottledErrorCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	_, as := start(t)
	ctx := context.Background()
	c := as("alice", "records:read records:write")
	key := newKey()
	if _, err := c.CreateRecord(ctx, key, client.RecordInput{Collection: "c", Secret: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		_ = c.VerifyKey(ctx, newKey())
	}
	err := c.VerifyKey(ctx, key)
	e, ok := err.(*client.Error)
	if !ok || e.Code != fieldseal.ERATELIMITED || e.Status != 429 || e.RetryAfter <= 0 {
		t.Errorf("after 10 wrong keys: %v; want rate_limited with Retry-After", err)
	}
}
