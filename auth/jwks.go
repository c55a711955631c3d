package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// KeySource says where the provider's public keys come from. Exactly one
// of JWKSFile, JWKSURL or Issuer (OIDC discovery) is used, in that order.
type KeySource struct {
	JWKSFile string
	JWKSURL  string
	Issuer   string
	// HTTPClient fetches discovery documents and JWKS; nil means a client
	// with a 10 s timeout.
	HTTPClient *http.Client
}

// newKeyfunc builds the key lookup. A remote JWKS is cached, refreshed in
// the background every refreshInterval, refreshed on an unknown kid at most
// once per unknownKIDInterval, and served stale while the provider is down.
func newKeyfunc(ctx context.Context, src KeySource) (keyfunc.Keyfunc, error) {
	client := src.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if src.JWKSFile != "" {
		raw, err := os.ReadFile(src.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("read JWKS file: %w", err)
		}
		kf, err := keyfunc.NewJWKSetJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("JWKS file %s: %w", src.JWKSFile, err)
		}
		return kf, nil
	}
	jwksURL := src.JWKSURL
	if jwksURL == "" {
		if src.Issuer == "" {
			return nil, errors.New("no JWKS source: set a JWKS file, a JWKS URL or an issuer for OIDC discovery")
		}
		var err error
		if jwksURL, err = discoverJWKS(ctx, client, src.Issuer); err != nil {
			return nil, err
		}
	}
	if err := CheckRemoteURL(jwksURL); err != nil {
		return nil, fmt.Errorf("JWKS URL: %w", err)
	}
	background, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		NoErrorReturnFirstHTTPReq: true, // start while the provider is down; keys arrive later
		RefreshInterval:           refreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			slog.WarnContext(ctx, "JWKS refresh failed; keeping the cached keys", "url", jwksURL, "error", err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("JWKS URL %s: %w", jwksURL, err)
	}
	return keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: &unknownKIDRefresher{
		Storage: background, url: jwksURL, client: client,
		limiter: rate.NewLimiter(rate.Every(unknownKIDInterval), 1),
	}})
}

const (
	refreshInterval    = 5 * time.Minute
	unknownKIDInterval = 10 * time.Second
)

// unknownKIDRefresher is the JWKS cache: a background refresh every
// refreshInterval (jwkset's HTTP storage, which keeps the cached keys while
// the provider is down), plus one fetch when a token names a kid the cache
// does not hold, at most once per unknownKIDInterval. Unlike keyfunc's own
// unknown-kid refresh, which waits for its rate limiter (up to a minute per
// request), a kid that arrives while the limiter is spent is refused at once:
// a flood of made-up kids neither hammers the provider nor stalls requests.
type unknownKIDRefresher struct {
	jwkset.Storage
	url     string
	client  *http.Client
	limiter *rate.Limiter
	mu      sync.Mutex // one refresh at a time
}

// KeyRead implements jwkset.Storage.
func (s *unknownKIDRefresher) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := s.Storage.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) || !s.limiter.Allow() {
		return jwk, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(ctx); err != nil {
		slog.WarnContext(ctx, "JWKS refresh for an unknown kid failed; keeping the cached keys", "url", s.url, "error", err)
		return jwkset.JWK{}, err
	}
	return s.Storage.KeyRead(ctx, kid)
}

// refresh replaces the cached keys with the provider's current set, so a
// key removed there stops being accepted here.
func (s *unknownKIDRefresher) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set jwkset.JWKSMarshal
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	fresh, err := set.ToStorage()
	if err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	keys, err := fresh.KeyReadAll(ctx)
	if err != nil {
		return err
	}
	return s.Storage.KeyReplaceAll(ctx, keys)
}

// discoverJWKS reads <issuer>/.well-known/openid-configuration and returns
// its jwks_uri. The document's issuer must be the configured one (OpenID
// Connect Discovery 1.0, section 4.3).
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	if err := CheckRemoteURL(issuer); err != nil {
		return "", fmt.Errorf("issuer: %w", err)
	}
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("OIDC discovery at %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("OIDC discovery at %s answered %s", u, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("OIDC discovery at %s: %w", u, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("OIDC discovery at %s names issuer %q, not the configured %q", u, doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("OIDC discovery at %s has no jwks_uri", u)
	}
	return doc.JWKSURI, nil
}
