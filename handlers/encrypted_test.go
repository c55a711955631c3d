package handlers_test

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

// encrypt wraps a signed token in a compact JWE to pub, as an identity
// provider that encrypts access tokens does.
func encrypt(t *testing.T, signed string, pub *rsa.PublicKey, alg jose.KeyAlgorithm, enc jose.ContentEncryption) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub}, (&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEncryptedAccessTokens(t *testing.T) {
	t.Parallel()
	serviceKey := loadKey(t, "token-decryption-key.pem")
	dec, err := auth.NewDecrypter(serviceKey)
	if err != nil {
		t.Fatal(err)
	}
	a := startAPI(t, newDB(t), apitest.Options{Decrypter: dec})
	signed := a.token("alice", allScopes)

	// The public half is published for the identity provider.
	r := a.do(req{method: "GET", path: "/.well-known/jwks.json"})
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &set); err != nil || r.status != http.StatusOK || len(set.Keys) != 1 {
		t.Fatalf("jwks.json: %d %s", r.status, r.body)
	}
	if k := set.Keys[0]; k["use"] != "enc" || k["alg"] != "RSA-OAEP-256" || k["kty"] != "RSA" || k["d"] != nil || k["p"] != nil {
		t.Errorf("published key = %v; want a public RSA key for RSA-OAEP-256 encryption", k)
	}
	// The provider encrypts to what was published.
	var published jose.JSONWebKeySet
	_ = json.Unmarshal(r.body, &published)
	pub := published.Keys[0].Key.(*rsa.PublicKey)

	ok := encrypt(t, signed, pub, jose.RSA_OAEP_256, jose.A256GCM)
	if r := a.do(req{method: "GET", path: "/v1/records", token: ok}); r.status != http.StatusOK {
		t.Errorf("an encrypted token: %d %s", r.status, r.body)
	}
	if r := a.do(req{method: "GET", path: "/v1/records", token: signed}); r.status != http.StatusOK {
		t.Errorf("a plain signed token, encryption not required: %d", r.status)
	}
	other := loadKey(t, "other-signing-key.pem")
	forged, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: other}, nil)
	forgedJWS, _ := forged.Sign([]byte(`{"sub":"alice"}`))
	forgedCompact, _ := forgedJWS.CompactSerialize()
	for name, tok := range map[string]string{
		"RSA1_5 key wrapping":   encrypt(t, signed, pub, jose.RSA1_5, jose.A256GCM),
		"A128GCM content":       encrypt(t, signed, pub, jose.RSA_OAEP_256, jose.A128GCM),
		"encrypted to another":  encrypt(t, signed, &other.PublicKey, jose.RSA_OAEP_256, jose.A256GCM),
		"wrapping a forged JWS": encrypt(t, forgedCompact, pub, jose.RSA_OAEP_256, jose.A256GCM),
		"wrapping a JWE":        encrypt(t, ok, pub, jose.RSA_OAEP_256, jose.A256GCM),
		"tampered ciphertext":   tamper(ok),
	} {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, a.do(req{method: "GET", path: "/v1/records", token: tok}), http.StatusUnauthorized, "invalid_token")
		})
	}

	// Required: plain tokens are refused.
	req2 := startAPI(t, newDB(t), apitest.Options{Decrypter: dec, RequireEncryption: true})
	r = req2.do(req{method: "GET", path: "/v1/records", token: req2.token("alice", allScopes)})
	wantProblem(t, r, http.StatusUnauthorized, "invalid_token")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "token must be encrypted") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	signed2 := req2.token("alice", allScopes)
	if r := req2.do(req{method: "GET", path: "/v1/records", token: encrypt(t, signed2, pub, jose.RSA_OAEP_256, jose.A256GCM)}); r.status != http.StatusOK {
		t.Errorf("an encrypted token when required: %d %s", r.status, r.body)
	}
	// Without a decryption key, encrypted tokens are refused and none is published.
	plain := newAPI(t)
	wantProblem(t, plain.do(req{method: "GET", path: "/v1/records", token: encrypt(t, plain.token("alice", allScopes), pub, jose.RSA_OAEP_256, jose.A256GCM)}),
		http.StatusUnauthorized, "invalid_token")
	if r := plain.do(req{method: "GET", path: "/.well-known/jwks.json"}); strings.TrimSpace(string(r.body)) != `{"keys":[]}` {
		t.Errorf("jwks.json without a decryption key: %s", r.body)
	}
}

// tamper flips a character in a JWE's ciphertext part.
func tamper(jwe string) string {
	parts := strings.Split(jwe, ".")
	c := []byte(parts[3])
	if c[0] == 'A' {
		c[0] = 'B'
	} else {
		c[0] = 'A'
	}
	parts[3] = string(c)
	return strings.Join(parts, ".")
}
