// Package pgtest gives tests a real PostgreSQL: the server named by
// FIELDSEAL_TEST_DATABASE_URL (a role that may create databases and roles),
// or else a throwaway cluster started from the installed server binaries.
// Each test gets a database of its own, cloned from a template that the
// migrations were applied to once per test binary; tests may run in
// parallel. Nothing is skipped: without PostgreSQL the run fails and says
// what to install.
//
// With FIELDSEAL_TEST_PGBOUNCER=1 the app role's URLs go through a
// PgBouncer in transaction pooling mode started in front of the server
// (see RunThroughPgBouncer).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/pglocal"
)

// server is the PostgreSQL this test binary uses, set up by Main.
var server struct {
	adminURL    *url.URL // a superuser (or CREATEDB+CREATEROLE) URL, any database
	template    string
	appRole     string
	appPassword string
	cluster     *pglocal.Cluster
	bouncer     *pglocal.PgBouncer    // with FIELDSEAL_TEST_PGBOUNCER=1
	citus       *pglocal.CitusCluster // with FIELDSEAL_TEST_CITUS=1
	mu          sync.Mutex            // serialises CREATE DATABASE ... TEMPLATE
}

// PgBouncerVariable, set to 1, puts a PgBouncer between the app role and
// the server.
const PgBouncerVariable = "FIELDSEAL_TEST_PGBOUNCER"

// CitusVariable, set to 1, runs the tests on a Citus coordinator with two
// workers, started from the installed binaries (Citus must be installed:
// make test-citus does it): each test's database is created on every
// node and migrated, which distributes it. FIELDSEAL_TEST_CITUS_KEEP=1
// keeps the nodes' directories, with their logs, after the run.
const CitusVariable = "FIELDSEAL_TEST_CITUS"

// Main runs m against a real PostgreSQL; call it from TestMain.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	raw := os.Getenv("FIELDSEAL_TEST_DATABASE_URL")
	if os.Getenv(CitusVariable) == "1" {
		dir, err := os.MkdirTemp("", "fieldseal-test-citus-")
		if err == nil {
			err = os.Chmod(dir, 0o755) // the nodes run as another user when we are root
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			return 1
		}
		if os.Getenv(CitusVariable+"_KEEP") == "1" {
			fmt.Fprintln(os.Stderr, "pgtest: the Citus nodes' directories and logs stay in", dir)
		} else {
			defer os.RemoveAll(dir)
		}
		cc, err := pglocal.StartCitus(ctx, pglocal.CitusOptions{Dir: dir, Workers: 2, Settings: map[string]string{
			"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
			// Fewer shards than the default 32: each test distributes a
			// database of its own.
			"citus.shard_count": "8",
			// Every statement logged on every node, for the tests that
			// look for secrets there (CitusNodeLogs).
			"log_statement": "all",
			// Single- and multi-shard executions, counted per database
			// (citus_stat_counters): the tests check requests stay on one shard.
			"citus.enable_stat_counters": "on",
		}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: cannot start a Citus cluster:", err)
			return 1
		}
		defer cc.Stop()
		server.citus = cc
		raw = cc.Coordinator.URL("postgres")
	}
	if raw == "" {
		dir, err := os.MkdirTemp("", "fieldseal-test-pg-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		c, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Settings: map[string]string{
			// A throwaway cluster: durability buys nothing here.
			"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
		}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: cannot start a throwaway PostgreSQL: %v\n"+
				"Install the PostgreSQL server binaries (15 or newer, with contrib), "+
				"or set FIELDSEAL_TEST_DATABASE_URL to a server where this role may create databases and roles.\n", err)
			return 1
		}
		defer c.Stop()
		server.cluster = c
		raw = c.URL("postgres")
	}
	u, err := url.Parse(raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: FIELDSEAL_TEST_DATABASE_URL is not a URL")
		return 1
	}
	server.adminURL = u
	suffix := randomName()
	server.template = "fieldseal_tpl_" + suffix
	server.appRole = "fieldseal_test_app_" + suffix
	server.appPassword = randomName()
	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: setting up the template database:", err)
		teardown(ctx)
		return 1
	}
	if os.Getenv(PgBouncerVariable) == "1" {
		dir, err := os.MkdirTemp("", "fieldseal-test-pgbouncer-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		port, _ := strconv.Atoi(u.Port())
		b, err := pglocal.StartPgBouncer(ctx, dir, port, map[string]string{server.appRole: server.appPassword})
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			teardown(ctx)
			return 1
		}
		defer b.Stop()
		server.bouncer = b
	}
	code := m.Run()
	teardown(ctx)
	return code
}

