package handlers_test

import (
	"bytes"
	"compress/zlib"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// What comes back in obeys the rules a create obeys (issue "What comes
// back in"): an import's lines, the plaintexts their ciphertexts open
// to, and every stored plaintext a response would carry.

// sealed is an OpenPGP message in the form fieldseal writes (pgcrypto's:
// a new-format symmetric-key session key packet, AES-256, simple salted
// S2K with SHA-1; an integrity-protected data packet) made here, so that
// a test can put in it what pgp_sym_encrypt never would: bytes that are
// not JSON or not UTF-8, a compressed packet.
func sealed(t testing.TB, passphrase string, data []byte, compress bool) []byte {
	t.Helper()
	salt := random(t, 8)
	h1 := sha1.Sum(append(append([]byte{}, salt...), passphrase...))
	h2 := sha1.Sum(append(append([]byte{0}, salt...), passphrase...))
	key := append(h1[:], h2[:12]...)
	inner := packet(11, append([]byte{'t', 0, 0, 0, 0, 0}, data...)) // text, no file name, no date
	if compress {
		var z bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
		_, _ = zw.Write(inner)
		_ = zw.Close()
		inner = packet(8, append([]byte{2}, z.Bytes()...)) // ZLIB
	}
	prefix := random(t, 16)
	plain := append(append(prefix, prefix[14], prefix[15]), inner...)
	plain = append(plain, 0xd3, 0x14) // the MDC packet's header, hashed with what precedes it
	mdc := sha1.Sum(plain)
	plain = append(plain, mdc[:]...)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	enc := make([]byte, len(plain))
	cipher.NewCFBEncrypter(block, make([]byte, aes.BlockSize)).XORKeyStream(enc, plain) //nolint:staticcheck // OpenPGP's CFB
	return append(packet(3, append([]byte{4, 9, 1, 2}, salt...)), packet(18, append([]byte{1}, enc...))...)
}

// packet is a new-format OpenPGP packet.
func packet(tag byte, body []byte) []byte {
	if len(body) < 192 {
		return append([]byte{0xc0 | tag, byte(len(body))}, body...)
	}
	h := []byte{0xc0 | tag, 0xff, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[2:], uint32(len(body)))
	return append(h, body...)
}

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// armored is message as pgcrypto's armor() writes it (no checksum line,
// which Dearmor does not require).
func armored(message []byte) string {
	b := base64.StdEncoding.EncodeToString(message)
	var s strings.Builder
	s.WriteString("-----BEGIN PGP MESSAGE-----\n\n")
	for len(b) > 64 {
		s.WriteString(b[:64] + "\n")
		b = b[64:]
	}
	s.WriteString(b + "\n-----END PGP MESSAGE-----\n")
	return s.String()
}

// exportLine is one line of an export holding message.
func exportLine(t testing.TB, collection string, message []byte) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": fieldseal.NewID(time.Now()).String(), "collection": collection, "public": map[string]any{}, "version": 1,
		"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "ciphertext": armored(message),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (a *api) importLines(token, key string, lines ...string) response {
	a.t.Helper()
	return a.do(req{method: "POST", path: "/v1/import", token: token, key: key, body: strings.Join(lines, "\n"),
		header: map[string]string{"Content-Type": "application/x-ndjson"}})
}

