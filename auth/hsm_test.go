package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/hsm"
	"github.com/fieldseal/fieldseal/internal/testkit/softhsm"
)

// encryptedSetup is a verifier whose decryption key is in a file or in
// SoftHSM2, and a signed token for it: what the benchmark and the cache
// test encrypt to it.
func encryptedSetup(t testing.TB, inHSM bool, cacheSize int) (*Verifier, *rsa.PublicKey, string) {
	t.Helper()
	v, iss, _ := testVerifier(t, cacheSize)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	spec := t.TempDir() + "/jwe.pem"
	if inHSM {
		tk := softhsm.Shared(t)
		n := keyLabels.Add(1)
		label := fmt.Sprintf("jwe-%d", n)
		tk.ImportRSA(t, key, label, []byte{0xbe, byte(n >> 8), byte(n)}) // ids are unique on a token too
		spec = tk.URI(label)
	} else {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		if err := os.WriteFile(spec, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := LoadDecrypter(spec, hsm.OpenRSA)
	if err != nil {
		t.Fatal(err)
	}
	v.decrypter = d
	signed, _ := iss.Mint("alice", "aud", "records:read", time.Hour, nil)
	return v, &key.PublicKey, signed
}

func encryptFor(t testing.TB, signed string, pub *rsa.PublicKey) string {
	t.Helper()
	s, err := devissuer.Encrypt(signed, pub)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyLabels numbers the keys put on the shared token.
var keyLabels atomic.Int64

// countingDecrypter counts the unwrappings of a key.
type countingDecrypter struct {
	crypto.Decrypter
	n atomic.Int64
}

func (c *countingDecrypter) Decrypt(r io.Reader, ct []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Decrypter.Decrypt(r, ct, opts)
}

// With the verified-token cache on, the HSM is touched once per token,
// not once per request.
func TestCachedEncryptedTokenTouchesTheHSMOnce(t *testing.T) {
	v, pub, signed := encryptedSetup(t, true, 100)
	var counting *countingDecrypter
	for _, k := range v.decrypter.ring.Load().keys {
		counting = &countingDecrypter{Decrypter: k.dec}
		k.dec = counting
	}
	tok := encryptFor(t, signed, pub)
	for range 50 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := counting.n.Load(); n != 1 {
		t.Errorf("50 requests with one encrypted token unwrapped its key %d times in the HSM; want 1", n)
	}
}

// BenchmarkEncryptedToken: verifying an encrypted access token with the
// decryption key in a file against in SoftHSM2, without and with the
// verified-token cache (a new token each time, and one token again).
//
//	go test -run '^$' -bench EncryptedToken ./auth/
func BenchmarkEncryptedToken(b *testing.B) {
	for _, where := range []string{"file", "softhsm"} {
		for _, cached := range []bool{false, true} {
			name := where + "/new-token"
			if cached {
				name = where + "/cached-token"
			}
			b.Run(name, func(b *testing.B) {
				cache := -1
				if cached {
					cache = 100
				}
				v, pub, signed := encryptedSetup(b, where == "softhsm", cache)
				tok := encryptFor(b, signed, pub)
				for b.Loop() {
					if _, err := v.Verify(context.Background(), tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
