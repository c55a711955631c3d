package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/devissuer"
)

// fileVerifier trusts iss's JWKS from a file, with opts' rules.
// The published key carries no "alg", so that the allow-list decides (a
// key that names its alg is used with that alg only, which keyfunc checks).
func fileVerifier(t testing.TB, iss *devissuer.Issuer, opts auth.Options) *auth.Verifier {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, bytes.Replace(iss.JWKS(), []byte(`"alg":"RS256",`), nil, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Issuer, opts.Audience, opts.Keys = iss.URL, "aud", auth.KeySource{JWKSFile: path}
	v, err := auth.NewVerifier(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func signed(t testing.TB, iss *devissuer.Issuer, key *rsa.PrivateKey, method jwt.SigningMethod, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims{"iss": iss.URL, "aud": "aud", "sub": "alice",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = iss.KeyID()
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAlgorithmsAndTypes(t *testing.T) {
	key := mustKey(t)
	iss := devissuer.New("https://idp.test", key)
	rs256Only := fileVerifier(t, iss, auth.Options{})
	withPS := fileVerifier(t, iss, auth.Options{Algorithms: []string{"RS256", "PS256"}})
	atOnly := fileVerifier(t, iss, auth.Options{RequireATJWT: true})
	ps256 := signed(t, iss, key, jwt.SigningMethodPS256, nil)
	for _, tc := range []struct {
		name  string
		v     *auth.Verifier
		token string
		ok    bool
	}{
		{"PS256 refused by default", rs256Only, ps256, false},
		{"PS256 accepted when allowed", withPS, ps256, true},
		{"typ JWT", rs256Only, signed(t, iss, key, jwt.SigningMethodRS256, map[string]any{"typ": "JWT"}), true},
		{"typ at+jwt", rs256Only, signed(t, iss, key, jwt.SigningMethodRS256, map[string]any{"typ": "at+jwt"}), true},
		{"no typ", rs256Only, signed(t, iss, key, jwt.SigningMethodRS256, map[string]any{"typ": nil}), true},
		{"typ JWT when at+jwt is required", atOnly, signed(t, iss, key, jwt.SigningMethodRS256, map[string]any{"typ": "JWT"}), false},
		{"no typ when at+jwt is required", atOnly, signed(t, iss, key, jwt.SigningMethodRS256, map[string]any{"typ": nil}), false},
		{"application/at+jwt when required", atOnly, signed(t, iss, key, jwt.SigningMethodRS256, map[string]any{"typ": "application/at+jwt"}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(context.Background(), tc.token)
			if (err == nil) != tc.ok {
				t.Errorf("Verify = %v; want ok=%v", err, tc.ok)
			}
			if err != nil && fieldseal.ErrorCode(err) != fieldseal.EUNAUTHORIZED {
				t.Errorf("refusal code %q; want invalid_token", fieldseal.ErrorCode(err))
			}
		})
	}
}

func TestShortRSAKeysAreIgnored(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	iss := devissuer.New("https://idp.test", weak)
	v := fileVerifier(t, iss, auth.Options{})
	for name, header := range map[string]map[string]any{"with kid": nil, "without kid": {"kid": nil}} {
		tok := signed(t, iss, weak, jwt.SigningMethodRS256, header)
		if _, err := v.Verify(context.Background(), tok); fieldseal.ErrorCode(err) != fieldseal.EUNAUTHORIZED {
			t.Errorf("%s: a token signed with a 1024-bit key: %v; want invalid_token", name, err)
		}
	}
}

// FuzzVerify feeds arbitrary strings to the token path: it must never
// panic, and must refuse everything but the one valid token it was seeded
// with. Run briefly in CI: go test -run '^$' -fuzz FuzzVerify -fuzztime 15s ./auth/
func FuzzVerify(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	iss := devissuer.New("https://idp.test", key)
	v := fileVerifier(f, iss, auth.Options{})
	good, _ := iss.Mint("alice", "aud", "records:read", time.Hour, nil)
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(good[:len(good)/2])
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil && token != good {
			// Base64 admits a few spellings of the same bytes (trailing
			// bits); anything accepted must be the same token's claims.
			if c.Subject != "alice" {
				t.Fatalf("accepted a token that is not the seed: %+v", c)
			}
		}
		if err != nil && fieldseal.ErrorCode(err) != fieldseal.EUNAUTHORIZED {
			t.Fatalf("refusal with code %q", fieldseal.ErrorCode(err))
		}
	})
}

func TestAlgPinnedByTheKey(t *testing.T) {
	key := mustKey(t)
	iss := devissuer.New("https://idp.test", key)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, iss.JWKS(), 0o600); err != nil { // "alg":"RS256"
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Options{Issuer: iss.URL, Audience: "aud",
		Algorithms: []string{"RS256", "PS256"}, Keys: auth.KeySource{JWKSFile: path}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), signed(t, iss, key, jwt.SigningMethodPS256, nil)); err == nil {
		t.Error("a PS256 token verified with a key published for RS256 only")
	}
}
