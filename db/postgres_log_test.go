package db_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// TestPostgresLogHoldsNoKeys runs the store's operations, failures
// included, against a cluster that logs every statement, its duration and
// every failing statement, then searches PostgreSQL's log for the keys (as
// sent and in hex) and the plaintext. It runs with the session settings
// fieldseal sends at connection start; as behind a transaction pooler,
// where only each transaction's own settings hold; and with auto_explain
// logging every plan verbosely with its actual values (custom plans fold
// bind values into constants: key-bearing statements must not get one).
func TestPostgresLogHoldsNoKeys(t *testing.T) {
	t.Parallel()
	logAll := map[string]string{"log_statement": "all", "log_min_duration_statement": "0", "log_min_error_statement": "error"}
	autoExplain := map[string]string{"shared_preload_libraries": "auto_explain", "auto_explain.log_min_duration": "0",
		"auto_explain.log_analyze": "on", "auto_explain.log_verbose": "on"}
	for _, tc := range []struct {
		name     string
		pooler   bool
		settings map[string]string
		mark     string // what the log must hold, or the test proves nothing
		roleAsks bool   // the app's login role is set to log parameters in full
	}{
		{"log_statement=all", false, logAll, "pgp_sym_encrypt", false},
		{"transaction-pooler", true, logAll, "pgp_sym_encrypt", false},
		{"auto_explain verbose", false, autoExplain, "Output:", false},
		// A DBA's role setting asking for every parameter in full, on the
		// app's login role: the transactions' own settings win.
		{"role asks for parameters", true, logAll, "pgp_sym_encrypt", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			postgresLogHoldsNoKeys(t, tc.pooler, tc.settings, tc.mark, tc.roleAsks)
		})
	}
}

func postgresLogHoldsNoKeys(t *testing.T, pooler bool, settings map[string]string, mark string, roleAsks bool) {
	ctx := context.Background()
	database, cluster, _ := pgtest.NewCluster(t, settings)
	if roleAsks {
		conn, err := pgx.Connect(ctx, database.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, `ALTER ROLE cluster_app SET log_parameter_max_length = -1; ALTER ROLE cluster_app SET log_parameter_max_length_on_error = -1`)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	store, err := db.Open(ctx, db.Config{URL: database.AppURL, TransactionPooler: pooler})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	const plaintext = "log-test-plaintext-7f3a"
	right, wrong := key(t, keyA), key(t, keyB)
	in := fieldseal.RecordInput{Collection: "c", Public: json.RawMessage(`{}`), Secret: json.RawMessage(`{"s":"` + plaintext + `"}`)}
	rec, err := store.CreateRecord(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, right, fieldseal.NewID(time.Now()), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetRecord(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, rec.ID, right); err != nil {
		t.Fatal(err)
	}
	for _, collection := range []string{"", "c"} {
		if _, err := store.ListRecords(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, right, fieldseal.ListOptions{Limit: 10, Collection: collection}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.ReplaceRecord(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, right, rec.ID, nil, in); err != nil {
		t.Fatal(err)
	}
	// Search: the collection indexed, searched (right and wrong key), a
	// batch and an import of what an export wrote, a public filter.
	alice := fieldseal.Caller{Subject: "alice", TokenID: "t"}
	if _, err := store.SetCollection(ctx, alice, right, fieldseal.Collection{Collection: "c", Searchable: map[string]fieldseal.SearchableField{"s": {CaseInsensitive: true}}}); err != nil {
		t.Fatal(err)
	}
	search := fieldseal.ListOptions{Limit: 10, Collection: "c", Secret: []fieldseal.Filter{{Field: "s", Value: plaintext}}, Public: []fieldseal.Filter{{Field: "p", Value: "1"}}}
	if _, err := store.ListRecords(ctx, alice, right, search); err != nil {
		t.Fatal(err)
	}
	_, _ = store.ListRecords(ctx, alice, wrong, search)
	search.Secret = nil
	if _, err := store.ListRecords(ctx, alice, right, search); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateRecords(ctx, alice, right, fieldseal.NewIDs(time.Now(), 2), []fieldseal.RecordInput{in, in}, nil); err != nil {
		t.Fatal(err)
	}
	var exported []fieldseal.ImportedRecord
	if err := store.Export(ctx, alice, func(r fieldseal.ExportedRecord) error {
		exported = append(exported, fieldseal.ImportedRecord{ID: fieldseal.NewID(time.Now()), Collection: r.Collection, Public: r.Public,
			Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Ciphertext: must(fieldseal.Dearmor(r.Ciphertext)),
			KeyVersion: r.KeyVersion, SubjectKey: r.SubjectKey})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(ctx, alice, right, exported, nil); err != nil {
		t.Fatal(err)
	}
	_, _ = store.Import(ctx, alice, wrong, exported, nil)
	_, _ = store.Import(ctx, fieldseal.Caller{Subject: "bob", TokenID: "t"}, wrong, exported, nil) // bob's key is wrong, so none opens
	// Failures: wrong keys, a conflict, and a statement PostgreSQL rejects
	// with the key among its parameters (decrypting under the wrong key).
	_, _ = store.CreateRecord(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, wrong, fieldseal.NewID(time.Now()), in, nil)
	_, _ = store.GetRecord(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, rec.ID, wrong)
	_, _ = store.ReplaceRecord(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, right, rec.ID, []int64{99}, in)
	// A rotation (a rewrap, to a key that is then rotated back, replacing
	// the subject's keys), and a wrong one. The subject keys alice had
	// are kept wrapped (ciphertexts), to look for them in the log.
	wrapped := []string{wrappedKey(t, database.AdminURL)}
	if _, err := store.RotateKey(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, right, wrong, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RotateKey(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, wrong, right, true, nil); err != nil {
		t.Fatal(err)
	}
	_, _ = store.RotateKey(ctx, fieldseal.Caller{Subject: "alice", TokenID: "t"}, wrong, right, false, nil)
	wrapped = append(wrapped, wrappedKey(t, database.AdminURL))
	if !pooler && settings["log_statement"] == "all" {
		// Without a pooler, the session's own settings hold outside
		// fieldseal's transactions too.
		if _, err := store.Pool().Exec(ctx, `SELECT fieldseal.pgp_sym_decrypt(fieldseal.pgp_sym_encrypt($1, $2), $3)`, plaintext, keyA, keyB); err == nil {
			t.Fatal("decrypting under the wrong key succeeded")
		}
	}
	store.Close()
	cluster.Stop()

	log, err := os.ReadFile(cluster.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), mark) {
		t.Fatalf("the log does not hold %q: the test would prove nothing", mark)
	}
	keys := []string{keyA, keyB}
	for _, w := range wrapped { // alice's subject keys, and the data key of collection c
		subjectKey := openWrapped(t, w, right.Passphrase())
		keys = append(keys, base64.StdEncoding.EncodeToString(subjectKey), fieldseal.DataKey(subjectKey, "c", 1))
	}
	for _, k := range keys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		for _, form := range []string{k, hex.EncodeToString([]byte(k)), hex.EncodeToString(raw), plaintext} {
			if strings.Contains(string(log), form) {
				t.Errorf("PostgreSQL's log holds %q", form)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
