package auth

import (
	"github.com/fieldseal/fieldseal/internal/rsakey"

	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Decrypter opens encrypted access tokens: a JWE (RSA-OAEP-256 key
// wrapping, A256GCM content) whose payload is the provider's signed JWT
// (a nested JWT, RFC 7519 section 5.2). The identity provider encrypts to
// the public half, which fieldseal publishes at /.well-known/jwks.json.
type Decrypter struct {
	key *rsa.PrivateKey
	kid string
}

// LoadDecrypter reads the service's RSA private key (PEM, PKCS#8 or
// PKCS#1, at least 2048 bits) from path.
func LoadDecrypter(path string) (*Decrypter, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := rsakey.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return NewDecrypter(key)
}

// NewDecrypter returns a Decrypter for key.
func NewDecrypter(key *rsa.PrivateKey) (*Decrypter, error) {
	if key.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("the token decryption key has %d bits; at least %d are needed", key.N.BitLen(), MinRSABits)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &Decrypter{key: key, kid: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// PublicJWKS returns the JWK Set of the public half, "use": "enc": what an
// identity provider encrypts access tokens to.
func (d *Decrypter) PublicJWKS() []byte {
	if d == nil {
		return []byte(`{"keys":[]}` + "\n")
	}
	jwk := jose.JSONWebKey{Key: &d.key.PublicKey, KeyID: d.kid, Use: "enc", Algorithm: string(jose.RSA_OAEP_256)}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	return append(b, '\n')
}

// isEncrypted reports whether token has the five parts of a compact JWE.
func isEncrypted(token string) bool { return strings.Count(token, ".") == 4 }

// open decrypts a compact JWE and returns the signed JWT inside it. Every
// failure is a refusal with a fixed reason.
func (d *Decrypter) open(token string) (string, error) {
	if d == nil {
		return "", refuse("encrypted tokens not accepted")
	}
	jwe, err := jose.ParseEncryptedCompact(token, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return "", refuse("unsupported or malformed encrypted token")
	}
	if kid := jwe.Header.KeyID; kid != "" && kid != d.kid {
		return "", refuse("token encrypted to another key")
	}
	if cty, _ := jwe.Header.ExtraHeaders[jose.HeaderContentType].(string); cty != "" && !strings.EqualFold(cty, "JWT") {
		return "", refuse("encrypted token does not hold a JWT")
	}
	inner, err := jwe.Decrypt(d.key)
	if err != nil {
		return "", refuse("cannot decrypt token")
	}
	if strings.Count(string(inner), ".") != 2 {
		return "", refuse("encrypted token does not hold a signed JWT")
	}
	return string(inner), nil
}
