package handlers_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/testkit/gpgtest"
)

// gpgDecrypt opens an OpenPGP message (armored or binary) with passphrase
// using stock gpg, as a user recovering without fieldseal would.
func gpgDecrypt(t *testing.T, message, passphrase string) string {
	t.Helper()
	return string(gpgtest.Decrypt(t, []byte(message), passphrase))
}

// dataKey is what a record opens under: fieldseal.DataKey of the subject
// key that wrappedKey (a base64 OpenPGP message) holds under the client
// key.
func dataKey(t *testing.T, wrappedKey, clientKey, collection string, version int32) string {
	t.Helper()
	message, err := base64.StdEncoding.DecodeString(wrappedKey)
	if err != nil {
		t.Fatalf("subject key: %v", err)
	}
	subjectKey := gpgDecrypt(t, string(message), clientKey)
	if len(subjectKey) != 32 {
		t.Fatalf("the subject key is %d bytes; want 32", len(subjectKey))
	}
	return fieldseal.DataKey([]byte(subjectKey), collection, version)
}

// readmeRecovery is the README's block of recovery commands.
func readmeRecovery(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- recover: TestExportRecoversWithGPG runs this block -->\n```sh\n")
	block, _, ok2 := strings.Cut(block, "```\n")
	if !ok || !ok2 {
		t.Fatal("the README's recovery block is missing")
	}
	return block
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
	if r.header.Get("Fieldseal-Key-Version") != "1" || r.header.Get("Fieldseal-Subject-Key") == "" {
		t.Fatalf("ciphertext headers: key version %q, subject key %q", r.header.Get("Fieldseal-Key-Version"), r.header.Get("Fieldseal-Subject-Key"))
	}
	// The client key opens the subject key, which gives the data key,
	// which opens the record; the client key alone opens nothing.
	dk := dataKey(t, r.header.Get("Fieldseal-Subject-Key"), key, "c", 1)
	if got := gpgDecrypt(t, string(r.body), dk); got != `{"diagnosis":"fine"}` {
		t.Errorf("gpg decrypted %q; want the secret JSON", got)
	}
	if out, err := gpgtest.TryDecrypt(t, r.body, key); err == nil {
		t.Errorf("the client key itself opened the record: %q", out)
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
		for _, field := range []string{"collection", "public", "version", "created_at", "updated_at", "ciphertext", "key_version", "subject_key"} {
			if _, ok := l[field]; !ok {
				t.Errorf("export line lacks %s", field)
			}
		}
	}
	// Recover two records with the README's commands: the first and the
	// last.
	raw := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	for _, i := range []int{0, n - 1} {
		if got := recoverLine(t, raw[i], key); got != want[lines[i]["id"].(string)] {
			t.Errorf("the README's commands recovered %q; want %q", got, want[lines[i]["id"].(string)])
		}
	}
	// A subject with no records exports nothing, successfully.
	r = a.do(req{method: "GET", path: "/v1/export", token: a.token("carol", allScopes)})
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("empty export: %d %q", r.status, r.body)
	}
}

// recoverLine runs the README's recovery commands in bash on one line of
// an export, with key, and returns what they print.
func recoverLine(t *testing.T, line, key string) string {
	t.Helper()
	for _, tool := range []string{"bash", "jq", "openssl", "od", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: the README's recovery commands need it (apt-get install jq openssl)", tool)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "line.json"), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeRecovery(t))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KEY="+key, "GNUPGHOME="+gpgtest.Home(t))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's recovery commands: %v: %s", err, stderr.String())
	}
	return out.String()
}
