package hsm

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"os"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal/internal/testkit/softhsm"
	"github.com/miekg/pkcs11"
)

// A key in SoftHSM2 opens RSA-OAEP-256 without leaving the token: SoftHSM
// 2.6 does OAEP with SHA-1 only, so the token does the raw RSA operation
// and the padding is removed here; a wrong ciphertext fails.
func TestPKCS11KeyUnwrapsInTheToken(t *testing.T) {
	tk := softhsm.Shared(t)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tk.ImportRSA(t, key, "jwe", []byte{7})
	dec, _, release, err := OpenRSA(tk.URI("jwe"))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if dec.Public().(*rsa.PublicKey).N.Cmp(key.N) != 0 {
		t.Fatal("the public half read from the token is not the key's")
	}
	for _, label := range [][]byte{nil, []byte("a label")} {
		msg := make([]byte, 32)
		_, _ = rand.Read(msg)
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, msg, label)
		got, err := dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: label})
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("label %q: %x %v; want %x", label, got, err, msg)
		}
		ct[10] ^= 1
		if _, err := dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: label}); err == nil {
			t.Error("a tampered ciphertext opened")
		}
	}
	// The wrong label, or SHA-1, is refused.
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, []byte("x"), []byte("l"))
	if _, err := dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("a ciphertext with another label opened")
	}
	if _, err := dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA1}); err == nil {
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

// A session the token no longer knows (as after a network HSM restarts)
// is replaced and logged in again; the request that met it succeeds.
func TestPKCS11SessionsRecover(t *testing.T) {
	tk := softhsm.Shared(t)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tk.ImportRSA(t, key, "recover", []byte{0x5e})
	dec, _, release, err := OpenRSA(tk.URI("recover"))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	k := dec.(*hsmKey)
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
		if got, err := dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil || string(got) != "again" {
			t.Fatalf("after its sessions were closed: %q %v", got, err)
		}
	}
}
