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
	// RefreshInterval is how often the JWKS is fetched in the background;
	// zero means 5 minutes.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches caused by
	// tokens naming unknown kids; zero means 10 seconds.
	UnknownKIDInterval time.Duration
	// OnRefresh, if not nil, is told of every JWKS fetch: why ("background"
	// or "unknown_kid") and whether it worked. For metrics, and for tests
	// that wait on refreshes.
	OnRefresh func(trigger string, ok bool)
}

const (
	defaultRefresh     = 5 * time.Minute
	unknownKIDInterval = 10 * time.Second
	// unknownKIDWaitMax bounds what a token naming an unknown kid may
	// cost: the wait for the refresh budget and the fetch itself (jwkset
	// runs the fetch under the same deadline). With the budget spent, such
	// a token is refused at once: the limiter sees it could not be served
	// within the bound.
	unknownKIDWaitMax = 3 * time.Second
	jwksMaxBytes      = 1 << 20
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// newKeyfunc builds the key lookup: from a file, or from a remote JWKS that
// jwkset keeps: fetched at start (a failure is logged, not fatal), again
// every RefreshInterval, and on a token naming an unknown kid at most once
// per UnknownKIDInterval. A failed fetch keeps the cached keys (served
// while the provider is down); a successful one replaces them all, so a
// key the provider removed stops working. Warnings go to log.
func newKeyfunc(ctx context.Context, src KeySource, log *slog.Logger) (keyfunc.Keyfunc, error) {
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
	observed := *client
	observed.Transport = &fetchObserver{next: orDefaultTransport(client.Transport), observe: src.OnRefresh}
	storage, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Client:                    &observed,
		Ctx:                       context.WithValue(ctx, backgroundFetch{}, true),
		HTTPTimeout:               10 * time.Second,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           orDefault(src.RefreshInterval, defaultRefresh),
		RefreshErrorHandler: func(ctx context.Context, err error) {
			log.WarnContext(ctx, "JWKS refresh failed; keeping the cached keys", "url", jwksURL, "error", err.Error())
		},
	})
	if err != nil {
		return nil, fmt.Errorf("JWKS URL: %w", err)
	}
	set, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{jwksURL: storage},
		RefreshUnknownKID: rate.NewLimiter(rate.Every(orDefault(src.UnknownKIDInterval, unknownKIDInterval)), 1),
		RateLimitWaitMax:  unknownKIDWaitMax,
	})
	if err != nil {
		return nil, err
	}
	return keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: set})
}

// backgroundFetch marks the context of jwkset's own fetches (the first
// and the periodic ones); a fetch without it was caused by an unknown kid.
type backgroundFetch struct{}

// fetchObserver is the JWKS client's transport: it reports every fetch to
// observe and bounds the body jwkset decodes.
type fetchObserver struct {
	next    http.RoundTripper
	observe func(trigger string, ok bool)
}

func (f *fetchObserver) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(r)
	if f.observe != nil {
		trigger := "unknown_kid"
		if r.Context().Value(backgroundFetch{}) != nil {
			trigger = "background"
		}
		f.observe(trigger, err == nil && resp.StatusCode == http.StatusOK)
	}
	if err == nil {
		resp.Body = limitedBody{io.LimitReader(resp.Body, jwksMaxBytes), resp.Body}
	}
	return resp, err
}

type limitedBody struct {
	io.Reader
	io.Closer
}

func orDefaultTransport(t http.RoundTripper) http.RoundTripper {
	if t == nil {
		return http.DefaultTransport
	}
	return t
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
