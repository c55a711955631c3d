package db

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// Grants implements fieldseal.GrantsService over the app's pool (waiting
// for a connection no longer than any request). The report names no
// subject, so it runs outside run (tx.go), in a snapshot of its own.
func (s *Store) Grants(ctx context.Context) (fieldseal.GrantsReport, error) {
	var rep fieldseal.GrantsReport
	conn, err := s.acquire(ctx)
	if err != nil {
		return rep, mapError(err)
	}
	defer conn.Release()
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		rep, err = grantsReport(ctx, newQueries(tx), s.dialect)
		return err
	})
	return rep, mapError(err)
}

// Grants reads the report over an admin (or auditor) connection:
// `fieldseal audit grants`.
func (a *Admin) Grants(ctx context.Context) (fieldseal.GrantsReport, error) {
	d, err := dialectOf(ctx, a.db, false)
	if err != nil {
		return fieldseal.GrantsReport{}, err
	}
	return grantsReport(ctx, newQueries(a.db), d)
}

func grantsReport(ctx context.Context, q *Queries, d dialect) (fieldseal.GrantsReport, error) {
	rep := fieldseal.GrantsReport{Drift: []fieldseal.Drift{}}
	drift, err := q.ListGrantsDrift(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range drift {
		rep.Drift = append(rep.Drift, fieldseal.Drift{Problem: d.Problem, Role: d.Role, ObjectType: d.ObjectType,
			Object: d.ObjectName, Column: d.ColumnName, Privilege: d.Privilege})
	}
	risks, err := q.ListLoggingRisks(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range risks {
		d := fieldseal.Drift{Problem: "setting puts values into the log", Role: r.Role, ObjectType: "setting", Object: r.Name + " = " + r.Value}
		switch {
		case r.Role == "" && r.Database == "":
			d.Role, d.Column = "(every role)", "server"
		case r.Role == "":
			d.Role, d.Column = "(every role)", "database "+r.Database
		case r.Database != "":
			d.Column = "database " + r.Database
		}
		rep.Drift = append(rep.Drift, d)
	}
	privs, err := q.ListPrivileges(ctx)
	if err != nil {
		return rep, err
	}
	for _, p := range privs {
		rep.Privileges = append(rep.Privileges, fieldseal.Privilege{Grantee: p.Grantee, ObjectType: p.ObjectType,
			Object: p.ObjectName, Column: p.ColumnName, Privilege: p.Privilege})
	}
	members, err := q.ListRoleMembers(ctx)
	if err != nil {
		return rep, err
	}
	for _, m := range members {
		rep.Members = append(rep.Members, fieldseal.Member{Group: m.GroupName, Member: m.Member, Via: m.Via,
			CanLogin: m.CanLogin, Superuser: m.Superuser, BypassRLS: m.Bypassrls})
	}
	byp, err := q.ListBypassers(ctx)
	if err != nil {
		return rep, err
	}
	for _, b := range byp {
		rep.Bypassers = append(rep.Bypassers, fieldseal.Bypasser{Role: b.Role, How: b.How, CanLogin: b.CanLogin})
	}
	tables, err := q.ListTableSecurity(ctx)
	if err != nil {
		return rep, err
	}
	for _, t := range tables {
		rep.Tables = append(rep.Tables, fieldseal.TableStatus{Table: t.TableName, Owner: t.Owner, RLSEnabled: t.RlsEnabled, RLSForced: t.RlsForced})
	}
	return rep, d.workerDrift(ctx, q.db, &rep)
}

// nodePrivileges lists, one line each (kind, name, ACL, tab-separated),
// the privileges a node of a Citus cluster holds on fieldseal's
// functions (pgcrypto's included), distributed and reference tables and
// their columns, and the parameter-logging settings; and, for each shard
// on the node, whether its privileges are its table's.
const nodePrivileges = `
SELECT coalesce(string_agg(kind || E'\t' || name || E'\t' || acl, E'\n' ORDER BY kind, name), '') FROM (
    SELECT 'function' AS kind, p.oid::regprocedure::text AS name, coalesce(p.proacl::text, 'default') AS acl
    FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'fieldseal'::regnamespace
    UNION ALL
    SELECT 'table', c.oid::regclass::text, coalesce(c.relacl::text, 'default')
    FROM pg_catalog.pg_class c JOIN pg_dist_partition d ON d.logicalrelid = c.oid
    UNION ALL
    SELECT 'column', c.oid::regclass::text || '.' || a.attname, a.attacl::text
    FROM pg_catalog.pg_class c JOIN pg_dist_partition d ON d.logicalrelid = c.oid
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attacl IS NOT NULL AND NOT a.attisdropped
    UNION ALL
    SELECT 'parameter', parname::text, paracl::text FROM pg_catalog.pg_parameter_acl
    UNION ALL
    SELECT 'shard', sc.oid::regclass::text,
           CASE WHEN sc.relacl IS NOT DISTINCT FROM c.relacl THEN 'as its table' ELSE coalesce(sc.relacl::text, 'default') END
    FROM pg_dist_shard s JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
    JOIN pg_catalog.pg_class sc ON sc.relnamespace = c.relnamespace AND sc.relname = c.relname || '_' || s.shardid
) l`

// workerDrift adds to rep, on a Citus coordinator, every privilege a
// worker holds otherwise than the coordinator (run_command_on_workers:
// the statement carries nothing secret), and every shard whose
// privileges are not its table's, on any node. One PostgreSQL has none.
func (onePostgres) workerDrift(context.Context, sqlc.DBTX, *fieldseal.GrantsReport) error { return nil }

func (c citusCoordinator) workerDrift(ctx context.Context, db sqlc.DBTX, rep *fieldseal.GrantsReport) error {
	if c.formsOnly {
		return nil // one PostgreSQL: no workers, no shards
	}
	var may bool
	if err := db.QueryRow(ctx, `SELECT has_function_privilege('run_command_on_workers(text, boolean)', 'EXECUTE')`).Scan(&may); err != nil {
		return err
	}
	if !may {
		rep.WorkersUnchecked = "this role may not run run_command_on_workers: run fieldseal audit grants as an admin to compare the workers' privileges"
		return nil
	}
	var mine string
	if err := db.QueryRow(ctx, nodePrivileges).Scan(&mine); err != nil {
		return err
	}
	coordinator := privilegeLines(mine)
	shardDrift(rep, "the coordinator", coordinator)
	rows, err := db.Query(ctx, `SELECT nodename || ':' || nodeport, success, result FROM run_command_on_workers($1)`, nodePrivileges)
	if err != nil {
		return err
	}
	type worker struct {
		node    string
		success bool
		result  string
	}
	workers, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (worker, error) {
		var w worker
		return w, r.Scan(&w.node, &w.success, &w.result)
	})
	if err != nil {
		return err
	}
	for _, w := range workers {
		rep.Workers = append(rep.Workers, w.node)
		if !w.success {
			return fmt.Errorf("read the privileges on worker %s: %s", w.node, w.result)
		}
		theirs := privilegeLines(w.result)
		shardDrift(rep, "worker "+w.node, theirs)
		all := maps.Clone(coordinator)
		maps.Copy(all, theirs)
		for _, key := range sortedKeys(all) {
			mine, onCoordinator := coordinator[key]
			got, onWorker := theirs[key]
			if key.kind != "shard" && (!onCoordinator || !onWorker || got != mine) {
				rep.Drift = append(rep.Drift, fieldseal.Drift{Problem: "worker " + w.node + " differs from the coordinator", ObjectType: key.kind, Object: key.name,
					Privilege: fmt.Sprintf("worker: %s; coordinator: %s", orMissing(got, onWorker), orMissing(mine, onCoordinator))})
			}
		}
	}
	return nil
}

type privilegeKey struct{ kind, name string }

func privilegeLines(text string) map[privilegeKey]string {
	m := map[privilegeKey]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.SplitN(line, "\t", 3); len(f) == 3 {
			m[privilegeKey{f[0], f[1]}] = f[2]
		}
	}
	return m
}

func shardDrift(rep *fieldseal.GrantsReport, node string, lines map[privilegeKey]string) {
	for _, key := range sortedKeys(lines) {
		if acl := lines[key]; key.kind == "shard" && acl != "as its table" {
			rep.Drift = append(rep.Drift, fieldseal.Drift{Problem: "a shard's privileges are not its table's, on " + node, ObjectType: "shard", Object: key.name, Privilege: acl})
		}
	}
}

func sortedKeys(m map[privilegeKey]string) []privilegeKey {
	keys := make([]privilegeKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b privilegeKey) int { return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name)) })
	return keys
}

func orMissing(v string, ok bool) string {
	if !ok {
		return "missing"
	}
	return v
}

var _ fieldseal.GrantsService = (*Store)(nil)
