package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/db/sqlc"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The tests' keys (internals_test.go), shared with the package's own tests.
const keyA, keyB = db.KeyA, db.KeyB

var key = db.MustKey

// seed stores one record for alice and one for bob through the Store, as
// the app role, and returns the store's database.
func seed(t *testing.T) (pgtest.DB, *db.Store) {
	t.Helper()
	database := pgtest.NewDB(t)
	store, err := db.Open(context.Background(), db.Config{URL: database.AppURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	ctx := context.Background()
	for _, s := range []struct{ sub, key, secret string }{
		{"alice", keyA, "alice-plaintext-marker"},
		{"bob", keyB, "bob-plaintext-marker"},
	} {
		_, err := store.CreateRecord(ctx, fieldseal.Caller{Subject: s.sub, TokenID: "t"}, key(t, s.key), fieldseal.NewID(time.Now()), fieldseal.RecordInput{
			Collection: "c", Public: json.RawMessage(`{"owner":"` + s.sub + `-public"}`),
			Secret: json.RawMessage(`{"s":"` + s.secret + `"}`),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	return database, store
}

// appTx runs fn in a transaction of the app role, with subject set unless
// it is empty.
func appTx(t *testing.T, database pgtest.DB, subject string, fn func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, database.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if subject != "" {
		if _, err := tx.Exec(ctx, `SELECT set_config('fieldseal.subject', $1, true)`, subject); err != nil {
			t.Fatal(err)
		}
	}
	fn(tx)
}

func countRows(t *testing.T, tx pgx.Tx, sql string) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestRowLevelSecurityInSQL(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	ctx := context.Background()

	t.Run("no subject set: no rows", func(t *testing.T) {
		appTx(t, database, "", func(tx pgx.Tx) {
			for _, table := range []string{"fieldseal.records", "fieldseal.subjects"} {
				if n := countRows(t, tx, `SELECT count(*)::int FROM `+table); n != 0 {
					t.Errorf("%s without a subject: %d rows; want 0", table, n)
				}
			}
		})
	})
	t.Run("a forgotten WHERE stays in the subject", func(t *testing.T) {
		appTx(t, database, "alice", func(tx pgx.Tx) {
			var subjects []string
			rows, _ := tx.Query(ctx, `SELECT DISTINCT subject FROM fieldseal.records`)
			subjects, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if len(subjects) != 1 || subjects[0] != "alice" {
				t.Errorf("alice's transaction sees subjects %v; want [alice]", subjects)
			}
			if n := countRows(t, tx, `SELECT count(*)::int FROM fieldseal.subjects`); n != 1 {
				t.Errorf("alice sees %d key verifiers; want 1", n)
			}
		})
	})
	t.Run("cannot write into another subject", func(t *testing.T) {
		appTx(t, database, "alice", func(tx pgx.Tx) {
			_, err := tx.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret)
				VALUES ('bob', gen_random_uuid(), 'c', '{}', '\x00')`)
			if err == nil || !strings.Contains(err.Error(), "row-level security") {
				t.Errorf("insert for bob as alice: %v; want a row-level security violation", err)
			}
		})
		appTx(t, database, "alice", func(tx pgx.Tx) {
			tag, err := tx.Exec(ctx, `DELETE FROM fieldseal.records WHERE subject = 'bob'`)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("delete bob's rows as alice: %v, %d rows; want 0 rows", err, tag.RowsAffected())
			}
		})
		appTx(t, database, "alice", func(tx pgx.Tx) {
			_, err := tx.Exec(ctx, `UPDATE fieldseal.records SET subject = 'bob'`)
			if err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("moving a record to bob: %v; want permission denied", err)
			}
		})
	})
}

func TestAppRoleCannot(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	// Something of somebody else's, outside fieldseal's schema.
	admin, err := pgx.Connect(context.Background(), database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), `CREATE TABLE public.payroll (x int); INSERT INTO public.payroll VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`DROP TABLE fieldseal.records`,
		`TRUNCATE fieldseal.records`,
		`TRUNCATE fieldseal.subjects`,
		`ALTER TABLE fieldseal.records DISABLE ROW LEVEL SECURITY`,
		`ALTER TABLE fieldseal.records NO FORCE ROW LEVEL SECURITY`,
		`DROP POLICY subject_isolation ON fieldseal.records`,
		`ALTER TABLE fieldseal.records ADD COLUMN x int`,
		`CREATE TABLE fieldseal.mine (x int)`,
		`CREATE TABLE public.mine (x int)`,
		`CREATE SCHEMA mine`,
		`SELECT * FROM public.payroll`,
		`DELETE FROM fieldseal.subjects`,
		`SET ROLE fieldseal_owner`,
		`SELECT fieldseal.gen_salt('md5')`,
		`CREATE FUNCTION fieldseal.f() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`UPDATE fieldseal.audit_events SET outcome = 'ok'`,
		`DELETE FROM fieldseal.audit_events`,
		`TRUNCATE fieldseal.audit_events`,
		`INSERT INTO fieldseal.audit_events (action, outcome, seq) VALUES ('record.read', 'ok', 99)`,
		`INSERT INTO fieldseal.audit_events (action, outcome, hash, prev_hash) VALUES ('record.read', 'ok', '\x00', '\x00')`,
		`ALTER TABLE fieldseal.audit_events DISABLE TRIGGER audit_chain`,
		`SELECT * FROM fieldseal.audit_heads`,
		`UPDATE fieldseal.audit_heads SET seq = 1`,
		`DELETE FROM fieldseal.audit_heads`,
		`INSERT INTO fieldseal.revocations (jti, expires_at) VALUES ('x', now())`,
		`UPDATE fieldseal.revocations SET expires_at = now()`,
	} {
		t.Run(stmt, func(t *testing.T) {
			appTx(t, database, "alice", func(tx pgx.Tx) {
				if _, err := tx.Exec(context.Background(), stmt); err == nil {
					t.Errorf("the app role could run %q", stmt)
				} else if !strings.Contains(err.Error(), "permission denied") && !strings.Contains(err.Error(), "must be owner") {
					t.Errorf("%q failed, but not for lack of privilege: %v", stmt, err)
				}
			})
		})
	}
}

func TestAuditAppendOnlyForOwnSubject(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	appTx(t, database, "alice", func(tx pgx.Tx) {
		// The app may name the subject (Citus sends it to the shard, migration
		// 00018); row-level security holds it to the transaction's.
		_, err := tx.Exec(context.Background(), `INSERT INTO fieldseal.audit_events (subject, action, outcome) VALUES ('bob', 'record.read', 'ok')`)
		if err == nil || !strings.Contains(err.Error(), "row-level security") {
			t.Errorf("alice's transaction appending to bob's chain: %v; want a row-level security refusal", err)
		}
	})
	appTx(t, database, "alice", func(tx pgx.Tx) {
		if n := countRows(t, tx, `SELECT count(*)::int FROM fieldseal.audit_events WHERE subject = 'bob'`); n != 0 {
			t.Errorf("alice's transaction reads %d of bob's audit entries; want 0", n)
		}
	})
}

// TestAuditorRole: the auditor reads the trail and record metadata, never
// a byte of ciphertext, and writes nothing.
func TestAuditorRole(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.LoginRole(t, database, "IN ROLE fieldseal_auditor"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM fieldseal.audit_events`).Scan(&n); err != nil || n != 2 {
		t.Errorf("the auditor reads %d audit entries (%v); want both subjects' 2", n, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(id) FROM fieldseal.records`).Scan(&n); err != nil {
		t.Errorf("the auditor cannot read record metadata: %v", err)
	}
	for _, stmt := range []string{
		`SELECT secret FROM fieldseal.records`,
		`SELECT * FROM fieldseal.records`,
		`SELECT public FROM fieldseal.records`,
		`SELECT key_verifier FROM fieldseal.subjects`,
		`INSERT INTO fieldseal.audit_events (action, outcome) VALUES ('x', 'ok')`,
		`DELETE FROM fieldseal.audit_events`,
	} {
		if _, err := conn.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("auditor: %q gave %v; want permission denied", stmt, err)
		}
	}
}

func TestDumpHoldsNoPlaintext(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	out, err := exec.Command(filepath.Join(pgtest.BinDir(t), "pg_dump"), "--dbname", database.AdminURL, "--data-only").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	dump := string(out)
	if !strings.Contains(dump, "alice-public") {
		t.Fatal("the dump does not hold the records at all; the test would prove nothing")
	}
	for _, secret := range []string{"alice-plaintext-marker", "bob-plaintext-marker", keyA, keyB} {
		if strings.Contains(dump, secret) {
			t.Errorf("the dump holds %q", secret)
		}
	}
}

func TestOpenRefusesRoles(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	for _, tc := range []struct {
		name, attributes, want string
	}{
		{"app member", "IN ROLE fieldseal_app", ""},
		{"superuser", "SUPERUSER", "superuser"},
		{"BYPASSRLS", "BYPASSRLS IN ROLE fieldseal_app", "BYPASSRLS"},
		{"owner", "IN ROLE fieldseal_app, fieldseal_owner", "owns fieldseal's schema"},
		{"not an app member", "", "not a member of fieldseal_app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Open asks on its first connection: no Store exists for a
			// role it refuses.
			store, err := db.Open(context.Background(), db.Config{URL: pgtest.LoginRole(t, database, tc.attributes)})
			var refused *db.SessionError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.As(err, &refused) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Open = %v; want a refusal (a *db.SessionError) naming %q", err, tc.want)
			}
			if err == nil {
				defer store.Close()
				if d := store.Dialect(); d != "PostgreSQL" {
					t.Errorf("dialect of one PostgreSQL: %q", d)
				}
				forms, err := db.Open(context.Background(), db.Config{URL: pgtest.LoginRole(t, database, tc.attributes), CitusForms: true})
				if err != nil {
					t.Fatal(err)
				}
				defer forms.Close()
				if d := forms.Dialect(); d != "Citus" {
					t.Errorf("dialect with CitusForms: %q; want Citus's forms", d)
				}
			}
		})
	}
}

func TestSessionsDoNotLogParameters(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	store, err := db.Open(context.Background(), db.Config{URL: database.AppURL})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, setting := range []string{"log_parameter_max_length", "log_parameter_max_length_on_error"} {
		var v string
		if err := store.Pool().QueryRow(context.Background(), "SELECT current_setting($1)", setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "0" {
			t.Errorf("%s = %s in the app's sessions; want 0", setting, v)
		}
	}
}

// Every statement that tries a key does nothing unless AdmitKeyUse
// admitted the caller earlier in the same transaction: the service sends
// such statements in the same round trip as the throttle check, before
// it knows the answer, so the gate must hold in PostgreSQL.
func TestKeyStatementsNeedAdmission(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	ctx := context.Background()
	admit := func(tx pgx.Tx, tokenLimit int32) bool {
		t.Helper()
		a, err := sqlc.New(tx).AdmitKeyUse(ctx, sqlc.AdmitKeyUseParams{TokenID: "jti:t", WindowSeconds: 60, TokenLimit: tokenLimit, SubjectLimit: 50})
		if err != nil {
			t.Fatal(err)
		}
		return a.Admitted
	}
	// tried reports what each key-trying statement gives alice's key.
	tried := func(tx pgx.Tx, k string) (answers []string) {
		t.Helper()
		q := sqlc.New(tx)
		var id pgtype.UUID
		if err := tx.QueryRow(ctx, `SELECT id FROM fieldseal.records`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		describe := func(name string, v any, err error) {
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				t.Fatalf("%s: %v", name, err)
			}
			answers = append(answers, fmt.Sprintf("%s: %v %v", name, v, err))
		}
		ok, err := q.CheckKey(ctx, k)
		describe("CheckKey", ok, err)
		r, err := q.GetRecordDecrypted(ctx, sqlc.GetRecordDecryptedParams{ID: id, Key: k})
		describe("GetRecordDecrypted", r.Secret, err)
		rows, err := q.ListRecordsDecrypted(ctx, sqlc.ListRecordsDecryptedParams{Key: k, After: pgtype.UUID{Valid: true}, MaxRows: 10})
		describe("ListRecordsDecrypted", len(rows), err)
		held, err := q.LockKeyForRotation(ctx, k)
		describe("LockKeyForRotation", held.Matches, err)
		created, err := q.CreateRecord(ctx, sqlc.CreateRecordParams{ID: pgtype.UUID{Bytes: [16]byte{1}, Valid: true}, Collection: "c", Public: []byte(`{}`), Secret: `{}`, Key: k})
		describe("CreateRecord", created.Collection, err)
		encrypted, err := q.EncryptSecrets(ctx, sqlc.EncryptSecretsParams{Secrets: []string{`{}`}, Key: k, Collections: []string{"c"}})
		describe("EncryptSecrets", len(encrypted), err)
		wrapped, err := q.RewrapSubjectKey(ctx, sqlc.RewrapSubjectKeyParams{OldKey: k, NewKey: keyB})
		describe("RewrapSubjectKey", len(wrapped) > 0, err)
		return answers
	}
	nothing := []string{"CheckKey: false no rows in result set", "GetRecordDecrypted:  no rows in result set",
		"ListRecordsDecrypted: 0 <nil>", "LockKeyForRotation: false no rows in result set",
		"CreateRecord:  no rows in result set", "EncryptSecrets: 0 <nil>", "RewrapSubjectKey: false no rows in result set"}
	check := func(what string, got, want []string) {
		t.Helper()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	appTx(t, database, "alice", func(tx pgx.Tx) {
		check("without AdmitKeyUse", tried(tx, keyA), nothing)
	})
	appTx(t, database, "alice", func(tx pgx.Tx) {
		if !admit(tx, 10) {
			t.Fatal("a caller without failures was not admitted")
		}
		check("admitted", tried(tx, keyA), []string{"CheckKey: true <nil>", `GetRecordDecrypted: {"s":"alice-plaintext-marker"} <nil>`,
			"ListRecordsDecrypted: 1 <nil>", "LockKeyForRotation: true <nil>", "CreateRecord: c <nil>", "EncryptSecrets: 1 <nil>", "RewrapSubjectKey: true <nil>"})
	})
	appTx(t, database, "alice", func(tx pgx.Tx) {
		admit(tx, 10)
		// A wrong key decrypts nothing, writes nothing and raises nothing
		// (pgp_sym_decrypt would, into PostgreSQL's log): each statement
		// opens the subject's row first.
		check("admitted, wrong key", tried(tx, keyB), []string{"CheckKey: false <nil>", "GetRecordDecrypted:  <nil>",
			"ListRecordsDecrypted: 0 <nil>", "LockKeyForRotation: false <nil>",
			"CreateRecord:  no rows in result set", "EncryptSecrets: 0 <nil>", "RewrapSubjectKey: false no rows in result set"})
	})
	appTx(t, database, "alice", func(tx pgx.Tx) {
		admit(tx, 10)
		if admit(tx, 0) { // limit 0: refused; the later answer is the one that holds
			t.Fatal("a caller at its limit was admitted")
		}
		check("refused after admitted", tried(tx, keyA), nothing)
	})

	// The answer ends with its transaction: a pooled connection's next
	// transaction starts without it.
	conn, err := pgx.Connect(ctx, database.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i, admitFirst := range []bool{true, false} {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('fieldseal.subject', 'alice', true)`); err != nil {
			t.Fatal(err)
		}
		if admitFirst {
			admit(tx, 10)
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			continue
		}
		check(fmt.Sprintf("transaction %d on the connection, after an admitted one", i+1), tried(tx, keyA), nothing)
		_ = tx.Rollback(ctx)
	}
}

// A read's audit entry goes in the same round trip as the read, before
// its outcome is known; it is appended only if the read decrypted in that
// transaction (GetRecordDecrypted sets fieldseal.decrypted).
func TestReadEntryOnlyIfDecrypted(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		admit  bool
		key    string
		record bool // read a record that exists
		read   bool // run the decrypting read at all
		want   int64
	}{
		{"no read", true, keyA, false, false, 0},
		{"a missing record", true, keyA, false, true, 0},
		{"the wrong key", true, keyB, true, true, 0},
		{"not admitted", false, keyA, true, true, 0},
		{"decrypted", true, keyA, true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appTx(t, database, "alice", func(tx pgx.Tx) {
				q := sqlc.New(tx)
				if tc.admit {
					if _, err := q.AdmitKeyUse(ctx, sqlc.AdmitKeyUseParams{TokenID: "jti:t", WindowSeconds: 60, TokenLimit: 10, SubjectLimit: 50}); err != nil {
						t.Fatal(err)
					}
				}
				var id pgtype.UUID
				if err := tx.QueryRow(ctx, `SELECT id FROM fieldseal.records`).Scan(&id); err != nil {
					t.Fatal(err)
				}
				if !tc.record {
					id.Bytes[15] ^= 0xff
				}
				if tc.read {
					_, _ = q.GetRecordDecrypted(ctx, sqlc.GetRecordDecryptedParams{ID: id, Key: tc.key})
				}
				n, err := q.AppendAuditEventIfDecrypted(ctx, sqlc.AppendAuditEventIfDecryptedParams{Action: "record.read", Outcome: "ok", RecordID: id})
				if err != nil {
					t.Fatal(err)
				}
				if n != tc.want {
					t.Errorf("appended %d entries; want %d", n, tc.want)
				}
			})
		})
	}
}

// The app role's remaining powers are narrow: it deletes only expired
// revocations, and replaces a subject's verifier only by proving the old
// key inside PostgreSQL, for its transaction's subject only.
func TestAppRoleNarrowPowers(t *testing.T) {
	t.Parallel()
	database, _ := seed(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `INSERT INTO fieldseal.revocations (jti, expires_at) VALUES ('live', now() + interval '1 hour'), ('old', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	appTx(t, database, "", func(tx pgx.Tx) {
		tag, err := tx.Exec(ctx, `DELETE FROM fieldseal.revocations`)
		if err != nil {
			t.Fatal(err)
		}
		if tag.RowsAffected() != 1 {
			t.Errorf("the app role deleted %d revocations; want only the expired one", tag.RowsAffected())
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM fieldseal.revocations WHERE jti = 'live'`).Scan(&live); err != nil || live != 1 {
			t.Errorf("the unexpired revocation is gone (%d, %v)", live, err)
		}
	})
	keyOpens := func(subject, k string) bool {
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT fieldseal.open_subject(wrapped_key, key_verifier, $2) IS NOT NULL FROM fieldseal.subjects WHERE subject = $1`, subject, k).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	const keyC = "Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M="
	var underC []byte // a subject key wrapped under keyC, which whoever holds the app role could make
	if err := admin.QueryRow(ctx, `SELECT fieldseal.new_subject_key($1)`, keyC).Scan(&underC); err != nil {
		t.Fatal(err)
	}
	// A subject's keys change only in a transaction that proves the key
	// that opens them (migrations 00019, 00023): not without a proof, not
	// with another key's, and never bob's in alice's transaction.
	for _, proof := range []string{"", keyC, keyB} {
		appTx(t, database, "alice", func(tx pgx.Tx) {
			q := sqlc.New(tx)
			if proof != "" {
				if err := q.ProveKey(ctx, proof); err != nil {
					t.Fatal(err)
				}
			}
			_, err := q.ReplaceSubjectKey(ctx, underC)
			if err == nil || !strings.Contains(err.Error(), "proves the key") {
				t.Errorf("alice's subject key replaced with proof %q: %v; want the trigger's refusal", proof, err)
			}
		})
	}
	for _, stmt := range []string{
		`UPDATE fieldseal.subjects SET wrapped_key = NULL, key_verifier = fieldseal.new_key_verifier('` + keyC + `')`,
		`UPDATE fieldseal.subjects SET wrapped_key = fieldseal.pgp_sym_encrypt_bytea(fieldseal.open_subject(wrapped_key, NULL, '` + keyA + `'), '` + keyC + `', 'cipher-algo=aes256')`,
	} {
		appTx(t, database, "alice", func(tx pgx.Tx) {
			if _, err := tx.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "proves the key") {
				t.Errorf("the app role could run %q without a proof (%v)", stmt, err)
			}
		})
	}
	appTx(t, database, "alice", func(tx pgx.Tx) {
		if _, err := tx.Exec(ctx, `SELECT set_config('fieldseal.key_proof', $1, true)`, keyB); err != nil {
			t.Fatal(err)
		}
		tag, err := tx.Exec(ctx, `UPDATE fieldseal.subjects SET wrapped_key = $1 WHERE subject = 'bob'`, underC)
		if err != nil || tag.RowsAffected() != 0 {
			t.Errorf("alice's transaction replaced bob's subject key: %v, %v", tag, err)
		}
	})
	if !keyOpens("alice", keyA) || !keyOpens("bob", keyB) {
		t.Fatal("a subject key changed without its key")
	}
	appTx(t, database, "alice", func(tx pgx.Tx) {
		q := sqlc.New(tx)
		if err := q.ProveKey(ctx, keyA); err != nil {
			t.Fatal(err)
		}
		if n, err := q.ReplaceSubjectKey(ctx, underC); err != nil || n != 1 {
			t.Errorf("alice's subject key replaced with her key: %d, %v; want 1", n, err)
		}
		var proof string
		if err := tx.QueryRow(ctx, `SELECT current_setting('fieldseal.key_proof', true)`).Scan(&proof); err != nil || proof != "" {
			t.Errorf("the proof outlived the replacement: %q, %v", proof, err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if !keyOpens("alice", keyC) || keyOpens("alice", keyA) || !keyOpens("bob", keyB) {
		t.Error("with alice's key, alice's subject key (and only hers) should have moved to the new key")
	}

	// Wrong-key counters: within their window they only grow.
	appTx(t, database, "alice", func(tx pgx.Tx) {
		q := sqlc.New(tx)
		for range 3 {
			if err := q.RecordKeyFailure(ctx, sqlc.RecordKeyFailureParams{TokenID: "jti:t", WindowSeconds: 60}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	for _, stmt := range []string{
		`UPDATE fieldseal.key_failures SET failures = 0`,
		`UPDATE fieldseal.key_failures SET window_start = now() - interval '1 day'`,
		`UPDATE fieldseal.key_failures SET window_seconds = 1`,
	} {
		appTx(t, database, "alice", func(tx pgx.Tx) {
			if _, err := tx.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "only grow") {
				t.Errorf("the app role could run %q (%v)", stmt, err)
			}
		})
	}
	appTx(t, database, "alice", func(tx pgx.Tx) {
		tag, err := tx.Exec(ctx, `DELETE FROM fieldseal.key_failures`)
		if err != nil || tag.RowsAffected() != 0 {
			t.Errorf("the app role deleted %d live counters (%v); want none", tag.RowsAffected(), err)
		}
	})
	// Once the window has passed, pruning works.
	if _, err := admin.Exec(ctx, `SET session_replication_role = replica; UPDATE fieldseal.key_failures SET window_start = now() - interval '2 minutes'; RESET session_replication_role`); err != nil {
		t.Fatal(err)
	}
	appTx(t, database, "alice", func(tx pgx.Tx) {
		if err := sqlc.New(tx).PruneKeyFailures(ctx, 60); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM fieldseal.key_failures`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d counters after pruning an expired window (%v); want 0", n, err)
		}
	})
}

// The search tables obey row-level security like records: the app role,
// with alice's subject set, sees none of bob's settings or tags, cannot
// write either for bob, and cannot tag bob's record as alice's.
func TestSearchTablesRowLevelSecurity(t *testing.T) {
	t.Parallel()
	database, store := seed(t)
	ctx := context.Background()
	for _, s := range []struct{ sub, key string }{{"alice", keyA}, {"bob", keyB}} {
		if _, err := store.SetCollection(ctx, fieldseal.Caller{Subject: s.sub, TokenID: "t"}, key(t, s.key),
			fieldseal.Collection{Collection: "c", Searchable: map[string]fieldseal.SearchableField{"s": {}}}); err != nil {
			t.Fatal(err)
		}
	}
	var bobRecord string
	appTx(t, database, "bob", func(tx pgx.Tx) {
		if err := tx.QueryRow(ctx, `SELECT id::text FROM fieldseal.records`).Scan(&bobRecord); err != nil {
			t.Fatal(err)
		}
	})
	appTx(t, database, "alice", func(tx pgx.Tx) {
		for _, q := range []string{`SELECT count(*)::int FROM fieldseal.search_tags WHERE subject <> 'alice'`,
			`SELECT count(*)::int FROM fieldseal.collections WHERE subject <> 'alice'`} {
			if n := countRows(t, tx, q); n != 0 {
				t.Errorf("%s: %d; want 0", q, n)
			}
		}
		if n := countRows(t, tx, `SELECT count(*)::int FROM fieldseal.search_tags`); n != 1 {
			t.Errorf("alice sees %d tags; want her 1", n)
		}
	})
	tag32 := `decode(repeat('00', 32), 'hex')`
	for name, c := range map[string]struct{ attack, refusal string }{
		"a tag for bob":             {`INSERT INTO fieldseal.search_tags (subject, record_id, field, tag) VALUES ('bob', '` + bobRecord + `', 'x', ` + tag32 + `)`, "row-level security"},
		"a tag on bob's record":     {`INSERT INTO fieldseal.search_tags (record_id, field, tag) VALUES ('` + bobRecord + `', 'x', ` + tag32 + `)`, "foreign key"},
		"settings for bob":          {`INSERT INTO fieldseal.collections (subject, collection, searchable) VALUES ('bob', 'd', '{}')`, "row-level security"},
		"moving a tag to bob":       {`UPDATE fieldseal.search_tags SET subject = 'bob'`, "permission denied"},
		"bob's settings, by update": {`UPDATE fieldseal.collections SET searchable = '{}' WHERE subject = 'bob'`, "0 rows"},
		"bob's tags, by delete":     {`DELETE FROM fieldseal.search_tags WHERE subject = 'bob'`, "0 rows"},
	} {
		appTx(t, database, "alice", func(tx pgx.Tx) {
			tag, err := tx.Exec(ctx, c.attack)
			switch {
			case c.refusal == "0 rows" && (err != nil || tag.RowsAffected() != 0):
				t.Errorf("%s as alice: %v, %d rows; want 0 rows", name, err, tag.RowsAffected())
			case c.refusal != "0 rows" && (err == nil || !strings.Contains(err.Error(), c.refusal)):
				t.Errorf("%s as alice: %v; want %s", name, err, c.refusal)
			}
		})
	}
	appTx(t, database, "bob", func(tx pgx.Tx) {
		if n := countRows(t, tx, `SELECT count(*)::int FROM fieldseal.search_tags`); n != 1 {
			t.Errorf("bob has %d tags after alice's attempts; want his 1", n)
		}
	})
}