// TestImportChecksWhatOpens: a line whose ciphertext opens under the
// subject's key is imported only if its plaintext is a secret a create
// would accept; a compressed message is refused without being opened; a
// line that does not open is a 400 naming it, never a wrong key. Nothing
// is written, and nothing of a plaintext reaches an answer or a log.
func TestImportChecksWhatOpens(t *testing.T) {
	t.Parallel()
	database, cluster, _ := pgtest.NewCluster(t, map[string]string{"log_statement": "all", "log_min_error_statement": "error"})
	a := startAPI(t, database, apitest.Options{})
	tok, key := a.token("alice", allScopes), newKey(t)
	if r := a.setSearchable(tok, key, "p", `{"searchable":{"e":{}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT collection: %d %s", r.status, r.body)
	}
	kept := a.create(tok, key, map[string]any{"collection": "p", "secret": map[string]any{"e": "kept@example.org"}})
	good := exportLine(t, "p", sealed(t, key, []byte(`{"e":"crafted@example.org"}`), false))
	const marker = "PLAINTEXT-MARKER"
	for _, c := range []struct {
		name, plain string
		compress    bool
		status      int
		want        string
	}{
		{"not JSON", "hello not json " + marker, false, 400, "not one a create accepts"},
		{"a forged list entry", `{"e":"` + marker + `"}],"next":"x"},{"id":"0192f3a4-5b6c-7d8e-9f01-23456789abcd","secret":{}`, false, 400, "not one a create accepts"},
		{"an array", `["` + marker + `"]`, false, 400, "must be a JSON object"},
		{"a string", `"` + marker + `"`, false, 400, "must be a JSON object"},
		{"a number", `12345`, false, 400, "must be a JSON object"},
		{"null", `null`, false, 400, "must be a JSON object"},
		{"invalid UTF-8", "{\"e\":\"" + marker + "\xff\xfe\"}", false, 400, "does not open"},
		{"a NUL", "{\"e\":\"" + marker + "\x00\"}", false, 400, "does not open"},
		{"an escaped NUL", `{"e":"` + marker + `\u0000"}`, false, 400, `\u0000`},
		{"a key twice", `{"e":"a@example.org","e":"` + marker + `"}`, false, 400, "the same key twice"},
		{"a key twice, escaped", `{"e":"a@example.org","\u0065":"` + marker + `"}`, false, 400, "the same key twice"},
		{"compressed", `{"e":"` + marker + `"}`, true, 400, "uncompressed"},
		{"a compression bomb", `{"e":"` + marker + strings.Repeat("a", 50<<20) + `"}`, true, 400, "uncompressed"},
		{"larger than a create's body", `{"e":"` + marker + strings.Repeat("a", 2<<20) + `"}`, false, 413, "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			line := exportLine(t, "p", sealed(t, key, []byte(c.plain), c.compress))
			r := a.importLines(tok, key, good, line)
			code := "invalid_request"
			if c.status == 413 {
				code = "payload_too_large"
			}
			wantProblem(t, r, c.status, code)
			if !strings.Contains(string(r.body), "line 2") || !strings.Contains(string(r.body), c.want) {
				t.Errorf("the refusal should name line 2 and say %q: %s", c.want, r.body)
			}
			if strings.Contains(string(r.body), marker) {
				t.Errorf("the refusal quotes the plaintext: %s", r.body)
			}
		})
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.records WHERE subject = 'alice'`); n != 1 {
		t.Errorf("refused imports left alice %d records; want 1", n)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE subject = 'alice'`); n != 1 {
		t.Errorf("refused imports left alice %d tags; want 1", n)
	}
	pgLog, err := os.ReadFile(cluster.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pgLog), "literal_message") {
		t.Fatal("PostgreSQL's log does not hold the imports' statements: the test would prove nothing")
	}
	for name, log := range map[string]string{"fieldseal's": a.logBuf.String(), "PostgreSQL's": string(pgLog)} {
		if strings.Contains(log, marker) || strings.Contains(log, hex.EncodeToString([]byte(marker))) {
			t.Errorf("a plaintext reached %s log", name)
		}
	}

	// A line another key sealed, sent with the subject's key: 400, never
	// a wrong key, however often. The token's reads still work after.
	other := exportLine(t, "p", sealed(t, newKey(t), []byte(`{"e":"x"}`), false))
	for range 12 {
		r := a.importLines(tok, key, good, other)
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), "line 2 does not open") {
			t.Fatalf("the refusal should name line 2: %s", r.body)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.key_failures`); n != 0 {
		t.Errorf("%d wrong keys counted for lines that do not open; want 0", n)
	}
	if r := a.do(req{method: "GET", path: "/v1/records/" + kept, token: tok, key: key}); r.status != http.StatusOK {
		t.Errorf("a read with the right key after those imports: %d %s", r.status, r.body)
	}

	// The crafted message is one pgcrypto opens: alone, it imports, and
	// reads and searches as a created record would.
	if r := a.importLines(tok, key, good); r.status != http.StatusOK || !strings.Contains(string(r.body), `{"imported":1,"skipped":0}`) {
		t.Fatalf("import of a well-formed crafted line: %d %s", r.status, r.body)
	}
	if got := secrets(t, a.search(tok, key, "collection=p&secret.e=crafted@example.org"), "e"); len(got) != 1 {
		t.Errorf("the imported record is not found by search: %q", got)
	}
}

