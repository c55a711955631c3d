package auth

import (
	"context"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fieldseal/fieldseal"
)

// Options configure a Verifier. Issuer and Audience are required.
type Options struct {
	Issuer   string
	Audience string
	Keys     KeySource
	// Algorithms allowed; nil means RS256 only.
	Algorithms []string
	// MaxLifetime refuses tokens whose exp-iat (or exp-now without iat)
	// exceeds it; zero means 24 h.
	MaxLifetime time.Duration
	// CacheSize bounds the verified-token cache; 0 means DefaultCacheSize,
	// negative disables the cache.
	CacheSize int
	// Decrypter, if not nil, opens encrypted (nested JWE) tokens; without
	// it they are refused.
	Decrypter *Decrypter
	// RequireEncryption refuses plain signed tokens.
	RequireEncryption bool
	// OnRefuse, if not nil, is told the reason of every refusal (a fixed
	// phrase, never the token): for counting refusals by reason.
	OnRefuse func(reason string)
	// Revocations, if not nil, is checked on every token.
	Revocations *Revocations
	// RequireATJWT refuses tokens whose typ is not at+jwt (RFC 9068);
	// otherwise typ, when present, may be JWT or at+jwt.
	RequireATJWT bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the JWKS refresh warnings; nil discards them.
	Log *slog.Logger
}

// DefaultCacheSize is the default number of verified tokens remembered.
const DefaultCacheSize = 10000

// MinRSABits is the smallest RSA key accepted; smaller keys in a JWKS are
// ignored.
const MinRSABits = 2048

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// MaxTokenSize is the largest token accepted; larger ones are refused
// before any parsing.
const MaxTokenSize = 8 << 10

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	keys         keyfunc.Keyfunc
	parser       *jwt.Parser
	maxLifetime  time.Duration
	requireATJWT bool
	revocations  *Revocations
	cache        *tokenCache
	decrypter    *Decrypter
	requireEnc   bool
	onRefuse     func(reason string)
	now          func() time.Time
}

// Validate checks opts without fetching anything: required values, the
// algorithms, and that remote URLs are https (or on loopback).
func (opts Options) Validate() error {
	if opts.Issuer == "" {
		return errors.New("an issuer is required")
	}
	if opts.Audience == "" {
		return errors.New("an audience is required")
	}
	if opts.RequireEncryption && opts.Decrypter == nil {
		return errors.New("requiring encrypted tokens needs a token decryption key")
	}
	for _, a := range opts.Algorithms {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		default:
			return fmt.Errorf("algorithm %q is not supported (RS256, RS384, RS512, PS256, PS384, PS512)", a)
		}
	}
	switch k := opts.Keys; {
	case k.JWKSFile != "":
	case k.JWKSURL != "":
		if err := CheckRemoteURL(k.JWKSURL); err != nil {
			return fmt.Errorf("JWKS URL: %w", err)
		}
	case k.Issuer != "":
		if err := CheckRemoteURL(k.Issuer); err != nil {
			return fmt.Errorf("issuer: %w", err)
		}
	default:
		return errors.New("no JWKS source: set a JWKS file, a JWKS URL or an issuer for OIDC discovery")
	}
	return nil
}

// NewVerifier validates opts and prepares the key source; ctx bounds the
// background JWKS refresh.
func NewVerifier(ctx context.Context, opts Options) (*Verifier, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	algs := opts.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	if opts.MaxLifetime == 0 {
		opts.MaxLifetime = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kf, err := newKeyfunc(ctx, opts.Keys, log)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		keys:         kf,
		maxLifetime:  opts.MaxLifetime,
		requireATJWT: opts.RequireATJWT,
		revocations:  opts.Revocations,
		cache:        newTokenCache(cacheSize(opts.CacheSize)),
		decrypter:    opts.Decrypter,
		requireEnc:   opts.RequireEncryption,
		onRefuse:     opts.OnRefuse,
		now:          opts.Now,
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }), // one clock for parser and cache
	)
	return v, nil
}

