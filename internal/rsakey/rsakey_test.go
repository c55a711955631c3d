package rsakey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPKCS8, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	for _, tc := range []struct {
		name, in, err string
	}{
		{"PKCS#1", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), ""},
		{"PKCS#8", block("PRIVATE KEY", pkcs8), ""},
		{"an EC key", block("PRIVATE KEY", ecPKCS8), "the key is not an RSA key"},
		{"not PEM", "secret-looking-bytes", "no PEM block in the key file"},
		{"PEM of something else", block("PRIVATE KEY", []byte("secret-looking-bytes")), "not a PKCS#1 or PKCS#8 private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Parse([]byte(tc.in))
			if tc.err == "" {
				if err != nil || !k.Equal(rk) {
					t.Fatalf("Parse: %v; want the key", err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("Parse: %v; want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "secret-looking") {
				t.Errorf("the error quotes the input: %v", err)
			}
		})
	}
}
