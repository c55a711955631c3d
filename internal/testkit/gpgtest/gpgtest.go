// Package gpgtest runs stock gpg in tests, as a user recovering records
// without fieldseal would.
package gpgtest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Home is a private GNUPGHOME, removed when t ends (its gpg-agent
// stopped), short enough for gpg-agent's socket path.
func Home(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not installed: the recovery tests open records with it (apt-get install gnupg)")
	}
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		_ = os.RemoveAll(home)
	})
	return home
}

// Decrypt opens an OpenPGP message (armored or binary) with passphrase.
func Decrypt(t testing.TB, message []byte, passphrase string) []byte {
	t.Helper()
	out, err := TryDecrypt(t, message, passphrase)
	if err != nil {
		t.Fatalf("gpg --decrypt: %v", err)
	}
	return out
}

// TryDecrypt is Decrypt, returning gpg's refusal instead of failing t.
func TryDecrypt(t testing.TB, message []byte, passphrase string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("gpg", "--homedir", Home(t), "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", passphrase, "--decrypt")
	cmd.Stdin = bytes.NewReader(message)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &refusal{err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return out.Bytes(), nil
}

type refusal struct {
	err    error
	stderr string
}

func (r *refusal) Error() string { return r.err.Error() + ": " + r.stderr }
