// Package softhsm makes SoftHSM2 tokens for tests: a PKCS#11 module whose
// tokens live in a temporary directory, as a real HSM's would on its
// device. Tests that need one fail, saying what to install, when SoftHSM2
// is missing; they never skip.
package softhsm

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// shared is this process's SoftHSM2 configuration: a PKCS#11 library
// reads its configuration once, when a process first initialises it, so
// every token of a test binary lives in one directory, and
// SOFTHSM2_CONF is set for the process (always to the same file).
var shared struct {
	once      sync.Once
	dir, conf string
	err       error
	n         atomic.Int64
}

// Token is one initialised SoftHSM2 token.
type Token struct {
	Label   string
	Module  string // the PKCS#11 library
	Conf    string // SOFTHSM2_CONF for every process that uses the token
	PIN     string
	PINFile string
	dir     string
}

// Module returns the SoftHSM2 PKCS#11 library's path, or fails t.
func Module(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("SoftHSM2's PKCS#11 module (libsofthsm2.so) is not installed: install softhsm2 (Debian: apt-get install softhsm2)")
	return ""
}

// New initialises a token labelled label and a number unique in the
// process; it is deleted when t ends.
func New(t testing.TB, label string) *Token {
	t.Helper()
	module := Module(t)
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatal("softhsm2-util is not installed: install softhsm2 (Debian: apt-get install softhsm2)")
	}
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "fieldseal-softhsm-"); shared.err != nil {
			return
		}
		tokens := filepath.Join(shared.dir, "tokens")
		if shared.err = os.Mkdir(tokens, 0o700); shared.err != nil {
			return
		}
		shared.conf = filepath.Join(shared.dir, "softhsm2.conf")
		conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
		if shared.err = os.WriteFile(shared.conf, []byte(conf), 0o600); shared.err != nil {
			return
		}
		shared.err = os.Setenv("SOFTHSM2_CONF", shared.conf)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	label = fmt.Sprintf("%s-%d", label, shared.n.Add(1))
	tk := &Token{Label: label, Module: module, Conf: shared.conf, PIN: "4711-" + label, dir: t.TempDir()}
	tk.PINFile = filepath.Join(tk.dir, "pin")
	if err := os.WriteFile(tk.PINFile, []byte(tk.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tk.util(t, "--init-token", "--free", "--label", label, "--pin", tk.PIN, "--so-pin", "so-"+tk.PIN)
	t.Cleanup(func() {
		cmd := exec.Command("softhsm2-util", "--delete-token", "--token", label)
		cmd.Env = append(os.Environ(), tk.Env()...)
		_ = cmd.Run()
	})
	return tk
}

// sharedToken is the one token of Shared.
var sharedToken struct {
	once sync.Once
	tk   *Token
}

// Shared returns this process's one token for tests that load the PKCS#11
// module in the test process itself: SoftHSM2 sees only the tokens that
// existed when the process initialised it, so they share one token (and
// give their keys distinct labels). Tests that run fieldseal as a process
// of its own use New.
func Shared(t testing.TB) *Token {
	t.Helper()
	sharedToken.once.Do(func() { sharedToken.tk = New(noCleanup{t}, "shared") })
	if sharedToken.tk == nil {
		t.Fatal("the shared SoftHSM2 token could not be made (see the first test that asked)")
	}
	return sharedToken.tk
}

// noCleanup is t without Cleanup: the shared token outlives the test that
// made it (its directory is the process's temporary SoftHSM2 directory).
type noCleanup struct{ testing.TB }

func (noCleanup) Cleanup(func()) {}

func (n noCleanup) TempDir() string {
	dir, err := os.MkdirTemp(shared.dir, "shared-")
	if err != nil {
		n.TB.Fatal(err)
	}
	return dir
}

// ImportRSA puts key on the token as a key pair labelled object with id.
func (tk *Token) ImportRSA(t testing.TB, key *rsa.PrivateKey, object string, id []byte) {
	t.Helper()
	tk.Import(t, key, object, id)
}

// Import puts key (RSA, ECDSA or Ed25519) on the token as a key pair
// labelled object with id (ids, too, must be unique on a token).
func (tk *Token) Import(t testing.TB, key any, object string, id []byte) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(tk.dir, object+".pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	tk.util(t, "--import", f, "--token", tk.Label, "--label", object, "--id", hex.EncodeToString(id), "--pin", tk.PIN)
}

// URI is the PKCS#11 URI of object, its PIN read from PINFile.
func (tk *Token) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=file:%s", tk.Label, object, tk.Module, tk.PINFile)
}

// Env is the environment a process needs to use the token.
func (tk *Token) Env() []string { return []string{"SOFTHSM2_CONF=" + tk.Conf} }

func (tk *Token) util(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("softhsm2-util", args...)
	cmd.Env = append(os.Environ(), tk.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util %s: %v\n%s", args[0], err, out)
	}
}