func setup(ctx context.Context) error {
	if server.citus != nil {
		return nil // each test's database is made and migrated in NewDB
	}
	_, _, err := pglocal.Provision(ctx, dbURL(server.adminURL, "postgres"), server.template, server.appRole, server.appPassword)
	return err
}

func teardown(ctx context.Context) {
	_ = adminExec(ctx, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{server.template}.Sanitize()))
	_ = adminExec(ctx, "postgres", fmt.Sprintf(`DROP ROLE IF EXISTS %s`, pgx.Identifier{server.appRole}.Sanitize()))
}

// DB is a database of one test's own, migrated to the head version.
type DB struct {
	Name     string
	AdminURL string // the admin role (superuser for the throwaway cluster)
	AppURL   string // a login role that is a member of fieldseal_app only
	// TransactionPooler says AppURL goes through PgBouncer in transaction
	// mode (FIELDSEAL_TEST_PGBOUNCER=1); DirectAppURL is then the same
	// role straight to the server.
	TransactionPooler bool
	DirectAppURL      string
}

// NewDB creates a migrated database for t, dropped when t ends.
func NewDB(t testing.TB) DB {
	t.Helper()
	ctx := context.Background()
	name := "fieldseal_t_" + randomName()
	if server.citus != nil {
		return newCitusDB(t, name)
	}
	server.mu.Lock()
	err := adminExec(ctx, "postgres", fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`,
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{server.template}.Sanitize()))
	server.mu.Unlock()
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if err := adminExec(context.Background(), "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize())); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	app := *server.adminURL
	app.User = url.UserPassword(server.appRole, server.appPassword)
	d := DB{Name: name, AdminURL: dbURL(server.adminURL, name), AppURL: dbURL(&app, name)}
	d.DirectAppURL = d.AppURL
	if server.bouncer != nil {
		app.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(server.bouncer.Port))
		d.AppURL, d.TransactionPooler = dbURL(&app, name), true
	}
	return d
}

// newCitusDB creates database name on every node of the Citus cluster,
// migrates it (which distributes it) and lets the app role in.
func newCitusDB(t testing.TB, name string) DB {
	t.Helper()
	ctx := context.Background()
	cc := server.citus
	server.mu.Lock()
	defer server.mu.Unlock()
	t.Cleanup(func() {
		for _, n := range cc.Nodes() {
			if err := adminExecAt(context.Background(), n.URL("postgres"), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize())); err != nil {
				t.Errorf("drop test database: %v", err)
			}
		}
	})
	coord, app, err := cc.Provision(ctx, name, server.appRole, server.appPassword)
	if err != nil {
		t.Fatalf("create a distributed test database: %v", err)
	}
	return DB{Name: name, AdminURL: coord, AppURL: app, DirectAppURL: app}
}

// Citus reports whether the tests run on a Citus cluster
// (FIELDSEAL_TEST_CITUS=1).
func Citus() bool { return server.citus != nil }

// CitusNodeLogs returns the server log file of every node of the Citus
// cluster, coordinator first; nil when the tests do not run on Citus.
func CitusNodeLogs() []string {
	if server.citus == nil {
		return nil
	}
	var logs []string
	for _, n := range server.citus.Nodes() {
		logs = append(logs, n.LogFile)
	}
	return logs
}

// NewEmptyDB creates an unmigrated database for t, dropped when t ends, and
// returns its admin URL: for tests of the migrations themselves.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	name := "fieldseal_e_" + randomName()
	if err := adminExec(context.Background(), "postgres", fmt.Sprintf(`CREATE DATABASE %s`, pgx.Identifier{name}.Sanitize())); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		_ = adminExec(context.Background(), "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
	})
	return dbURL(server.adminURL, name)
}

// LoginRole creates a login role for t with the given extra attributes
// (e.g. "SUPERUSER", "BYPASSRLS", "IN ROLE fieldseal_owner") and returns a
// URL for db as that role. The role is dropped when t ends.
func LoginRole(t testing.TB, db DB, attributes string) string {
	t.Helper()
	name, pw := "fieldseal_r_"+randomName(), randomName()
	ident := pgx.Identifier{name}.Sanitize()
	// On Citus the role is created from the distributed database, which
	// creates it on every node, and the nodes are told its password.
	home := "postgres"
	if Citus() {
		home = db.Name
	}
	err := adminExec(context.Background(), home, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s' %s`, ident, pw, attributes))
	if err == nil && Citus() {
		err = server.citus.NodePassword(context.Background(), db.Name, name, pw)
	}
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		_ = adminExec(context.Background(), db.Name, fmt.Sprintf(`DROP OWNED BY %s`, ident))
		_ = adminExec(context.Background(), home, fmt.Sprintf(`DROP ROLE IF EXISTS %s`, ident))
	})
	u, _ := url.Parse(db.AdminURL)
	u.User = url.UserPassword(name, pw)
	return u.String()
}

