package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

// provider is an identity provider over HTTP that counts JWKS fetches.
type provider struct {
	*devissuer.Issuer // replaced by tests to rotate the key; guarded by mu
	mu                sync.Mutex
	srv               *httptest.Server
	jwksHits          atomic.Int64
	discovered        atomic.Int64
	failing           atomic.Bool // answer 502 to everything
}

func newProvider(t *testing.T) *provider {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{}
	p.srv = httptest.NewUnstartedServer(nil)
	p.Issuer = devissuer.New("http://"+p.srv.Listener.Addr().String(), k)
	p.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		inner := p.Issuer.Handler()
		p.mu.Unlock()
		if p.failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		switch r.URL.Path {
		case "/jwks.json":
			p.jwksHits.Add(1)
		case "/.well-known/openid-configuration":
			p.discovered.Add(1)
		}
		inner.ServeHTTP(w, r)
	})
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func TestKeySources(t *testing.T) {
	p := newProvider(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, p.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := p.Mint("alice", "aud", "records:read", time.Hour, map[string]any{"aud": []string{"other", "aud"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]auth.KeySource{
		"discovery": {Issuer: p.URL},
		"url":       {JWKSURL: p.URL + "/jwks.json"},
		"file":      {JWKSFile: file},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := auth.NewVerifier(context.Background(), auth.Options{Issuer: p.URL, Audience: "aud", Keys: src})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "alice" || !c.HasScope("records:read") || c.HasScope("records:write") || c.ID == "" {
				t.Errorf("claims = %+v", c)
			}
		})
	}
	if p.discovered.Load() != 1 {
		t.Errorf("discovery fetched %d times; want 1", p.discovered.Load())
	}
}

func TestKeySourceErrors(t *testing.T) {
	p := newProvider(t)
	for name, tc := range map[string]struct {
		opts auth.Options
		want string
	}{
		"no source":                      {auth.Options{Issuer: p.URL, Audience: "a"}, ""},
		"no issuer":                      {auth.Options{Audience: "a", Keys: auth.KeySource{JWKSURL: p.URL}}, "issuer is required"},
		"no audience":                    {auth.Options{Issuer: p.URL, Keys: auth.KeySource{JWKSURL: p.URL}}, "audience is required"},
		"http JWKS off host":             {auth.Options{Issuer: "x", Audience: "a", Keys: auth.KeySource{JWKSURL: "http://idp.example/jwks"}}, "must use https"},
		"http issuer off host":           {auth.Options{Issuer: "http://idp.example", Audience: "a", Keys: auth.KeySource{Issuer: "http://idp.example"}}, "must use https"},
		"discovery names another issuer": {auth.Options{Issuer: p.URL + "/", Audience: "a", Keys: auth.KeySource{Issuer: p.URL + "/"}}, "names issuer"},
		"HS256 allowed":                  {auth.Options{Issuer: p.URL, Audience: "a", Algorithms: []string{"HS256"}, Keys: auth.KeySource{JWKSURL: p.URL + "/jwks.json"}}, "not supported"},
		"missing file":                   {auth.Options{Issuer: p.URL, Audience: "a", Keys: auth.KeySource{JWKSFile: "/nonexistent.json"}}, "read JWKS file"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "no source" {
				tc.opts.Keys = auth.KeySource{}
				tc.opts.Issuer = ""
				tc.want = "issuer is required"
			}
			_, err := auth.NewVerifier(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewVerifier = %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestUnknownKidRefreshesAtBoundedRate(t *testing.T) {
	p := newProvider(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := auth.NewVerifier(ctx, auth.Options{Issuer: p.URL, Audience: "aud", Keys: auth.KeySource{JWKSURL: p.URL + "/jwks.json"}})
	if err != nil {
		t.Fatal(err)
	}
	stranger := devissuer.New(p.URL, mustKey(t))
	before := p.jwksHits.Load()
	for range 50 {
		tok, _ := stranger.Mint("alice", "aud", "", time.Hour, nil)
		if _, err := v.Verify(context.Background(), tok); fieldseal.ErrorCode(err) != fieldseal.EUNAUTHORIZED {
			t.Fatalf("a token from an unknown key: %v; want invalid_token", err)
		}
	}
	if hits := p.jwksHits.Load() - before; hits > 1 {
		t.Errorf("50 unknown-kid tokens caused %d JWKS fetches; want at most 1", hits)
	}
	// Refused at once, not after waiting for the limiter: the loop above
	// would take minutes otherwise, and this test has a deadline of its own.
}

func TestProviderRotatesKeys(t *testing.T) {
	p := newProvider(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := auth.NewVerifier(ctx, auth.Options{Issuer: p.URL, Audience: "aud", Keys: auth.KeySource{Issuer: p.URL}})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := p.Mint("alice", "aud", "", time.Hour, nil)
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	// The provider replaces its key: a token under the new key works at
	// once (one refresh for the unknown kid), and the old key is gone.
	p.mu.Lock()
	p.Issuer = devissuer.New(p.URL, mustKey(t))
	p.mu.Unlock()
	fresh, _ := p.Mint("alice", "aud", "", time.Hour, nil)
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Errorf("a token under the provider's new key: %v", err)
	}
	if _, err := v.Verify(ctx, old); err == nil {
		t.Error("a token under the removed key is still accepted after the refresh")
	}
}

func mustKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestProviderDownKeepsCachedKeys(t *testing.T) {
	p := newProvider(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := auth.NewVerifier(ctx, auth.Options{Issuer: p.URL, Audience: "aud", Keys: auth.KeySource{JWKSURL: p.URL + "/jwks.json"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := p.Mint("alice", "aud", "", time.Hour, nil)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	p.srv.Close()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("with the provider down, a token under a cached key: %v", err)
	}
	stranger, _ := devissuer.New(p.URL, mustKey(t)).Mint("alice", "aud", "", time.Hour, nil)
	if _, err := v.Verify(ctx, stranger); fieldseal.ErrorCode(err) != fieldseal.EUNAUTHORIZED {
		t.Errorf("with the provider down, an unknown key: %v; want invalid_token", err)
	}
}

// The JWKS is fetched at start and then every RefreshInterval, counted
// through the refresh hook: a key the provider adds is picked up by the
// background refresh alone, and a failed refresh is logged to the
// configured logger, keeping the cached keys.
func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	p := newProvider(t)
	refreshes := make(chan bool, 100)
	var log apitest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := auth.NewVerifier(ctx, auth.Options{Issuer: p.URL, Audience: "aud", Log: slog.New(slog.NewJSONHandler(&log, nil)),
		Keys: auth.KeySource{JWKSURL: p.URL + "/jwks.json", RefreshInterval: 50 * time.Millisecond,
			OnRefresh: func(trigger string, ok bool) {
				if trigger != "background" {
					t.Errorf("a fetch triggered by %q; want only background ones", trigger)
				}
				select {
				case refreshes <- ok:
				default:
				}
			}}})
	if err != nil {
		t.Fatal(err)
	}
	next := func() bool {
		t.Helper()
		select {
		case ok := <-refreshes:
			return ok
		case <-time.After(10 * time.Second):
			t.Fatal("no JWKS refresh within 10 s")
			return false
		}
	}
	for range 3 { // the first fetch and two background refreshes
		if !next() {
			t.Fatal("a refresh failed")
		}
	}
	// The provider changes its key; the next background refresh brings it.
	p.mu.Lock()
	p.Issuer = devissuer.New(p.URL, mustKey(t))
	p.mu.Unlock()
	next() // may have started before the change
	next()
	tok, _ := p.Mint("alice", "aud", "", time.Hour, nil)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("a token under the provider's new key after a background refresh: %v", err)
	}
	// The provider fails: refreshes fail, the cached key keeps working,
	// and the warning reaches the configured logger.
	p.failing.Store(true)
	for next() {
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("with refreshes failing, a token under a cached key: %v", err)
	}
	for !strings.Contains(log.String(), "JWKS refresh failed") {
		next()
	}
}
