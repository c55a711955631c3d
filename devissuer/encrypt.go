package devissuer

import (
	"crypto/rsa"

	"github.com/go-jose/go-jose/v4"
)

// Encrypt wraps a signed token in a JWE to fieldseal's public key (as a
// provider that encrypts access tokens does): RSA-OAEP-256 and A256GCM,
// cty JWT, kid the key's JWK thumbprint, which is the kid fieldseal
// publishes for it at /.well-known/jwks.json.
func Encrypt(signed string, to *rsa.PublicKey) (string, error) {
	e, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: to, KeyID: thumbprint(to)},
		(&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		return "", err
	}
	obj, err := e.Encrypt([]byte(signed))
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