// BinDir returns the directory of the PostgreSQL client and server binaries
// (pg_dump, psql, pgbench), failing t with an instruction if there is none.
func BinDir(t testing.TB) string {
	t.Helper()
	dir, err := pglocal.FindBinDir("")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func adminExec(ctx context.Context, database, sql string) error {
	return adminExecAt(ctx, dbURL(server.adminURL, database), sql)
}

func adminExecAt(ctx context.Context, url, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func dbURL(base *url.URL, database string) string {
	u := *base
	u.Path = "/" + database
	return u.String()
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AppendAudit appends n audit entries to subject's chain through the
// chaining trigger, as the app does, one transaction each, over url (the
// app's or an admin's).
func AppendAudit(t testing.TB, url, subject string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range n {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := setSubject(ctx, tx, subject); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO fieldseal.audit_events (action, outcome, record_count, request_id) VALUES ('record.list', 'ok', $1, 'req')`, i)
			return err
		})
		if err != nil {
			t.Fatalf("append to %s's chain: %v", subject, err)
		}
	}
}

// setSubject sets the transaction's subject, on every node in Citus mode
// (as the service does: db/citus.go).
func setSubject(ctx context.Context, tx pgx.Tx, subject string) error {
	if !Citus() {
		_, err := tx.Exec(ctx, `SELECT set_config('fieldseal.subject', $1, true)`, subject)
		return err
	}
	_, err := tx.Exec(ctx, `SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL fieldseal.subject = '`+strings.ReplaceAll(subject, "'", "''")+"'")
	return err
}

// RunThroughPgBouncer runs this test binary's tests again, except the
// caller, with FIELDSEAL_TEST_PGBOUNCER=1: the whole suite with the app
// role behind PgBouncer in transaction pooling mode. In that run it does
// nothing.
func RunThroughPgBouncer(t *testing.T) {
	t.Helper()
	if os.Getenv(PgBouncerVariable) == "1" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.skip", "^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), PgBouncerVariable+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(string(out), "\n")
		t.Fatalf("the suite through PgBouncer failed (%v):\n%s", err, strings.Join(lines[max(0, len(lines)-80):], "\n"))
	}
}

// AppendAuditLanes appends rounds × lanes entries to subject's trail over
// url, as concurrent requests of one subject would: in each round, lanes
// transactions each append one entry while the others still hold theirs,
// so the entries spread over lanes 0 to lanes-1.
func AppendAuditLanes(t testing.TB, url, subject string, lanes, rounds int) {
	t.Helper()
	ctx := context.Background()
	conns := make([]*pgx.Conn, lanes)
	for i := range conns {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		conns[i] = c
	}
	for range rounds {
		open := make([]pgx.Tx, lanes)
		for i, c := range conns {
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			open[i] = tx
			if err := setSubject(ctx, tx, subject); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO fieldseal.audit_events (action, outcome, request_id) VALUES ('record.read', 'ok', 'req')`); err != nil {
				t.Fatalf("append to %s's trail: %v", subject, err)
			}
		}
		for _, tx := range open {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}
