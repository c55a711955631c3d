package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "fieldseal test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test checks which certificate, not trust
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestHTTPSAndCertificateReload(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	vars, _ := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	vars["FIELDSEAL_TLS_CERT"], vars["FIELDSEAL_TLS_KEY"] = certFile, keyFile
	srv := startServer(t, vars)
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("serving at %s; want https", srv.URL)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	if s := servedSerial(t, addr); s != 1 {
		t.Fatalf("serial %d; want 1", s)
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// A connection open across the reload.
	open, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	writeCert(t, dir, 2)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, addr) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := open.Write([]byte("GET /healthz HTTP/1.1\r\nHost: fieldseal\r\n\r\n")); err != nil {
		t.Fatalf("the open connection was dropped: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(open), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a request on the connection opened before the reload: %v %v", resp, err)
	}
}

func TestPlainHTTPOffLoopbackNeedsProxyTLS(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	vars, _ := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	vars["FIELDSEAL_LISTEN"] = "0.0.0.0:0"
	code, _, stderr := runCmd(t, t.Context(), vars, "serve")
	if code != 1 || !strings.Contains(stderr, "FIELDSEAL_TRUST_PROXY_TLS") {
		t.Errorf("plain HTTP on all interfaces: exit %d, %q; want a refusal naming FIELDSEAL_TRUST_PROXY_TLS", code, stderr)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	r := rotationUnderWay(t)
	database, oldKey, newKey, srv, status := r.database, r.oldKey, r.newKey, r.srv, r.status
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if s := <-status; s != http.StatusOK {
		t.Errorf("the request in flight at SIGTERM answered %d; want 200", s)
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; want 0", err)
		}
		srv.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not exit after SIGTERM")
	}
	if got := exactlyOneKey(t, database.AdminURL, oldKey, newKey); got != 1 {
		t.Error("the rotation in flight did not complete")
	}
}