// TestImportRefusesWhatExportCannotWrite: an import accepts exactly what
// an export can write back; each other value is a 400 naming its line,
// with nothing written.
func TestImportRefusesWhatExportCannotWrite(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 1}})
	ex := a.do(req{method: "GET", path: "/v1/export", token: tok})
	line := strings.TrimSpace(string(ex.body))
	var l map[string]any
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatal(err)
	}
	a.do(req{method: "DELETE", path: "/v1/records/" + l["id"].(string), token: tok})
	with := func(field string, v any) string {
		m := map[string]any{}
		for k, x := range l {
			m[k] = x
		}
		m[field] = v
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, c := range []struct {
		field string
		value any
		want  string
	}{
		{"updated_at", "9999-12-31T23:59:59-01:00", "years 1 to 9999"},
		{"created_at", "0000-01-01T00:00:00+01:00", "years 1 to 9999"},
		{"created_at", "2026-01-01T00:00:00.123456789Z", "microsecond"},
		{"version", json.Number(strconv.FormatInt(1<<63-1, 10)), "version must be between"},
		{"version", json.Number("9007199254740992"), "version must be between"},
		{"version", 0, "version must be between"},
		{"id", "00000000-0000-0000-0000-000000000000", "all-zero"},
		{"public", map[string]any{"a": []any{}, "b": 1}, ""},
	} {
		r := a.importLines(tok, key, with(c.field, c.value))
		if c.want == "" {
			if r.status != http.StatusOK {
				t.Errorf("%s %v: %d %s; want it imported", c.field, c.value, r.status, r.body)
			}
			a.exec("", `DELETE FROM fieldseal.records`)
			continue
		}
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), "line 1") || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %v: the refusal should name line 1 and say %q: %s", c.field, c.value, c.want, r.body)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.records`); n != 0 {
		t.Errorf("refused imports wrote %d records", n)
	}
	// public with a key twice is refused as a create's would be.
	dup := strings.Replace(line, `"public":{}`, `"public":{"a":1,"a":2}`, 1)
	wantProblem(t, a.importLines(tok, key, dup), http.StatusBadRequest, "invalid_request")
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: `{"collection":"c","public":{"a":1,"a":2},"secret":{}}`}), 400, "invalid_request")
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records", token: tok, key: key, body: `{"collection":"c","secret":{"a":{"b":1,"b":2}}}`}), 400, "invalid_request")
}

// TestExportFailsLoudly: a record an export cannot write (a year past
// 9999, stored before imports were checked) fails the export where the
// client sees it, and fieldseal logs an ERROR naming the record, never
// "the client hung up".
func TestExportFailsLoudly(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	for range 3 {
		a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 1}})
	}
	a.exec("", `INSERT INTO fieldseal.records (subject, id, collection, public, secret, updated_at)
		SELECT subject, 'ffffffff-0000-7000-8000-000000000000', collection, public, secret, '10000-01-01T00:00:00Z' FROM fieldseal.records LIMIT 1`)
	hr, _ := http.NewRequest("GET", a.URL+"/v1/export", nil)
	hr.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(hr)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("the export of a record it cannot write ended cleanly (%d, %d lines); want the client to see an error", resp.StatusCode, bytes.Count(body, []byte("\n")))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(a.logBuf.String(), "export failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	log := a.logBuf.String()
	if !strings.Contains(log, `"level":"ERROR","msg":"export failed`) || !strings.Contains(log, "ffffffff-0000-7000-8000-000000000000") {
		t.Errorf("no ERROR line naming the record:\n%s", log)
	}
	if strings.Contains(log, "hung up") {
		t.Errorf("a server-side failure was logged as the client hanging up:\n%s", log)
	}
}

// TestStoredNonObjectsAreCorrupt: a stored secret that is not one JSON
// object (imported before imports were checked) never reaches a client
// as raw bytes: a read answers 500 corrupt_record, a list marks it
// damaged and stays valid JSON.
func TestStoredNonObjectsAreCorrupt(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 1}})
	for i, plain := range []string{`hello not json`, `{"s":1}],"next":"x"},{"id":"forged","secret":{}`, `[1]`, `"s"`, `null`} {
		id := fmt.Sprintf("0192f3a4-5b6c-7d8e-9f01-00000000000%d", i)
		a.exec("", `INSERT INTO fieldseal.records (subject, id, collection, public, secret)
			VALUES ('alice', $1, 'c', '{}', fieldseal.pgp_sym_encrypt($2, $3, 'cipher-algo=aes256, s2k-mode=1'))`, id, plain, key)
		wantProblem(t, a.do(req{method: "GET", path: "/v1/records/" + id, token: tok, key: key}), http.StatusInternalServerError, "corrupt_record")
	}
	r := a.do(req{method: "GET", path: "/v1/records?limit=50", token: tok, key: key})
	var page struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != http.StatusOK {
		t.Fatalf("list: %d, %v: %s", r.status, err, r.body)
	}
	damaged := 0
	for _, it := range page.Items {
		if it["damaged"] == true && it["secret"] == nil {
			damaged++
		}
	}
	if len(page.Items) != 6 || damaged != 5 {
		t.Errorf("list of 6 with 5 damaged: got %d items, %d damaged: %s", len(page.Items), damaged, r.body)
	}
}

