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
	"strconv"
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
	// UnknownKIDInterval is the least time between two fetches caused by
	// tokens naming unknown kids; zero means 10 seconds.
	UnknownKIDInterval time.Duration
	// OnRefresh, if not nil, is told of every JWKS fetch: why ("background"
	// or "unknown_kid") and whether it worked. For metrics.
	OnRefresh func(trigger string, ok bool)
	// MinRefresh and MaxRefresh bound the background refresh interval taken
	// from the provider's Cache-Control; zero means 1 minute and 1 hour.
	MinRefresh, MaxRefresh time.Duration
}

// newKeyfunc builds the key lookup: from a file, or from a remote JWKS
// cached as remoteJWKS describes.
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
	remote := &remoteJWKS{
		Storage: jwkset.NewMemoryStorage(), url: jwksURL, client: client,
		limiter:    rate.NewLimiter(rate.Every(orDefault(src.UnknownKIDInterval, unknownKIDInterval)), 1),
		minRefresh: orDefault(src.MinRefresh, minRefresh),
		maxRefresh: orDefault(src.MaxRefresh, maxRefresh),
		firstFetch: make(chan struct{}),
		onRefresh:  src.OnRefresh,
	}
	go remote.refreshLoop(ctx)
	return keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: remote})
}

const (
	// The background refresh follows the provider's Cache-Control max-age,
	// within these bounds; defaultRefresh when it sends none.
	minRefresh     = time.Minute
	maxRefresh     = time.Hour
	defaultRefresh = 5 * time.Minute
	// By default an unknown kid fetches the JWKS at most this often.
	unknownKIDInterval = 10 * time.Second
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// remoteJWKS is the cache of a provider's JWKS. It is refreshed in the
// background as often as the provider's Cache-Control max-age says (within
// [minRefresh, maxRefresh]), and once when a token names a kid it does not
// hold, at most once per unknownKIDInterval: a kid arriving while that
// budget is spent is refused at once rather than waiting (keyfunc's own
// unknown-kid refresh waits on its limiter, up to a minute per request).
// While the provider is down the cached keys keep working; each successful
// fetch replaces the whole set, so a key the provider removed stops working.
type remoteJWKS struct {
	jwkset.Storage
	url                    string
	client                 *http.Client
	limiter                *rate.Limiter
	minRefresh, maxRefresh time.Duration
	mu                     sync.Mutex    // one fetch at a time
	firstFetch             chan struct{} // closed once the first fetch has ended, well or not
	onRefresh              func(trigger string, ok bool)
}

func (s *remoteJWKS) observe(trigger string, err error) {
	if s.onRefresh != nil {
		s.onRefresh(trigger, err == nil)
	}
}

// KeyRead implements jwkset.Storage. Until the first fetch has ended, a
// lookup waits for it (up to the fetch's own timeout) rather than treating
// every kid as unknown and spending the unknown-kid budget on a set that is
// already on its way.
func (s *remoteJWKS) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	select {
	case <-s.firstFetch:
	case <-ctx.Done():
		return jwkset.JWK{}, ctx.Err()
	}
	jwk, err := s.Storage.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) || !s.limiter.Allow() {
		return jwk, err
	}
	_, err = s.refresh(ctx)
	s.observe("unknown_kid", err)
	if err != nil {
		slog.WarnContext(ctx, "JWKS refresh for an unknown kid failed; keeping the cached keys", "url", s.url, "error", err)
		return jwkset.JWK{}, err
	}
	return s.Storage.KeyRead(ctx, kid)
}

// refreshLoop fetches the set now and then whenever it goes stale, until
// ctx ends. After a failure it tries again sooner (minRefresh / 2).
func (s *remoteJWKS) refreshLoop(ctx context.Context) {
	first := true
	for {
		next, err := s.refresh(ctx)
		if ctx.Err() == nil {
			s.observe("background", err)
		}
		if first {
			close(s.firstFetch)
			first = false
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			slog.WarnContext(ctx, "JWKS refresh failed; keeping the cached keys", "url", s.url, "error", err)
			next = s.minRefresh / 2
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// refresh replaces the cached keys with the provider's current set and
// returns when to fetch it again.
func (s *remoteJWKS) refresh(ctx context.Context) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set jwkset.JWKSMarshal
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return 0, fmt.Errorf("JWKS: %w", err)
	}
	fresh, err := set.ToStorage()
	if err != nil {
		return 0, fmt.Errorf("JWKS: %w", err)
	}
	keys, err := fresh.KeyReadAll(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.Storage.KeyReplaceAll(ctx, keys); err != nil {
		return 0, err
	}
	return s.nextRefresh(resp.Header.Get("Cache-Control")), nil
}

// nextRefresh reads max-age from Cache-Control, bounded.
func (s *remoteJWKS) nextRefresh(cacheControl string) time.Duration {
	d := defaultRefresh
	for _, directive := range strings.Split(cacheControl, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		if strings.EqualFold(name, "max-age") {
			if secs, err := strconv.Atoi(strings.Trim(value, `"`)); err == nil && secs >= 0 {
				d = time.Duration(secs) * time.Second
			}
		}
	}
	return min(max(d, s.minRefresh), s.maxRefresh)
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
