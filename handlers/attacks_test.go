package handlers_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokenAttacks throws the classic JWT attacks at the running server:
// each answers 401 invalid_token, nothing is fetched from URLs a token
// names, and the server stays healthy.
func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	trusted := loadKey(t, "signing-key.pem")
	attacker := loadKey(t, "other-signing-key.pem")
	now := time.Now()
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": a.idp.URL, "aud": audience, "sub": "alice", "scope": allScopes,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	b64 := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	payload := b64(claims())

	// Anything fetched from a URL in a token header is counted here.
	var fetched atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer lure.Close()

	sign := func(method jwt.SigningMethod, key any, header map[string]any) string {
		tok := jwt.NewWithClaims(method, claims())
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// HS256 keyed with the trusted RSA public key, in the encodings a
	// confused verifier might use as an HMAC secret.
	pkix, _ := x509.MarshalPKIXPublicKey(&trusted.PublicKey)
	pkcs1 := x509.MarshalPKCS1PublicKey(&trusted.PublicKey)
	hmacKeys := map[string][]byte{
		"PEM":       pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PKCS1 PEM": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"DER":       pkix,
		"JWKS":      a.idp.JWKS(),
		"modulus":   trusted.PublicKey.N.Bytes(),
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	attackerJWK := map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(attacker.PublicKey.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(attacker.PublicKey.E)).Bytes())}

	cases := map[string]string{}
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		cases["alg "+alg] = b64(map[string]any{"alg": alg, "typ": "JWT"}) + "." + payload + "."
		cases["alg "+alg+" with kid"] = b64(map[string]any{"alg": alg, "kid": a.idp.KeyID()}) + "." + payload + "."
	}
	for name, k := range hmacKeys {
		cases["HS256 with the public key as "+name] = sign(jwt.SigningMethodHS256, k, map[string]any{"kid": a.idp.KeyID()})
	}
	cases["right kid, wrong key"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": a.idp.KeyID()})
	cases["embedded jwk"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"jwk": attackerJWK})
	cases["embedded jwk with trusted kid"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"jwk": attackerJWK, "kid": a.idp.KeyID()})
	cases["jku"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"jku": lure.URL + "/jwks.json", "kid": "lure"})
	cases["x5u"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"x5u": lure.URL + "/cert.pem"})
	cases["x5c"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(pkix)}})
	cases["kid path traversal"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": "../../../../../etc/passwd"})
	cases["kid SQL injection"] = sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": "' OR '1'='1' --"})
	cases["ES256 when only RS256"] = sign(jwt.SigningMethodES256, ec, map[string]any{"kid": a.idp.KeyID()})
	cases["PS256 when only RS256"] = sign(jwt.SigningMethodPS256, trusted, map[string]any{"kid": a.idp.KeyID()})
	zeroSig := base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	cases["all-zero ECDSA signature (CVE-2022-21449)"] = b64(map[string]any{"alg": "ES256", "kid": a.idp.KeyID()}) + "." + payload + "." + zeroSig
	good := sign(jwt.SigningMethodRS256, trusted, map[string]any{"kid": a.idp.KeyID()})
	parts := strings.Split(good, ".")
	cases["malformed base64 header"] = "!!!" + parts[0][3:] + "." + parts[1] + "." + parts[2]
	cases["malformed base64 signature"] = parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4] + "*/*="
	cases["padded base64"] = parts[0] + "=." + parts[1] + "." + parts[2]
	cases["four parts"] = good + ".x"
	cases["typ dpop+jwt"] = sign(jwt.SigningMethodRS256, trusted, map[string]any{"kid": a.idp.KeyID(), "typ": "dpop+jwt"})
	cases["typ not a string"] = sign(jwt.SigningMethodRS256, trusted, map[string]any{"kid": a.idp.KeyID(), "typ": 7})

	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, a.do(req{method: "GET", path: "/v1/records", token: tok}), http.StatusUnauthorized, "invalid_token")
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the server fetched %d URLs named in token headers; want none", n)
	}
	if r := a.do(req{method: "GET", path: "/v1/records", token: good}); r.status != http.StatusOK {
		t.Errorf("the well-formed control token: %d %s", r.status, r.body)
	}
	if r := a.do(req{method: "GET", path: "/healthz"}); r.status != http.StatusOK {
		t.Errorf("healthz after the attacks: %d", r.status)
	}
}
