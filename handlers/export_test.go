package handlers_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// gpgDecrypt opens an armored OpenPGP message with passphrase using stock
// gpg, as a user recovering without fieldseal would.
func gpgDecrypt(t *testing.T, armored, passphrase string) string {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not installed: the export tests recover records with it (apt-get install gnupg)")
	}
	home := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	cmd := exec.Command("gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback",
		"--passphrase", passphrase, "--decrypt")
	cmd.Stdin = strings.NewReader(armored)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpg --decrypt: %v: %s", err, stderr.String())
	}
	return out.String()
}

func TestCiphertextOpensWithGPG(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	id := a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"diagnosis": "fine"}})

	r := a.do(req{method: "GET", path: "/v1/records/" + id + "/ciphertext", token: tok})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/pgp-encrypted" {
		t.Fatalf("ciphertext: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if !strings.HasPrefix(string(r.body), "-----BEGIN PGP MESSAGE-----") || strings.Contains(string(r.body), "fine") {
		t.Fatalf("not an armored message, or it shows the plaintext: %s", r.body)
	}
	if got := gpgDecrypt(t, string(r.body), key); got != `{"diagnosis":"fine"}` {
		t.Errorf("gpg decrypted %q; want the secret JSON", got)
	}
	// Another subject's record, a bad id, a missing scope.
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id + "/ciphertext", token: a.token("bob", allScopes)}), 404, "not_found")
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records/nope/ciphertext", token: tok}), 400, "invalid_request")
	wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id + "/ciphertext", token: a.token("alice", "records:write")}), 403, "insufficient_scope")
}

func TestExportRecoversWithGPG(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	// More than one export page (200 rows).
	const n = 205
	want := map[string]string{}
	for i := range n {
		secret := map[string]any{"i": i}
		id := a.create(tok, key, map[string]any{"collection": "c", "public": map[string]any{"i": i}, "secret": secret})
		b, _ := json.Marshal(secret)
		want[id] = string(b)
	}
	a.create(a.token("bob", allScopes), newKey(t), map[string]any{"collection": "c", "secret": map[string]any{"bob": 1}})

	r := a.do(req{method: "GET", path: "/v1/export", token: tok})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %q", r.status, r.header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", len(lines)+1, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != n {
		t.Fatalf("export has %d lines; want %d (alice's only)", len(lines), n)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		id, _ := l["id"].(string)
		if _, ok := want[id]; !ok || seen[id] {
			t.Fatalf("export line for %q: not alice's, or twice", id)
		}
		seen[id] = true
		for _, field := range []string{"collection", "public", "version", "created_at", "updated_at", "ciphertext"} {
			if _, ok := l[field]; !ok {
				t.Errorf("export line lacks %s", field)
			}
		}
	}
	// Recover two records with gpg alone: the first and the last.
	for _, l := range []map[string]any{lines[0], lines[n-1]} {
		if got := gpgDecrypt(t, l["ciphertext"].(string), key); got != want[l["id"].(string)] {
			t.Errorf("gpg recovered %q; want %q", got, want[l["id"].(string)])
		}
	}
	// A subject with no records exports nothing, successfully.
	r = a.do(req{method: "GET", path: "/v1/export", token: a.token("carol", allScopes)})
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("empty export: %d %q", r.status, r.body)
	}
}
