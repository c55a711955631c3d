package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/handlers"
	"github.com/fieldseal/fieldseal/internal/rsakey"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	audience  = apitest.Audience
	allScopes = "records:read records:write keys:rotate audit:read"
)

// api is a running fieldseal API on its own database, trusting one
// identity provider served over HTTP.
type api struct {
	t      testing.TB
	URL    string
	db     pgtest.DB
	idp    *devissuer.Issuer
	logBuf *apitest.SyncBuffer // the server's log
}

func loadKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := rsakey.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newAPI starts the API on a fresh database, connected as an app login role.
func newAPI(t *testing.T) *api {
	t.Helper()
	return startAPI(t, pgtest.NewDB(t), apitest.Options{})
}

// startAPI starts the API on database with o (the zero value: defaults).
func startAPI(t testing.TB, database pgtest.DB, o apitest.Options) *api {
	t.Helper()
	srv := apitest.Start(t, database, loadKey(t, "signing-key.pem"), o)
	return &api{t: t, URL: srv.URL, db: database, idp: srv.IdP, logBuf: srv.Log}
}

// token mints a token for sub with scopes, valid for an hour.
func (a *api) token(sub, scopes string) string {
	a.t.Helper()
	tok, err := a.idp.Mint(sub, audience, scopes, time.Hour, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	return tok
}

func newKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// req is one HTTP request to the API.
type req struct {
	method, path string
	token, key   string
	body         any // string sent as is, anything else as JSON
	header       map[string]string
}

// response is a read response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// request is r as an HTTP request under ctx, and the body it sends.
func (a *api) request(ctx context.Context, r req) (*http.Request, []byte, error) {
	var body io.Reader
	var raw []byte
	switch b := r.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
		body = bytes.NewReader(raw)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(ctx, r.method, a.URL+r.path, body)
	if err != nil {
		return nil, nil, err
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.key != "" {
		hr.Header.Set("Encryption-Key", r.key)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	return hr, raw, nil
}

// do sends r and reads its answer, checking both against the OpenAPI
// document.
func (a *api) do(r req) response {
	a.t.Helper()
	hr, raw, err := a.request(context.Background(), r)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	conformsToSpec(a.t, r.method, a.URL+r.path, hr.Header, raw, out)
	return out
}

// wantProblem checks a problem+json response with status and code.
func wantProblem(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d; want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q; want application/problem+json", ct)
	}
	var p handlers.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("body is not a problem: %v: %s", err, r.body)
	}
	if p.Code != code || p.Status != status {
		t.Errorf("problem code, status = %q, %d; want %q, %d (detail %q)", p.Code, p.Status, code, status, p.Detail)
	}
	if p.RequestID == "" || p.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("problem request_id = %q; want the X-Request-Id %q", p.RequestID, r.header.Get("X-Request-Id"))
	}
}

// create stores a record and returns its id.
func (a *api) create(token, key string, body any) string {
	a.t.Helper()
	r := a.do(req{method: "POST", path: "/v1/records", token: token, key: key, body: body})
	if r.status != http.StatusCreated {
		a.t.Fatalf("create: status %d; want 201: %s", r.status, r.body)
	}
	id, _ := r.json(a.t)["id"].(string)
	return id
}

// adminQuery runs one statement as the admin (superuser) on the API's database.
func (a *api) adminQuery(sql string, args ...any) pgx.Rows {
	a.t.Helper()
	conn, err := pgx.Connect(context.Background(), a.db.AdminURL)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { conn.Close(context.Background()) })
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		a.t.Fatal(err)
	}
	return rows
}

// exec runs one statement as the admin on database ("" for the API's),
// failing the test if it fails.
// execTx runs stmts, one at a time, in one transaction, as the admin.
func (a *api) execTx(stmts ...string) {
	a.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, a.db.AdminURL)
	if err != nil {
		a.t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		a.t.Fatal(err)
	}
}

func (a *api) exec(database, sql string, args ...any) {
	a.t.Helper()
	u := a.db.AdminURL
	if database != "" {
		u = strings.Replace(u, "/"+a.db.Name+"?", "/"+database+"?", 1)
	}
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		a.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		a.t.Fatalf("%s: %v", sql, err)
	}
}

// count returns a count(*)-style integer query run as the admin.
func (a *api) count(sql string, args ...any) int {
	a.t.Helper()
	rows := a.adminQuery(sql, args...)
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
	if err != nil {
		a.t.Fatal(err)
	}
	return n
}

func newDB(t *testing.T) pgtest.DB { return pgtest.NewDB(t) }

// doChunked POSTs body with no Content-Length (chunked transfer encoding).
func (a *api) doChunked(token, key, body string) response {
	a.t.Helper()
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(body))
		pw.Close()
	}()
	hr, _ := http.NewRequest("POST", a.URL+"/v1/records", pr)
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Encryption-Key", key)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestWholeSuiteThroughPgBouncer runs every test of this package again
// with the API's app role behind PgBouncer 1.18 in transaction pooling
// mode (FIELDSEAL_TRANSACTION_POOLER=true's setting in the Store).
func TestWholeSuiteThroughPgBouncer(t *testing.T) {
	pgtest.RunThroughPgBouncer(t)
}

// openAdmin is an admin connection to url, closed when t ends.
func openAdmin(t testing.TB, url string) *db.Admin {
	t.Helper()
	a, err := db.OpenAdmin(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}
