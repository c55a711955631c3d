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
	"github.com/fieldseal/fieldseal/migrations"
	"github.com/fieldseal/fieldseal/pglocal"
)

// TestPostgresLogHoldsNoKeys runs the store's operations, failures
// included, against a cluster that logs every statement, its duration and
// every failing statement, then searches PostgreSQL's log for the keys (as
// sent and in hex) and the plaintext.
func TestPostgresLogHoldsNoKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fieldseal-logtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Settings: map[string]string{
		"log_statement": "all", "log_min_duration_statement": "0", "log_min_error_statement": "error",
		"fsync": "off",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Stop()
	m, err := migrations.Open(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	m.Close()
	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `CREATE ROLE logtest_app LOGIN PASSWORD 'pw' IN ROLE fieldseal_app`); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	pool, err := db.NewPool(ctx, cluster.URLAs("logtest_app", "pw", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	store := db.NewStore(pool)

	const plaintext = "log-test-plaintext-7f3a"
	right, wrong := key(t, keyA), key(t, keyB)
	in := fieldseal.RecordInput{Collection: "c", Public: json.RawMessage(`{}`), Secret: json.RawMessage(`{"s":"` + plaintext + `"}`)}
	rec, err := store.CreateRecord(ctx, "alice", right, fieldseal.NewID(time.Now()), in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetRecord(ctx, "alice", rec.ID, right); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ListRecords(ctx, "alice", right, fieldseal.ListOptions{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceRecord(ctx, "alice", right, rec.ID, nil, in); err != nil {
		t.Fatal(err)
	}
	// Failures: wrong keys, a conflict, and a statement PostgreSQL rejects
	// with the key among its parameters (decrypting under the wrong key).
	_, _ = store.CreateRecord(ctx, "alice", wrong, fieldseal.NewID(time.Now()), in)
	_, _ = store.GetRecord(ctx, "alice", rec.ID, wrong)
	_, _ = store.ReplaceRecord(ctx, "alice", right, rec.ID, []int64{99}, in)
	if _, err := pool.Exec(ctx, `SELECT fieldseal.pgp_sym_decrypt(fieldseal.pgp_sym_encrypt($1, $2), $3)`, plaintext, keyA, keyB); err == nil {
		t.Fatal("decrypting under the wrong key succeeded")
	}
	pool.Close()
	cluster.Stop()

	log, err := os.ReadFile(cluster.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "pgp_sym_encrypt") || !strings.Contains(string(log), "Wrong key or corrupt data") {
		t.Fatal("the log does not hold the statements and the error: the test would prove nothing")
	}
	for _, k := range []string{keyA, keyB} {
		raw, _ := base64.StdEncoding.DecodeString(k)
		for _, form := range []string{k, hex.EncodeToString([]byte(k)), hex.EncodeToString(raw), plaintext} {
			if strings.Contains(string(log), form) {
				t.Errorf("PostgreSQL's log holds %q", form)
			}
		}
	}
}
