package migrations_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
	"github.com/fieldseal/fieldseal/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func migrate(t *testing.T, url string, fn func(m *migrations.Migrator) error) {
	t.Helper()
	m, err := migrations.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := fn(m); err != nil {
		t.Fatal(err)
	}
}

// upErr migrates url to the head; safe to call from any goroutine.
func upErr(url string) error {
	m, err := migrations.Open(context.Background(), url)
	if err != nil {
		return err
	}
	defer m.Close()
	return up(m)
}

// upConcurrently migrates every url at once, one goroutine each.
func upConcurrently(t *testing.T, urls ...string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(urls))
	for _, url := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- upErr(url)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func up(m *migrations.Migrator) error {
	_, err := m.Up(context.Background())
	return err
}

func downAll(m *migrations.Migrator) error {
	_, err := m.DownTo(context.Background(), 0)
	return err
}

func query[T any](t *testing.T, url, sql string, args ...any) T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// objects counts what the migrations own in a database: the fieldseal
// schema's objects, the schema itself and pgcrypto.
const objects = `SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'fieldseal')
	+ (SELECT count(*) FROM pg_namespace WHERE nspname = 'fieldseal')
	+ (SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto')
	+ (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public')`

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDB(t)
	migrate(t, url, up)
	if v := query[int64](t, url, `SELECT max(version_id) FROM `+migrations.VersionTable); v != migrations.Head() {
		t.Errorf("version after up = %d; want %d", v, migrations.Head())
	}
	if n := query[int64](t, url, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`); n != 0 {
		t.Errorf("%d objects in public; want none", n)
	}
	owner := query[string](t, url, `SELECT tableowner::text FROM pg_tables WHERE schemaname = 'fieldseal' AND tablename = 'records'`)
	if owner != "fieldseal_owner" {
		t.Errorf("records owned by %q; want fieldseal_owner", owner)
	}
	migrate(t, url, downAll)
	if n := query[int64](t, url, objects); n != 0 {
		t.Errorf("after down to 0, %d migration objects remain; want 0", n)
	}
	migrate(t, url, up)
	if n := query[bool](t, url, `SELECT relforcerowsecurity FROM pg_class WHERE oid = 'fieldseal.records'::regclass`); !n {
		t.Error("after up, down, up: row-level security is not forced on records")
	}
}

func TestEachStepDownIsClean(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDB(t)
	migrate(t, url, up)
	for v := migrations.Head(); v > 0; v-- {
		migrate(t, url, func(m *migrations.Migrator) error {
			_, err := m.Down(context.Background())
			return err
		})
		if got := query[int64](t, url, `SELECT coalesce(max(version_id), 0) FROM `+migrations.VersionTable); got != v-1 {
			t.Errorf("after one down from %d: version %d", v, got)
		}
	}
	if n := query[int64](t, url, objects); n != 0 {
		t.Errorf("%d migration objects remain; want 0", n)
	}
}

func TestRolesAreSharedAcrossDatabases(t *testing.T) {
	t.Parallel()
	// Two databases of one cluster, migrated at the same time: roles are
	// cluster-wide, and neither run may fail on the other's roles.
	a, b := pgtest.NewEmptyDB(t), pgtest.NewEmptyDB(t)
	upConcurrently(t, a, b)
	// Rolling one database back keeps the roles the other still uses.
	migrate(t, b, downAll)
	for _, role := range []string{"fieldseal_owner", "fieldseal_app", "fieldseal_auditor"} {
		if !query[bool](t, a, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1 AND NOT rolcanlogin)`, role) {
			t.Errorf("role %s is gone or can log in", role)
		}
	}
	if v := query[int64](t, a, `SELECT max(version_id) FROM `+migrations.VersionTable); v != migrations.Head() {
		t.Errorf("database a at version %d; want %d", v, migrations.Head())
	}
	if !query[bool](t, a, `SELECT has_parameter_privilege('fieldseal_app', 'log_parameter_max_length', 'SET')`) {
		t.Error("rolling back database b revoked the app role's parameter grant that database a needs")
	}
}

func TestConcurrentUpOnOneDatabase(t *testing.T) {
	t.Parallel()
	// Two replicas starting at once: the advisory lock serialises them, so
	// each migration is applied exactly once and neither run fails.
	url := pgtest.NewEmptyDB(t)
	upConcurrently(t, url, url, url)
	if n := query[int64](t, url, `SELECT count(*) FROM `+migrations.VersionTable+` WHERE version_id > 0`); n != migrations.Head() {
		t.Errorf("%d applied migrations recorded; want %d, each once", n, migrations.Head())
	}
}

