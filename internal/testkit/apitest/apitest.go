// Package apitest runs fieldseal's real HTTP API for tests: a database of
// the test's own, an identity provider over HTTP (discovery and JWKS),
// the app role's pool, and the handlers, on an httptest server.
// With FIELDSEAL_TEST_SHOW_LOG=1 a test that fails prints the API's log.
package apitest

import (
	"bytes"
	"context"
	"crypto/rsa"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/internal/api"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// Audience is the audience the API expects.
const Audience = "fieldseal-test"

// Options shape the API; the zero value is the defaults.
type Options struct {
	MaxBody           int64
	Throttle          db.Throttle // zero: db.DefaultThrottle
	Decrypter         *auth.Decrypter
	RequireEncryption bool
	Timeouts          db.Timeouts // zero: db.DefaultTimeouts
	CitusForms        bool        // Citus's forms of every write, on one PostgreSQL (db.Config)
}

// Server is a running API.
type Server struct {
	URL string
	IdP *devissuer.Issuer
	Log *SyncBuffer // the API's log
}

// Start runs the API on database, trusting tokens signed by signingKey.
func Start(t testing.TB, database pgtest.DB, signingKey *rsa.PrivateKey, o Options) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if o.Throttle == (db.Throttle{}) {
		o.Throttle = db.DefaultThrottle
	}
	idpSrv := httptest.NewUnstartedServer(nil)
	idp := devissuer.New("http://"+idpSrv.Listener.Addr().String(), signingKey)
	idpSrv.Config.Handler = idp.Handler()
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	logBuf := &SyncBuffer{}
	a, err := api.New(ctx, api.Config{
		Database: db.Config{URL: database.AppURL, TransactionPooler: database.TransactionPooler, Throttle: o.Throttle, Timeouts: o.Timeouts, CitusForms: o.CitusForms},
		Tokens: auth.Options{
			Issuer: idp.URL, Audience: Audience, Keys: auth.KeySource{Issuer: idp.URL},
			Decrypter: o.Decrypter, RequireEncryption: o.RequireEncryption,
		},
		Log: slog.New(slog.NewJSONHandler(logBuf, nil)), MaxBody: o.MaxBody,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("FIELDSEAL_TEST_SHOW_LOG") == "1" {
			t.Logf("the API's log:\n%s", logBuf.String())
		}
	})
	return &Server{URL: srv.URL, IdP: idp, Log: logBuf}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
