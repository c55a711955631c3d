// Package devissuer is a minimal OpenID provider for development and tests:
// one RSA signing key, an OIDC discovery document, a JWKS, and RS256 access
// tokens shaped as RFC 9068 describes. It is what `fieldseal dev` runs so
// that the real verification path (discovery, JWKS, RS256) is exercised
// without an external identity provider. It is not for production.
package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fieldseal/fieldseal/internal/rsakey"
)

// Issuer signs tokens with one RSA key.
type Issuer struct {
	// URL is the issuer identifier ("iss") and the base of its discovery
	// document.
	URL string
	key *rsa.PrivateKey
	kid string
}

// New returns an issuer at url signing with key.
func New(url string, key *rsa.PrivateKey) *Issuer {
	return &Issuer{URL: url, key: key, kid: thumbprint(&key.PublicKey)}
}

// LoadOrCreateKey reads a PEM RSA private key from path, or generates a
// 2048-bit one and writes it there (mode 0600).
func LoadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		return rsakey.Parse(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write dev signing key: %w", err)
	}
	return key, nil
}

// KeyID returns the "kid" of the signing key (its RFC 7638 thumbprint).
func (i *Issuer) KeyID() string { return i.kid }

// Mint returns a signed RS256 access token for sub with the given scopes,
// audience and lifetime. extra claims are added (and may override).
func (i *Issuer) Mint(sub, audience string, scopes string, ttl time.Duration, extra map[string]any) (string, error) {
	now := time.Now()
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	claims := jwt.MapClaims{
		"iss":       i.URL,
		"sub":       sub,
		"aud":       audience,
		"iat":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
		"jti":       base64.RawURLEncoding.EncodeToString(jti),
		"client_id": "fieldseal-dev",
		"scope":     scopes,
	}
	for k, v := range extra {
		claims[k] = v
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = i.kid
	t.Header["typ"] = "at+jwt"
	return t.SignedString(i.key)
}

// JWKS returns the public JWK Set.
func (i *Issuer) JWKS() []byte {
	b, _ := json.Marshal(map[string]any{"keys": []any{publicJWK(&i.key.PublicKey, i.kid)}})
	return b
}

// Handler serves the discovery document and the JWKS.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                i.URL,
			"jwks_uri":                              i.URL + "/jwks.json",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(i.JWKS())
	})
	return mux
}

func publicJWK(pub *rsa.PublicKey, kid string) map[string]string {
	return map[string]string{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// thumbprint is the RFC 7638 JWK thumbprint of pub.
func thumbprint(pub *rsa.PublicKey) string {
	canonical := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`,
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		base64.RawURLEncoding.EncodeToString(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
