package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

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
// the background every RefreshInterval, refreshed on an unknown kid at most
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
	return keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:            client,
		RefreshInterval:   refreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKIDInterval), 1),
	})
}

const (
	refreshInterval    = 5 * time.Minute
	unknownKIDInterval = 10 * time.Second
)

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