func TestPgcryptoElsewhereIsRefusedClearly(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDB(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), `CREATE EXTENSION pgcrypto WITH SCHEMA public`)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrations.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Up(context.Background())
	if err == nil {
		t.Fatal("migrations ran with pgcrypto in public")
	}
	if want := "pgcrypto is already installed in schema public"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v; want it to say %q", err, want)
	}
	// Nothing half-done: the failed migration rolled back.
	if n := query[int64](t, url, `SELECT count(*) FROM pg_namespace WHERE nspname = 'fieldseal'`); n != 0 {
		t.Error("schema fieldseal exists after the failed migration")
	}
}

// The chains cross every version of the audit trigger and hash: 00007's
// (searching the trail), 00009's (audit_heads, backfilled on the way up),
// 00010's (audit_hash inlined), 00012's (lanes: the old chain becomes
// lane 0) and 00018's (the hash of the entry's fields, not of its row).
// Entries appended under each, up and down again, form unbroken chains.
func TestAuditMigrationsKeepChains(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDB(t)
	to := func(version int64) {
		t.Helper()
		migrate(t, url, func(m *migrations.Migrator) error {
			if version == 0 {
				return up(m)
			}
			_, err := m.DownTo(context.Background(), version)
			return err
		})
	}
	migrate(t, url, up)
	to(8)
	for range 3 {
		pgtest.AppendAudit(t, url, "alice", 1)
	}
	pgtest.AppendAudit(t, url, "bob", 1)
	to(0) // 00009 backfills the heads
	to(9)
	if n := query[int64](t, url, `SELECT sum(seq)::bigint FROM fieldseal.audit_heads`); n != 4 {
		t.Errorf("heads after the backfill sum to %d; want 3 + 1", n)
	}
	pgtest.AppendAudit(t, url, "alice", 1)
	to(0) // the latest
	pgtest.AppendAudit(t, url, "alice", 1)
	pgtest.AppendAudit(t, url, "carol", 1)
	to(9)
	pgtest.AppendAudit(t, url, "carol", 1)
	to(8)
	pgtest.AppendAudit(t, url, "alice", 1) // through 00007's trigger again
	to(0)
	pgtest.AppendAudit(t, url, "bob", 1)
	pgtest.AppendAuditLanes(t, url, "alice", 3, 2) // lanes 1 and 2 beside the old chain
	to(17)
	pgtest.AppendAudit(t, url, "bob", 1) // 00012's trigger, hashing the row
	to(0)
	pgtest.AppendAudit(t, url, "bob", 1) // 00018's, hashing the fields
	rep, err := openAdmin(t, url).VerifyAuditTrail(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Entries != 18 || rep.Subjects != 3 {
		t.Errorf("after up and down across the audit migrations: %+v; want 18 entries in 3 intact subjects", rep)
	}
	if n := query[int64](t, url, `SELECT count(DISTINCT lane) FROM fieldseal.audit_events WHERE subject = 'alice'`); n != 3 {
		t.Errorf("alice's concurrent appends used %d lanes; want 3", n)
	}
	// 00012 down refuses while lanes other than 0 hold entries, rather
	// than fold them into one chain (which would rewrite hashes).
	err = func() error {
		m, err := migrations.Open(context.Background(), url)
		if err != nil {
			return err
		}
		defer m.Close()
		_, err = m.DownTo(context.Background(), 11)
		return err
	}()
	if err == nil || !strings.Contains(err.Error(), "lanes other than 0") {
		t.Errorf("migrating down past lanes in use: %v; want a refusal", err)
	}
}

// openAdmin is an admin connection to url, closed when t ends.
func openAdmin(t testing.TB, url string) *db.Admin {
	t.Helper()
	a, err := db.OpenAdmin(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}

// 00023's down refuses while a subject holds keys in layers: its subject
// key cannot become a verifier again without the client's key.
func TestKeysInLayersDownRefusesLayeredSubjects(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDB(t)
	migrate(t, url, up)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	if _, err := conn.Exec(context.Background(), `INSERT INTO fieldseal.subjects (subject, wrapped_key) VALUES ('alice', fieldseal.new_subject_key($1))`, key); err != nil {
		t.Fatal(err)
	}
	m, err := migrations.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.DownTo(context.Background(), 22); err == nil || !strings.Contains(err.Error(), "cannot be undone") {
		t.Errorf("00023 down with a subject in layers: %v; want a refusal", err)
	}
	if n := query[int64](t, url, `SELECT count(*) FROM fieldseal.subjects WHERE wrapped_key IS NOT NULL`); n != 1 {
		t.Errorf("after the refused down, %d subjects in layers; want alice's, untouched", n)
	}
}
