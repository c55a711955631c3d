//go:build citus

package migrations_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/migrations"
	"github.com/fieldseal/fieldseal/pglocal"
)

// startCitus starts a coordinator and two workers with a database
// "fieldseal" on them; they stop when t ends.
func startCitus(t *testing.T) *pglocal.CitusCluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "fieldseal-citus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // PostgreSQL runs as another user when we are root
		t.Fatal(err)
	}
	ctx := context.Background()
	cc, err := pglocal.StartCitus(ctx, pglocal.CitusOptions{Dir: dir, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Stop() })
	if err := cc.CreateDatabase(ctx, "fieldseal"); err != nil {
		t.Fatal(err)
	}
	return cc
}

func rows(t *testing.T, url, sql string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	r, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Migrations on a Citus coordinator distribute every subject-keyed table
// by subject, co-located, put revocations on every node, and give the
// workers every fieldseal function with the coordinator's privileges;
// down and up again work.
func TestMigrateOnCitus(t *testing.T) {
	cc := startCitus(t)
	ctx := context.Background()
	coord := cc.Coordinator.URL("fieldseal")
	check := func(when string) {
		t.Helper()
		// Every table of the schema with a subject column, and how it
		// is distributed: a new one must be added to subjectTables.
		got := rows(t, coord, `
			SELECT c.oid::regclass::text || ' ' || coalesce(p.partmethod::text || ' ' || coalesce(column_to_column_name(p.logicalrelid, p.partkey), '') || ' ' || p.colocationid, 'local')
			FROM pg_class c LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
			WHERE c.relnamespace = 'fieldseal'::regnamespace AND c.relkind = 'r'
			  AND (EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'subject') OR p.partmethod IS NOT NULL)
			ORDER BY 1`)
		colocation := ""
		for _, line := range got {
			var name, method, column, colo string
			n, _ := fmtSscan(line, &name, &method, &column, &colo)
			switch {
			case name == "fieldseal.revocations":
				if method != "n" {
					t.Errorf("%s: revocations is %q; want a reference table", when, line)
				}
			case n != 4 || method != "h" || column != "subject":
				t.Errorf("%s: %q; want it distributed by subject", when, line)
			case colocation == "":
				colocation = colo
			case colo != colocation:
				t.Errorf("%s: %q is not co-located with the others (group %s)", when, line, colocation)
			}
		}
		if len(got) < 10 {
			t.Errorf("%s: only %d subject tables: %v", when, len(got), got)
		}
		// The owner could log in while migrations ran, never after.
		for i, n := range cc.Nodes() {
			if got := rows(t, n.URL("fieldseal"), `SELECT rolname::text FROM pg_authid WHERE rolname LIKE 'fieldseal%' AND (rolcanlogin OR rolpassword IS NOT NULL)
				UNION ALL SELECT rolename::text FROM pg_dist_authinfo WHERE rolename LIKE 'fieldseal%'`); len(got) != 0 {
				t.Errorf("%s: node %d lets %q log in", when, i, got)
			}
		}
		// The workers call fieldseal's functions (shard triggers, pushed-
		// down queries) with the privileges they have on the coordinator.
		const funcs = `SELECT p.oid::regprocedure::text || ' ' || coalesce(p.proacl::text, 'default') FROM pg_proc p WHERE p.pronamespace = 'fieldseal'::regnamespace ORDER BY 1`
		want := rows(t, coord, funcs)
		for i, w := range cc.Workers {
			if got := rows(t, w.URL("fieldseal"), funcs); !slices.Equal(got, want) {
				t.Errorf("%s: worker %d's functions differ from the coordinator's:\n got %q\nwant %q", when, i+1, got, want)
			}
			if got := rows(t, w.URL("fieldseal"), `SELECT parname || ' ' || paracl::text FROM pg_parameter_acl ORDER BY 1`); len(got) < 2 {
				t.Errorf("%s: worker %d lets nobody set the parameter-logging settings: %q", when, i+1, got)
			}
		}
	}
	if err := migrations.Up(ctx, coord); err != nil {
		t.Fatal(err)
	}
	check("after up")
	if err := migrations.Up(ctx, coord); err != nil {
		t.Fatalf("up again (nothing to do): %v", err)
	}
	m, err := migrations.Open(ctx, coord)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The newest migration rolled back and applied again: an upgrade's
	// way back.
	if _, err := m.Down(ctx); err != nil {
		t.Fatalf("down one: %v", err)
	}
	if err := migrations.Up(ctx, coord); err != nil {
		t.Fatalf("up after down one: %v", err)
	}
	check("after down one and up")
	if _, err := m.DownTo(ctx, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	for i, n := range cc.Nodes() {
		if got := rows(t, n.URL("fieldseal"), `SELECT relname::text FROM pg_class WHERE relname LIKE '%' AND relnamespace::regnamespace::text = 'fieldseal'`); len(got) != 0 {
			t.Errorf("after down: node %d still has relations: %q", i, got)
		}
		// The owner could log in for the down migrations, never after.
		if got := rows(t, n.URL("fieldseal"), `SELECT rolname::text FROM pg_authid WHERE rolname LIKE 'fieldseal%' AND (rolcanlogin OR rolpassword IS NOT NULL)
			UNION ALL SELECT rolename::text FROM pg_dist_authinfo WHERE rolename LIKE 'fieldseal%'`); len(got) != 0 {
			t.Errorf("after down: node %d lets %q log in", i, got)
		}
	}
	if err := migrations.Up(ctx, coord); err != nil {
		t.Fatalf("up after down: %v", err)
	}
	check("after down and up")
}

func fmtSscan(s string, v ...*string) (int, error) {
	f := strings.Fields(s)
	for i := range min(len(f), len(v)) {
		*v[i] = f[i]
	}
	return min(len(f), len(v)), nil
}

// The audit chain is extended on the shards, by the trigger, as the app
// appends through the coordinator: one subject's concurrent appends take
// lanes there, and audit verify, run on the coordinator, proves the
// chains and finds an edited entry.
func TestAuditChainOnCitus(t *testing.T) {
	cc := startCitus(t)
	ctx := context.Background()
	coord, app, err := cc.Provision(ctx, "fieldseal", "citus_app", "citus-app-pw")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(app)
	if err != nil {
		t.Fatal(err)
	}
	// SET LOCAL reaches the workers with this; set_config() does not.
	cfg.RuntimeParams["citus.propagate_set_commands"] = "local"
	// appendAs appends n entries as subject in one transaction and calls
	// held, if given, before it commits: the lane stays held until then.
	appendAs := func(subject string, n int, held func() error) error {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SET LOCAL fieldseal.subject = "+pgQuote(subject)); err != nil {
			return err
		}
		for range n {
			if _, err := tx.Exec(ctx, `INSERT INTO fieldseal.audit_events (action, outcome, token_id) VALUES ('record.read', 'ok', 'jti-1')`); err != nil {
				return err
			}
		}
		if held != nil {
			if err := held(); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	}
	for _, s := range []string{"alice", "bob"} {
		if err := appendAs(s, 3, nil); err != nil {
			t.Fatalf("%s appends: %v", s, err)
		}
	}
	// Four appends of alice's, each holding its lane until all four have
	// appended: they can only all get there if each took a lane of its own
	// (an append that waited for another's lane would never arrive).
	var wg, appended sync.WaitGroup
	all := make(chan struct{})
	errs := make([]error, 4)
	appended.Add(len(errs))
	go func() { appended.Wait(); close(all) }()
	holdUntilAll := func() error {
		appended.Done()
		select {
		case <-all:
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("the other appends did not arrive within 30 s: an append waited for another's lane")
		}
	}
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = appendAs("alice", 1, holdUntilAll) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent append: %v", err)
		}
	}
	// The grants report, on the coordinator, finds the policy kept.
	admin := openAdmin(t, coord)
	grants, err := admin.Grants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(grants.Drift) != 0 || len(grants.Workers) != 2 {
		t.Errorf("grants report on Citus: drift %+v, workers compared %q; want none and both", grants.Drift, grants.Workers)
	}
	// A privilege granted on a worker behind the coordinator's back, and
	// one on a shard: the report names both.
	w1 := cc.Workers[0].URL("fieldseal")
	for _, stmt := range []string{
		`GRANT EXECUTE ON FUNCTION fieldseal.pgp_sym_decrypt(bytea, text) TO PUBLIC`,
		`DO $$ BEGIN EXECUTE format('GRANT SELECT ON %s TO PUBLIC', (SELECT s.logicalrelid::regclass::text || '_' || s.shardid
		   FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
		   WHERE s.logicalrelid = 'fieldseal.records'::regclass AND n.nodeport = current_setting('port')::int LIMIT 1)); END $$`,
	} {
		conn, err := pgx.Connect(ctx, w1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, stmt)
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("on worker 1: %s: %v", stmt, err)
		}
	}
	grants, err = admin.Grants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sawFunction, sawShard bool
	for _, d := range grants.Drift {
		sawFunction = sawFunction || (d.ObjectType == "function" && d.Object == "fieldseal.pgp_sym_decrypt(bytea,text)" && strings.Contains(d.Problem, "worker"))
		sawShard = sawShard || (d.ObjectType == "shard" && strings.HasPrefix(d.Object, "fieldseal.records_"))
	}
	if !sawFunction || !sawShard {
		t.Errorf("grants report after privileges granted on worker 1 alone: %+v; want the function and the shard named", grants.Drift)
	}
	// Citus's own logging of what it sends to the shards is a logging risk.
	if err := runAdmin(ctx, coord, `ALTER DATABASE fieldseal SET citus.log_remote_commands = on`); err != nil {
		t.Fatal(err)
	}
	grants, err = admin.Grants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(grants.Drift, func(d fieldseal.Drift) bool { return d.Object == "citus.log_remote_commands = on" }) {
		t.Errorf("grants report with citus.log_remote_commands on for the database: %+v; want it named", grants.Drift)
	}
	rep, err := admin.VerifyAuditTrail(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 0 || rep.Entries != 10 || rep.Subjects != 2 {
		t.Errorf("verify on Citus: %+v; want 10 entries of 2 subjects, intact", rep)
	}
	if lanes := query[int64](t, coord, `SELECT count(DISTINCT lane) FROM fieldseal.audit_events WHERE subject = 'alice'`); lanes < 2 {
		t.Errorf("alice's concurrent appends used %d lane(s); want several", lanes)
	}
	// A checkpoint of every lane's head, read across the shards, holds
	// until a checkpointed entry is taken away.
	cp, err := admin.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if breaks, err := admin.CheckCheckpoint(ctx, cp, nil); err != nil || len(breaks) != 0 || len(cp.Heads) < 3 {
		t.Errorf("checkpoint on Citus: %d heads, breaks %+v, %v; want at least 3 heads, intact", len(cp.Heads), breaks, err)
	}
	if err := runAdmin(ctx, coord, `SET session_replication_role = replica; DELETE FROM fieldseal.audit_events WHERE subject = 'bob' AND seq = 3`); err != nil {
		t.Fatal(err)
	}
	if breaks, err := admin.CheckCheckpoint(ctx, cp, nil); err != nil || len(breaks) == 0 {
		t.Errorf("checkpoint after bob's head entry was deleted: breaks %+v, %v; want one", breaks, err)
	}
	// An entry edited on its shard is found.
	if err := runAdmin(ctx, coord, `UPDATE fieldseal.audit_events SET action = 'record.list' WHERE subject = 'bob' AND seq = 2`); err != nil {
		t.Fatal(err)
	}
	rep, err = admin.VerifyAuditTrail(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) == 0 {
		t.Errorf("verify after an entry was edited: %+v; want a break", rep)
	}
}

func runAdmin(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func pgQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
