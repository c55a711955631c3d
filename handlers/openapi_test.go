package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/fieldseal/fieldseal/handlers/openapi"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// spec loads and validates the OpenAPI document once per test binary.
func spec(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/jwk-set+json", openapi3filter.JSONBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/pgp-encrypted", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
		doc, err := openapi3.NewLoader().LoadFromData(openapi.Document)
		if err != nil {
			specErr = err
			return
		}
		if specErr = doc.Validate(context.Background()); specErr != nil {
			return
		}
		specRouter, specErr = legacy.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("the OpenAPI document: %v", specErr)
	}
	return specRouter
}

// conformsToSpec checks one exchange against the OpenAPI document: the
// response always, the request when the server accepted it (tests send
// malformed requests on purpose). Exchanges on paths or methods the
// document does not describe (unknown endpoints) are not checked.
func conformsToSpec(t testing.TB, method, url string, header http.Header, body []byte, r response) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header = header.Clone()
	route, params, err := spec(t).FindRoute(req)
	if err != nil {
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if r.status < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("OpenAPI: %s %s: the request does not conform: %v", method, route.Path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header,
		Body: io.NopCloser(bytes.NewReader(r.body)), Options: opts}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("OpenAPI: %s %s → %d: the response does not conform: %v", method, route.Path, r.status, err)
	}
	// NDJSON lines are objects the document describes too.
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/x-ndjson") {
		for _, line := range bytes.Split(bytes.TrimSpace(r.body), []byte("\n")) {
			var m map[string]any
			if len(line) > 0 && json.Unmarshal(line, &m) != nil {
				t.Errorf("OpenAPI: an export line is not a JSON object")
			}
		}
	}
}

func TestOpenAPIDocumentIsServedAndValid(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	r := a.do(req{method: "GET", path: "/openapi.json"})
	if r.status != http.StatusOK || !bytes.Equal(r.body, openapi.Document) {
		t.Fatalf("/openapi.json: %d", r.status)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q; want 3.1.0", doc.OpenAPI)
	}
	// Every route the server has is documented.
	for _, path := range []string{"/v1/records", "/v1/records/{id}", "/v1/records/{id}/ciphertext", "/v1/keys/verify", "/v1/keys/rotate",
		"/v1/export", "/v1/audit/events", "/v1/audit/grants", "/.well-known/jwks.json", "/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if doc.Paths.Find(path) == nil {
			t.Errorf("%s is not documented", path)
		}
	}
	// Every problem code of the contract is in the document.
	for _, code := range []string{"invalid_request", "key_required", "invalid_key", "invalid_token", "insufficient_scope", "wrong_key",
		"not_found", "version_conflict", "payload_too_large", "rate_limited", "unavailable"} {
		if !bytes.Contains(r.body, []byte(`"`+code+`"`)) {
			t.Errorf("problem code %s is not documented", code)
		}
	}
	for _, h := range []string{"Encryption-Key", "New-Encryption-Key", "If-Match", "ETag", "Retry-After", "WWW-Authenticate"} {
		if !bytes.Contains(r.body, []byte(h)) {
			t.Errorf("header %s is not documented", h)
		}
	}
}

// redoclyCLI is the linter the OpenAPI document must pass, pinned.
const redoclyCLI = "@redocly/cli@2.77.0"

// The OpenAPI document passes a strict linter (Redocly's recommended
// rules) with no error and no warning: servers, every required property
// defined, a 4xx for every operation, no unused component.
func TestOpenAPILint(t *testing.T) {
	t.Parallel()
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Fatal("npx is not installed: the OpenAPI document is linted with " + redoclyCLI + " (apt-get install nodejs npm)")
	}
	cmd := exec.Command(npx, "--yes", redoclyCLI, "lint", "--format=json", "openapi/openapi.json")
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "NO_UPDATE_NOTIFIER=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var report struct {
		Totals   struct{ Errors, Warnings int }
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string
			Message  string
			Location []struct{ Pointer string }
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("%s lint: %v (%v)\n%s", redoclyCLI, err, runErr, stderr.String())
	}
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if runErr != nil && len(report.Problems) == 0 {
		t.Errorf("%s lint: %v\n%s", redoclyCLI, runErr, stderr.String())
	}
}
