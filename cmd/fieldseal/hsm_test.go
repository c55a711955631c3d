package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
	"github.com/fieldseal/fieldseal/internal/testkit/softhsm"
)

// encryptTo wraps a signed token in a JWE to pub, naming its kid.
func encryptTo(t *testing.T, signed string, pub *rsa.PublicKey) string {
	t.Helper()
	s, err := devissuer.Encrypt(signed, pub)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeRSA(t *testing.T, dir, name string, k *rsa.PrivateKey) string {
	t.Helper()
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// status is the answer to GET /v1/records with token.
func listStatus(t *testing.T, srv *server, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/records", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func publishedKeys(t *testing.T, srv *server) int {
	t.Helper()
	resp, err := http.Get(srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Use != "enc" || k.KeyID == "" || k.IsPublic() == false {
			t.Errorf("a published key: use %q, kid %q, public %v", k.Use, k.KeyID, k.IsPublic())
		}
	}
	return len(set.Keys)
}

// The token decryption key in a PKCS#11 token (SoftHSM2), beside a key in
// a file: tokens encrypted to either are accepted, each opened by the key
// its kid names; a SIGHUP that drops one from the list makes its tokens
// fail, and a failed reload keeps the list. A wrong PIN, or a key not on
// the token, stops serve at start with a message naming the variable and
// never the PIN.
func TestTokenDecryptionKeysInHSM(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	dir := t.TempDir()
	tk := softhsm.New(t, "fieldseal")
	inHSM, inFile := rsaKey(t), rsaKey(t)
	tk.ImportRSA(t, inHSM, "jwe-2026", []byte{1})
	file := writeRSA(t, dir, "jwe-file.pem", inFile)
	list := filepath.Join(dir, "token-keys")
	if err := os.WriteFile(list, []byte("# the token decryption keys\n"+tk.URI("jwe-2026")+"\n"+file+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars, signed := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	vars["FIELDSEAL_TOKEN_DECRYPTION_KEY"] = "@" + list
	vars["FIELDSEAL_TOKEN_REQUIRE_ENCRYPTION"] = "true"
	vars["SOFTHSM2_CONF"] = tk.Conf
	srv := startServer(t, vars)

	if n := publishedKeys(t, srv); n != 2 {
		t.Fatalf("%d keys published; want 2", n)
	}
	toHSM, toFile, toOther := encryptTo(t, signed, &inHSM.PublicKey), encryptTo(t, signed, &inFile.PublicKey), encryptTo(t, signed, &rsaKey(t).PublicKey)
	for name, c := range map[string]struct {
		token string
		want  int
	}{"to the key in the HSM": {toHSM, 200}, "to the key in a file": {toFile, 200}, "to another key": {toOther, 401}, "not encrypted": {signed, 401}} {
		if got := listStatus(t, srv, c.token); got != c.want {
			t.Errorf("a token %s: %d; want %d", name, got, c.want)
		}
	}

	// A reload that fails (a key file gone) keeps both keys.
	if err := os.WriteFile(list, []byte(tk.URI("jwe-2026")+"\n"+filepath.Join(dir, "missing.pem")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup(t, srv)
	waitFor(t, 10*time.Second, "the failed reload's log line", func() bool { return strings.Contains(srv.Log.String(), "not reloaded") })
	if got := listStatus(t, srv, toFile); got != 200 {
		t.Errorf("after a failed reload, a token to the file's key: %d; want 200 (the old list stays)", got)
	}
	// Dropping the file's key: its tokens fail, the HSM's work.
	if err := os.WriteFile(list, []byte(tk.URI("jwe-2026")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup(t, srv)
	waitFor(t, 10*time.Second, "the reload's log line", func() bool { return strings.Contains(srv.Log.String(), "FIELDSEAL_TOKEN_DECRYPTION_KEY reloaded") })
	if got, hsm := listStatus(t, srv, toFile), listStatus(t, srv, toHSM); got != 401 || hsm != 200 {
		t.Errorf("after dropping the file's key: its token %d (want 401), the HSM's %d (want 200)", got, hsm)
	}
	if n := publishedKeys(t, srv); n != 1 {
		t.Errorf("%d keys published after the drop; want 1", n)
	}
	if strings.Contains(srv.Log.String(), tk.PIN) {
		t.Error("the server's log holds the PIN")
	}

	// serve --help never shows the PIN, even with one in the variable.
	v := map[string]string{"FIELDSEAL_TOKEN_DECRYPTION_KEY": strings.Replace(tk.URI("jwe-2026"), "pin-source=file:"+tk.PINFile, "pin-value=998877", 1)}
	if _, out, errOut := runCmdEnv(t, v, "serve", "--help"); strings.Contains(out+errOut, "998877") || !strings.Contains(out+errOut, "PKCS#11") {
		t.Errorf("serve --help: %s%s", out, errOut)
	}

	// Start-up failures: a wrong PIN, a key not on the token.
	wrongPIN := filepath.Join(dir, "wrong-pin")
	if err := os.WriteFile(wrongPIN, []byte("998877\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ uri, want string }{
		"wrong PIN":       {strings.Replace(tk.URI("jwe-2026"), "pin-source=file:"+tk.PINFile, "pin-source=file:"+wrongPIN, 1), "CKR_PIN_INCORRECT"},
		"key not on it":   {tk.URI("jwe-2025"), "no such private key on the token"},
		"pin in the URI":  {strings.Replace(tk.URI("jwe-2026"), "pin-source=file:"+tk.PINFile, "pin-value=998877", 1), "CKR_PIN_INCORRECT"},
		"no module there": {strings.Replace(tk.URI("jwe-2026"), tk.Module, "/nonexistent/libpkcs11.so", 1), "/nonexistent/libpkcs11.so"},
	} {
		v := map[string]string{}
		for k, x := range vars {
			v[k] = x
		}
		v["FIELDSEAL_TOKEN_DECRYPTION_KEY"] = c.uri
		code, _, stderr := runCmdEnv(t, v, "serve")
		if code != 1 || !strings.Contains(stderr, "FIELDSEAL_TOKEN_DECRYPTION_KEY") || !strings.Contains(stderr, c.want) ||
			strings.Contains(stderr, "998877") || strings.Contains(stderr, tk.PIN) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 naming the variable and %q, and no PIN", name, code, stderr, c.want)
		}
	}
}

func hup(t *testing.T, srv *server) {
	t.Helper()
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// runCmdEnv runs fieldseal (this test binary, re-executed) with vars as
// its environment: for what must see the process environment, as a
// PKCS#11 module reading its configuration does.
func runCmdEnv(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FIELDSEAL_TEST_RUN_MAIN=1", "FIELDSEAL_LISTEN=127.0.0.1:0")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// A checkpoint signed by an Ed25519 key in a PKCS#11 token verifies with
// its public key; a wrong PIN fails without showing it.
func TestCheckpointSignedInHSM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := pgtest.NewDB(t)
	pgtest.AppendAudit(t, database.AdminURL, "alice", 3)
	tk := softhsm.Shared(t) // the command runs in this process: its tokens must exist before the module starts
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk.Import(t, priv, "checkpoint-signer", []byte{0xc1})
	dir := t.TempDir()
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	pubFile := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	cp := filepath.Join(dir, "cp.json")
	if code, out, errOut := runCmd(t, ctx, admin, "audit", "checkpoint", "--out", cp, "--signing-key", tk.URI("checkpoint-signer")); code != 0 {
		t.Fatalf("checkpoint signed in the HSM: exit %d %s %s", code, out, errOut)
	}
	if code, out, _ := runCmd(t, ctx, admin, "audit", "verify", "--checkpoint", cp, "--public-key", pubFile); code != 0 || !strings.Contains(out, "every entry it names is still in its chain") {
		t.Errorf("verify the HSM-signed checkpoint with its public key: exit %d\n%s", code, out)
	}
	wrongPIN := filepath.Join(dir, "wrong-pin")
	_ = os.WriteFile(wrongPIN, []byte("665544\n"), 0o600)
	uri := strings.Replace(tk.URI("checkpoint-signer"), "pin-source=file:"+tk.PINFile, "pin-source=file:"+wrongPIN, 1)
	if code, out, errOut := runCmd(t, ctx, admin, "audit", "checkpoint", "--out", filepath.Join(dir, "x.json"), "--signing-key", uri); code != 1 ||
		!strings.Contains(errOut, "CKR_PIN_INCORRECT") || strings.Contains(out+errOut, "665544") || strings.Contains(out+errOut, tk.PIN) {
		t.Errorf("a wrong PIN: exit %d %s %s", code, out, errOut)
	}
	// An RSA key is not a checkpoint signing key.
	tk.ImportRSA(t, rsaKey(t), "not-ed25519", []byte{0xc2})
	if code, _, errOut := runCmd(t, ctx, admin, "audit", "checkpoint", "--out", filepath.Join(dir, "y.json"), "--signing-key", tk.URI("not-ed25519")); code != 1 || !strings.Contains(errOut, "not an Ed25519 key") {
		t.Errorf("an RSA key: exit %d %s", code, errOut)
	}
}
