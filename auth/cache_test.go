package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/devissuer"
)

// countingKeys counts key lookups: one per full (RSA) verification.
type countingKeys struct {
	inner   keyfunc.Keyfunc
	lookups atomic.Int64
}

func (c *countingKeys) Keyfunc(t *jwt.Token) (any, error) {
	return c.KeyfuncCtx(context.Background())(t)
}

func (c *countingKeys) Storage() jwkset.Storage { return c.inner.Storage() }

func (c *countingKeys) VerificationKeySet(ctx context.Context) (jwt.VerificationKeySet, error) {
	return c.inner.VerificationKeySet(ctx)
}

func (c *countingKeys) KeyfuncCtx(ctx context.Context) jwt.Keyfunc {
	inner := c.inner.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		c.lookups.Add(1)
		return inner(t)
	}
}

func testVerifier(t testing.TB, cacheSize int) (*Verifier, *devissuer.Issuer, *countingKeys) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := devissuer.New("https://idp.test", k)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, iss.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(context.Background(), Options{Issuer: iss.URL, Audience: "aud", CacheSize: cacheSize,
		Revocations: NewRevocations(), Keys: KeySource{JWKSFile: path}})
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingKeys{inner: v.keys}
	v.keys = counting
	return v, iss, counting
}

func TestCachedTokensAreNotVerifiedAgain(t *testing.T) {
	v, iss, keys := testVerifier(t, 3)
	tok, _ := iss.Mint("alice", "aud", "", time.Hour, nil)
	for range 100 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := keys.lookups.Load(); n != 1 {
		t.Errorf("100 verifications of one token did %d full verifications; want 1", n)
	}
	// Bounded: the least recently used go first.
	for range 5 {
		other, _ := iss.Mint("alice", "aud", "", time.Hour, nil)
		_, _ = v.Verify(context.Background(), other)
	}
	if n := v.cache.len(); n != 3 {
		t.Errorf("cache holds %d tokens; want its bound, 3", n)
	}
	// Revocation applies to a cached token.
	c, _ := v.Verify(context.Background(), tok)
	v.revocations.Replace([]fieldseal.Revocation{{JTI: c.ID}})
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Error("a revoked token was served from the cache")
	}
}

func TestCacheEntryEndsAtExpiry(t *testing.T) {
	v, iss, keys := testVerifier(t, 10)
	now := time.Now()
	v.now = func() time.Time { return now }
	tok, _ := iss.Mint("alice", "aud", "", time.Minute, nil)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // past exp and the leeway
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Error("an expired token was accepted from the cache")
	}
	if n := keys.lookups.Load(); n != 2 {
		t.Errorf("full verifications = %d; want 2 (the expired entry is not served)", n)
	}
}

// BenchmarkVerify: a token's first verification (RSA) against a cached one.
//
//	go test -run '^$' -bench Verify -benchmem ./auth/
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cold", -1}, {"cached", 100}} {
		b.Run(tc.name, func(b *testing.B) {
			v, iss, _ := testVerifier(b, tc.cache)
			tok, _ := iss.Mint("alice", "aud", "records:read", time.Hour, nil)
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