// Verify checks a token and returns its claims. Every refusal is an
// *fieldseal.Error with EUNAUTHORIZED and a short reason.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := v.verify(ctx, token)
	if err != nil && v.onRefuse != nil {
		v.onRefuse(fieldseal.ErrorMessage(err))
	}
	return c, err
}

func (v *Verifier) verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, refuse("missing bearer token")
	}
	if len(token) > MaxTokenSize {
		return Claims{}, refuse("token too large")
	}
	var err error
	key := cacheKey(token)
	if c, keys, ok := v.cache.get(key, v.now()); ok {
		if _, err := v.keys.Storage().KeyRead(ctx, keys.sig); err != nil || keys.enc != "" && !v.decrypter.has(keys.enc) {
			v.cache.drop(key) // its signing key left the JWKS, or its decryption key the list: verify from scratch
		} else {
			if v.revocations != nil && v.revocations.Revoked(c) {
				return Claims{}, refuse("token revoked")
			}
			return c, nil
		}
	}
	signed, encKID := token, ""
	switch {
	case isEncrypted(token):
		if signed, encKID, err = v.decrypter.open(token); err != nil {
			return Claims{}, err
		}
	case v.requireEnc:
		return Claims{}, refuse("token must be encrypted")
	}
	var tc tokenClaims
	parsed, err := v.parser.ParseWithClaims(signed, &tc, v.keyfunc(ctx))
	if err != nil {
		return Claims{}, refuse(reason(err))
	}
	if _, ok := parsed.Header["crit"]; ok {
		return Claims{}, refuse("unsupported critical header")
	}
	if err := v.checkType(parsed.Header["typ"]); err != nil {
		return Claims{}, err
	}
	if tc.Subject == "" {
		return Claims{}, refuse("missing subject")
	}
	start := v.now()
	if tc.IssuedAt != nil {
		start = tc.IssuedAt.Time
	}
	if tc.ExpiresAt.Sub(start) > v.maxLifetime {
		return Claims{}, refuse("token lifetime too long")
	}
	c := tc.claims()
	if v.revocations != nil && v.revocations.Revoked(c) {
		return Claims{}, refuse("token revoked")
	}
	c.TokenID = "jti:" + c.ID
	if c.ID == "" {
		c.TokenID = "sha256:" + hex.EncodeToString(key[:16])
	}
	kid, _ := parsed.Header["kid"].(string)
	v.cache.put(key, cachedKeys{sig: kid, enc: encKID}, c)
	return c, nil
}

func cacheSize(n int) int {
	switch {
	case n == 0:
		return DefaultCacheSize
	case n < 0:
		return 0
	}
	return n
}

// keyfunc looks the token's key up in the JWKS, ignoring RSA keys shorter
// than MinRSABits.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	lookup := v.keys.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		k, err := lookup(t)
		if err != nil {
			return nil, err
		}
		switch key := k.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < MinRSABits {
				return nil, errors.New("RSA key shorter than 2048 bits")
			}
		case jwt.VerificationKeySet:
			strong := jwt.VerificationKeySet{}
			for _, kk := range key.Keys {
				if rk, ok := kk.(*rsa.PublicKey); ok && rk.N.BitLen() < MinRSABits {
					continue
				}
				strong.Keys = append(strong.Keys, kk)
			}
			return strong, nil
		}
		return k, nil
	}
}

// checkType applies RFC 8725 section 3.11 and RFC 9068 section 2.1: typ, if
// present, names a JWT or an access token; with RequireATJWT it must name
// an access token.
func (v *Verifier) checkType(typ any) error {
	s, isString := typ.(string)
	s = strings.ToLower(s)
	isAT := s == "at+jwt" || s == "application/at+jwt"
	switch {
	case typ == nil && !v.requireATJWT:
		return nil
	case !isString:
		return refuse("wrong token type")
	case isAT, s == "jwt" && !v.requireATJWT:
		return nil
	default:
		return refuse("wrong token type")
	}
}

func refuse(reason string) error {
	return fieldseal.Errorf(fieldseal.EUNAUTHORIZED, "%s", reason)
}

// reason names why jwt refused a token, in a fixed phrase.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing required claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "untrusted signing key or algorithm"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	default:
		return "invalid token"
	}
}
