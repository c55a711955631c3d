package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/internal/softhsm"
	"github.com/miekg/pkcs11"
)

// A key in SoftHSM2 opens RSA-OAEP-256 without leaving the token: SoftHSM
// 2.6 does OAEP with SHA-1 only, so the token does the raw RSA operation
// and the padding is removed here; a wrong ciphertext fails.
func TestPKCS11KeyUnwrapsInTheToken(t *testing.T) {
	tk := softhsm.Shared(t)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tk.ImportRSA(t, key, "jwe", []byte{7})
	dk, release, err := loadPKCS11Key(tk.URI("jwe"))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if dk.pub.N.Cmp(key.N) != 0 {
		t.Fatal("the public half read from the token is not the key's")
	}
	for _, label := range [][]byte{nil, []byte("a label")} {
		msg := make([]byte, 32)
		_, _ = rand.Read(msg)
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, msg, label)
		got, err := dk.dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: label})
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("label %q: %x %v; want %x", label, got, err, msg)
		}
		ct[10] ^= 1
		if _, err := dk.dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: label}); err == nil {
			t.Error("a tampered ciphertext opened")
		}
	}
	// The wrong label, or SHA-1, is refused.
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, []byte("x"), []byte("l"))
	if _, err := dk.dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("a ciphertext with another label opened")
	}
	if _, err := dk.dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA1}); err == nil {
		t.Error("SHA-1 OAEP was accepted")
	}
}

// oaepDecode agrees with crypto/rsa on valid messages, and refuses
// malformed padding.
func TestOAEPDecode(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	k := (key.N.BitLen() + 7) / 8
	raw := func(ct []byte) []byte { // the RSA private-key operation, as the token does it
		m := new(big.Int).Exp(new(big.Int).SetBytes(ct), key.D, key.N).Bytes()
		return append(make([]byte, k-len(m)), m...)
	}
	for n := range 50 {
		msg := make([]byte, n)
		_, _ = rand.Read(msg)
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, msg, nil)
		if got, err := oaepDecode(raw(ct), nil); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: %x %v", n, got, err)
		}
	}
	em := raw(must(rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, []byte("pkcs1"))))
	if _, err := oaepDecode(em, nil); err == nil {
		t.Error("PKCS #1 v1.5 padding decoded as OAEP")
	}
	if _, err := oaepDecode(make([]byte, 40), nil); err == nil {
		t.Error("a short block decoded")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// PKCS#11 URIs: what is refused, and that no error holds the PIN.
func TestParsePKCS11URI(t *testing.T) {
	pin := t.TempDir() + "/pin"
	if err := os.WriteFile(pin, []byte("s3cret-pin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := parsePKCS11URI("pkcs11:token=my%20token;object=jwe;id=%01%02;type=private?module-path=/lib/p11.so&pin-source=file:" + pin)
	if err != nil || u.token != "my token" || u.object != "jwe" || !bytes.Equal(u.id, []byte{1, 2}) || u.pin != "s3cret-pin" || u.modulePath != "/lib/p11.so" {
		t.Fatalf("%+v %v", u, err)
	}
	for uri, want := range map[string]string{
		"pkcs11:object=jwe?module-path=/m&pin-value=s3cret-pin":                       "exactly one of token",
		"pkcs11:token=t;serial=1;object=jwe?module-path=/m&pin-value=s3cret-pin":      "exactly one of token",
		"pkcs11:token=t?module-path=/m&pin-value=s3cret-pin":                          "names no key",
		"pkcs11:token=t;object=jwe?pin-value=s3cret-pin":                              "no module-path",
		"pkcs11:token=t;object=jwe?module-path=/m":                                    "no pin-source",
		"pkcs11:token=t;object=jwe?module-path=/m&pin-value=s3cret-pin&pin-source=/p": "both pin-source and pin-value",
		"pkcs11:token=t;object=jwe;slot-id=1?module-path=/m&pin-value=s3cret-pin":     `"slot-id" is not one`,
		"pkcs11:token=t;object=jwe;type=public?module-path=/m&pin-value=s3cret-pin":   "type=private",
		"pkcs11:token=t;object=%zz?module-path=/m&pin-value=s3cret-pin":               "percent-encoded",
		"pkcs11:token=t;object=jwe?module-path=/m&pin-source=/nonexistent":            "PIN file",
	} {
		_, err := parsePKCS11URI(uri)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v; want an error saying %q without the PIN", uri, err, want)
		}
	}
}

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
	d, err := LoadDecrypter(spec)
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

// A session the token no longer knows (as after a network HSM restarts)
// is replaced and logged in again; the request that met it succeeds.
func TestPKCS11SessionsRecover(t *testing.T) {
	tk := softhsm.Shared(t)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tk.ImportRSA(t, key, "recover", []byte{0x5e})
	dk, release, err := loadPKCS11Key(tk.URI("recover"))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	k := dk.dec.(*hsmKey)
	var handles []pkcs11.SessionHandle
	for range pkcs11Sessions {
		s := <-k.sessions
		if err := k.mod.CloseSession(s); err != nil {
			t.Fatal(err)
		}
		handles = append(handles, s)
	}
	for _, s := range handles {
		k.sessions <- s // dead handles back in the pool
	}
	for range 2 * pkcs11Sessions {
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, []byte("again"), nil)
		if got, err := dk.dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil || string(got) != "again" {
			t.Fatalf("after its sessions were closed: %q %v", got, err)
		}
	}
}