// TestRefusedBatchIsOneRefusal: a batch under a wrong key is refused as a
// single create is (403), counted once and audited once; throttled, 429
// with Retry-After.
func TestRefusedBatchIsOneRefusal(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 0}})
	batch := map[string]any{"records": []any{
		map[string]any{"collection": "c", "secret": map[string]any{"s": 1}},
		map[string]any{"collection": "c", "secret": map[string]any{"s": 2}},
		map[string]any{"collection": "c", "secret": map[string]any{"s": 3}},
	}}
	wantProblem(t, a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: newKey(t), body: batch}), http.StatusForbidden, "wrong_key")
	if n := a.count(`SELECT count(*) FROM fieldseal.audit_events WHERE action = 'record.create' AND outcome = 'wrong_key' AND record_count = 3`); n != 1 {
		t.Errorf("%d audit entries for one refused batch; want 1", n)
	}
	if n := a.count(`SELECT coalesce(sum(failures), 0)::int FROM fieldseal.key_failures`); n != 1 {
		t.Errorf("one refused batch counted as %d wrong keys; want 1", n)
	}
	for range 12 {
		a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: newKey(t), body: batch})
	}
	r := a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: batch})
	wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("a throttled batch has no Retry-After")
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.records`); n != 1 {
		t.Errorf("refused batches left %d records; want 1", n)
	}
}

// TestCarefulClientsTrips: an unknown query parameter answers a clear
// problem (a typo would list everything).
func TestCarefulClientsTrips(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "c", "secret": map[string]any{"s": 1}})
	for _, path := range []string{"/v1/records?colection=c", "/v1/records?collection=c&secret.s=1&limt=5", "/v1/export?since=x", "/v1/audit/events?subjct=a"} {
		r := a.do(req{method: "GET", path: path, token: tok, key: key})
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(string(r.body), "unknown query parameter") {
			t.Errorf("GET %s: %s", path, r.body)
		}
	}
	if r := a.do(req{method: "GET", path: "/v1/records?collection=c&public.x=1&limit=5", token: tok, key: key}); r.status != http.StatusOK {
		t.Errorf("known parameters refused: %d %s", r.status, r.body)
	}
}

// TestSearchableWarnsWhatTagsReveal: making a field of few or skewed
// values searchable answers a warning naming it; unique values do not.
func TestSearchableWarnsWhatTagsReveal(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	blood := []string{"O+", "O+", "O+", "A+", "A+", "B+", "AB-", "O-"}
	var recs []any
	for i := range 400 {
		recs = append(recs, map[string]any{"collection": "patients", "secret": map[string]any{
			"email": fmt.Sprintf("p%d@example.org", i), "blood": blood[i%len(blood)], "zip": fmt.Sprint(10000 + i%150)}})
	}
	if r := a.do(req{method: "POST", path: "/v1/records/batch", token: tok, key: key, body: map[string]any{"records": recs}}); r.status != http.StatusCreated {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	r := a.setSearchable(tok, key, "patients", `{"searchable":{"email":{},"blood":{},"zip":{}}}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	var answer struct {
		Indexed  int      `json:"indexed"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(r.body, &answer); err != nil {
		t.Fatal(err)
	}
	if answer.Indexed != 400 || len(answer.Warnings) != 1 || !strings.HasPrefix(answer.Warnings[0], "secret.blood: 400 records hold 5 distinct values, the most common held by 150 (38 %)") {
		t.Errorf("warnings for blood alone (5 values; zip has 150 values, none over 5 %%; email is unique): %s", r.body)
	}
	if strings.Contains(string(r.body), "O+") {
		t.Errorf("a warning quotes a value: %s", r.body)
	}
}

// layeredLine is an export line of key version 1 whose subject_key is
// wrapped (a sealed message, as the caller made it), and whose ciphertext
// is plain sealed under the collection's data key of the subject key
// dataFrom.
func layeredLine(t *testing.T, collection string, wrapped []byte, dataFrom []byte, plain string) string {
	t.Helper()
	dk := fieldseal.DataKey(dataFrom, collection, 1)
	var line map[string]any
	if err := json.Unmarshal([]byte(exportLine(t, collection, sealed(t, dk, []byte(plain), false))), &line); err != nil {
		t.Fatal(err)
	}
	line["key_version"], line["subject_key"] = 1, wrapped
	b, err := json.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edited is line with fn applied to its fields.
func edited(t *testing.T, line string, fn func(map[string]any)) string {
	t.Helper()
	var l map[string]any
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatal(err)
	}
	fn(l)
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestImportSubjectKeys: an export line of keys in layers carries its
// subject key, wrapped under the client's key, and the import opens it
// to open the line. A line a client crafted with a subject key of its
// choosing imports (it is its own data, re-encrypted under its own
// keys); a subject key that is compressed (never opened), of another
// length, under another key, too large, or missing answers 400 naming
// the line, never a 500 or a wrong key, and nothing is written.
func TestImportSubjectKeys(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tok, key := a.token("alice", allScopes), newKey(t)
	a.create(tok, key, map[string]any{"collection": "p", "secret": map[string]any{"e": "kept@example.org"}})
	chosen := random(t, 32)
	good := layeredLine(t, "p", sealed(t, key, chosen, false), chosen, `{"e":"crafted@example.org"}`)
	for _, c := range []struct {
		name, line string
		status     int
		want       string
	}{
		{"a compressed subject key", layeredLine(t, "p", sealed(t, key, chosen, true), chosen, `{"e":"x"}`), 400, "line 2 does not open"},
		{"a subject key of 16 bytes", layeredLine(t, "p", sealed(t, key, chosen[:16], false), chosen[:16], `{"e":"x"}`), 400, "line 2 does not open"},
		{"a subject key of 64 bytes", layeredLine(t, "p", sealed(t, key, append(chosen, chosen...), false), append(chosen, chosen...), `{"e":"x"}`), 400, "line 2 does not open"},
		{"a subject key under another key", layeredLine(t, "p", sealed(t, newKey(t), chosen, false), chosen, `{"e":"x"}`), 400, "line 2 does not open"},
		{"a record under another subject key", layeredLine(t, "p", sealed(t, key, chosen, false), random(t, 32), `{"e":"x"}`), 400, "line 2 does not open"},
		{"a subject key that is not a message", layeredLine(t, "p", random(t, 94), chosen, `{"e":"x"}`), 400, "line 2 does not open"},
		{"a subject key too large", layeredLine(t, "p", sealed(t, key, random(t, 400), false), chosen, `{"e":"x"}`), 400, "subject_key is larger"},
		{"key version 1 without a subject key", edited(t, good, func(l map[string]any) { delete(l, "subject_key") }), 400, "subject_key is required"},
		{"a negative key version", edited(t, good, func(l map[string]any) { l["key_version"] = -1 }), 400, "key_version must be 0 or more"},
		{"a subject key for key version 0", edited(t, good, func(l map[string]any) { l["key_version"] = 0 }), 400, "both or neither"},
		{"a subject key that is not base64", edited(t, good, func(l map[string]any) { l["subject_key"] = "%%%" }), 400, "subject_key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := a.importLines(tok, key, good, c.line)
			wantProblem(t, r, c.status, "invalid_request")
			if !strings.Contains(string(r.body), "line 2") || !strings.Contains(string(r.body), c.want) {
				t.Errorf("the refusal should name line 2 and say %q: %s", c.want, r.body)
			}
		})
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.records WHERE subject = 'alice'`); n != 1 {
		t.Errorf("refused imports left alice %d records; want 1", n)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.key_failures`); n != 0 {
		t.Errorf("%d wrong keys counted for lines that do not open; want 0", n)
	}
	// The line with a subject key of the client's choosing imports, under
	// alice's own keys: her key opens it, the chosen key does not.
	if r := a.importLines(tok, key, good); r.status != http.StatusOK || !strings.Contains(string(r.body), `"imported":1`) {
		t.Fatalf("import of a crafted line under the client's key: %d %s", r.status, r.body)
	}
	if n := a.opening("alice", key); n != 2 {
		t.Errorf("%d of alice's records open under her key; want 2", n)
	}
	if r := a.do(req{method: "GET", path: "/v1/records?collection=p", token: tok, key: key}); !strings.Contains(string(r.body), "crafted@example.org") {
		t.Errorf("the imported record: %d %s", r.status, r.body)
	}
}
