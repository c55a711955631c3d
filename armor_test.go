package fieldseal_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal"
)

// Dearmor reads what gpg --armor writes, and refuses altered text.
func TestDearmor(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("gpg", "--homedir", dir, "--batch", "--pinentry-mode", "loopback", "--passphrase", "p",
		"--symmetric", "--armor", "--comment", "a header line")
	cmd.Stdin = strings.NewReader("hello")
	armored, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg --symmetric --armor (install gnupg): %v", err)
	}
	msg, err := fieldseal.Dearmor(string(armored))
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("gpg", "--homedir", dir, "--batch", "--pinentry-mode", "loopback", "--passphrase", "p", "--decrypt")
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.Output(); err != nil || string(out) != "hello" {
		t.Fatalf("gpg --decrypt of the dearmored message: %q, %v", out, err)
	}

	lines := strings.Split(strings.TrimSpace(string(armored)), "\n")
	body := -1
	for i, l := range lines {
		if l == "" {
			body = i + 1
			break
		}
	}
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	for name, text := range map[string]string{
		"altered body":  strings.Join(append(append(append([]string{}, lines[:body]...), flip(lines[body])), lines[body+1:]...), "\n"),
		"no end line":   strings.Join(lines[:len(lines)-1], "\n"),
		"no begin line": strings.Join(lines[1:], "\n"),
		"not base64":    strings.Replace(string(armored), lines[body], "!!!!", 1),
		"empty":         "",
		"bad checksum":  strings.Replace(string(armored), lines[len(lines)-2], "=AAAA", 1),
		"no blank line": strings.Join(append(append([]string{}, lines[0]), lines[body:]...), "\n"),
	} {
		if _, err := fieldseal.Dearmor(text); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), lines[body][:8]) {
			t.Errorf("%s: the error quotes the text: %v", name, err)
		}
	}
}
