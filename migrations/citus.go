package migrations

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// On a Citus coordinator (a database with the citus extension):
//
//   - A fresh install runs the migrations on the coordinator alone, with
//     DDL propagation off: Citus would otherwise replay each statement on
//     the workers over a connection of the current role, and the
//     migrations create fieldseal's objects as fieldseal_owner (SET LOCAL
//     ROLE), which cannot log in; a migration that also acts as the
//     superuser would then hold two connections to a worker in one
//     transaction. distribute then makes the workers match, with Citus's
//     own functions: every subject-keyed table distributed by subject,
//     all co-located, so that a subject's rows (records, verifier, audit
//     trail and its heads, ...) share a shard; revocations a reference
//     table (on every node); every fieldseal function, with the
//     privileges it has on the coordinator, on the workers, where the
//     shards' triggers and pushed-down queries call them; pgcrypto and
//     the roles come along as their dependencies.
//   - An upgrade of a distributed schema, and every down migration, run
//     with propagation on, so that what they change reaches the shards,
//     while the owner may log in with a password nobody keeps
//     (ownerLogin). The two first migrations' downs (the schema,
//     pgcrypto and the roles) go on the coordinator alone and then from
//     each worker (dropFromWorkers).

// subjectTables are the tables distributed by subject, the first being
// the one the others are co-located with.
var subjectTables = []string{
	"fieldseal.subjects", "fieldseal.records", "fieldseal.audit_heads", "fieldseal.audit_events",
	"fieldseal.audit_chain_starts", "fieldseal.key_failures", "fieldseal.idempotency_keys",
	"fieldseal.collections", "fieldseal.search_tags",
}

// referenceTables are copied whole to every node.
var referenceTables = []string{"fieldseal.revocations"}

// onCitus reports whether db is a Citus database.
func onCitus(ctx context.Context, db *sql.DB) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')`).Scan(&ok)
	return ok, err
}

// isDistributed reports whether fieldseal's tables are distributed yet.
func isDistributed(ctx context.Context, db *sql.DB) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'fieldseal.%')`).Scan(&ok)
	return ok, err
}

// distribute brings a Citus cluster in line with the coordinator's
// schema. It does only what is not done yet, so it runs after every up.
func distribute(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	// The audit trail and the wrong-key counters have triggers: Citus
	// creates them on each shard, where they run. A trigger that reads
	// another table (the audit chain reads its head) reads the co-located
	// shard of the same subject, on the same node.
	stmts := []string{`SET citus.enable_unsafe_triggers = on`}
	for i, t := range subjectTables {
		colocate := "default"
		if i > 0 {
			colocate = subjectTables[0]
		}
		stmts = append(stmts, fmt.Sprintf(`SELECT create_distributed_table(to_regclass(%s), 'subject', colocate_with => %s)
			WHERE to_regclass(%[1]s) IS NOT NULL -- not yet made, or rolled back
			  AND NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = to_regclass(%[1]s))`, quote(t), quote(colocate)))
	}
	for _, t := range referenceTables {
		stmts = append(stmts, fmt.Sprintf(`SELECT create_reference_table(to_regclass(%s))
			WHERE to_regclass(%[1]s) IS NOT NULL
			  AND NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = to_regclass(%[1]s))`, quote(t)))
	}
	stmts = append(stmts,
		// fieldseal's own functions (pgcrypto's come with the extension).
		`SELECT create_distributed_function(p.oid::regprocedure)
		 FROM pg_proc p
		 WHERE p.pronamespace = 'fieldseal'::regnamespace
		   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
		   AND NOT EXISTS (SELECT FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid)`,
		// A function reaches the workers executable by PUBLIC, and
		// pgcrypto's with their default privileges: revoking PUBLIC's on
		// the coordinator, with propagation on, sends each function's
		// privileges to the workers.
		`DO $$
		DECLARE f regprocedure;
		BEGIN
		    FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'fieldseal'::regnamespace LOOP
		        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		    END LOOP;
		END $$`,
		// pgcrypto's functions are not distributed objects: the workers
		// have them with their default privileges (PUBLIC may execute),
		// and a GRANT or REVOKE on the coordinator does not reach them.
		// Theirs are set on each worker as they are on the coordinator,
		// what fieldseal's roles held before taken back first.
		`DO $$
		DECLARE r record;
		BEGIN
		    FOR r IN SELECT (run_command_on_workers(c.cmd)).*
		             FROM pg_proc p
		             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
		             CROSS JOIN LATERAL (
		                 SELECT format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, fieldseal_owner, fieldseal_app, fieldseal_auditor', p.oid::regprocedure)
		                 UNION ALL
		                 SELECT format('GRANT %s ON FUNCTION %s TO %I', a.privilege_type, p.oid::regprocedure, a.grantee::regrole)
		                 FROM aclexplode(p.proacl) a WHERE a.grantee <> 0 AND a.grantee <> p.proowner
		             ) c(cmd)
		             WHERE p.pronamespace = 'fieldseal'::regnamespace LOOP
		        IF NOT r.success THEN
		            RAISE EXCEPTION 'on worker %:%: %', r.nodename, r.nodeport, r.result;
		        END IF;
		    END LOOP;
		END $$`,
		// Who may set the parameter-logging settings is per cluster, not
		// per database: Citus does not send it; the workers need it, for
		// the app's settings reach them (SET LOCAL, propagated).
		`DO $$
		DECLARE r record;
		BEGIN
		    FOR r IN SELECT (run_command_on_workers(format('GRANT SET ON PARAMETER %s TO %I', p.parname, a.grantee::regrole))).*
		             FROM pg_parameter_acl p, aclexplode(p.paracl) a
		             WHERE a.grantee::regrole::text LIKE 'fieldseal%' LOOP
		        IF NOT r.success THEN
		            RAISE EXCEPTION 'on worker %:%: %', r.nodename, r.nodeport, r.result;
		        END IF;
		    END LOOP;
		END $$`,
	)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("distribute the schema on Citus: %w", err)
		}
	}
	return nil
}

// quote is a SQL string literal of s.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ownerLogin runs fn with fieldseal_owner able to log in to every node
// with a random password, which the nodes use between them
// (pg_dist_authinfo); after it, the owner cannot log in again and the
// password is forgotten, whatever fn returned. The password is in the
// statements that set it (a node logging every statement logs it): it
// is worth nothing once the run is over.
func ownerLogin(ctx context.Context, adminURL string, fn func() error) (err error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	authinfo := "password=" + hex.EncodeToString(buf)
	// Statements run here and on every worker, or on every worker; a
	// worker's failure fails them.
	const onWorkers = `DO $$
		DECLARE r record;
		BEGIN
		    FOR r IN SELECT (run_command_on_workers(%[1]s)).* LOOP
		        IF NOT r.success THEN
		            RAISE EXCEPTION 'on worker %%:%%: %%', r.nodename, r.nodeport, r.result;
		        END IF;
		    END LOOP;
		END $$`
	const everywhere = `DO $$
		BEGIN
		    EXECUTE %[1]s;
		END $$; ` + onWorkers
	forget := func() error {
		var exists bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldseal_owner')`).Scan(&exists)
		if err == nil && exists {
			_, err = conn.Exec(ctx, `ALTER ROLE fieldseal_owner NOLOGIN PASSWORD NULL`) // Citus sends it to the workers
		} else if err == nil {
			// A down to 0 dropped the role here only (DDL propagation
			// off): the workers' copy must not keep the login either.
			_, err = conn.Exec(ctx, fmt.Sprintf(onWorkers, quote(`DO $d$ BEGIN
				IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldseal_owner') THEN
				    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
				    ALTER ROLE fieldseal_owner NOLOGIN PASSWORD NULL;
				END IF;
			END $d$`)))
		}
		_, err2 := conn.Exec(ctx, fmt.Sprintf(everywhere, quote(`DELETE FROM pg_dist_authinfo WHERE rolename = 'fieldseal_owner'`)))
		return errors.Join(err, err2)
	}
	defer func() {
		if ferr := forget(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("fieldseal_owner may still log in: %w", ferr))
		}
	}()
	var set string
	if err := conn.QueryRow(ctx, `SELECT format('ALTER ROLE fieldseal_owner LOGIN PASSWORD %L', $1::text)`, authinfo[len("password="):]).Scan(&set); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, set); err != nil {
		return fmt.Errorf("let fieldseal_owner log in for the migration: %w", pgErrorOnly(err))
	}
	var add string
	if err := conn.QueryRow(ctx, `SELECT format('INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %L, %L)', 'fieldseal_owner', $1::text)`, authinfo).Scan(&add); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(everywhere, quote(add))); err != nil {
		return fmt.Errorf("tell the nodes fieldseal_owner's password: %w", pgErrorOnly(err))
	}
	return fn()
}

// pgErrorOnly keeps a PostgreSQL error's message and drops what could
// quote the statement (its password).
func pgErrorOnly(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return errors.New("the statement failed")
}

// dropFromWorkers drops fieldseal's schema from every worker, and the
// roles the coordinator no longer has: after the first two migrations
// were rolled back on the coordinator alone.
func dropFromWorkers(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	var roles []string
	rows, err := conn.Query(ctx, `SELECT r FROM unnest(ARRAY['fieldseal_auditor', 'fieldseal_app', 'fieldseal_owner']) r
		WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)`)
	if err == nil {
		roles, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return err
	}
	rows, err = conn.Query(ctx, `SELECT nodename || ':' || nodeport, success, result FROM run_command_on_workers(format($c$DO $d$
		DECLARE r text;
		BEGIN
		    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
		    DROP SCHEMA IF EXISTS fieldseal CASCADE;
		    FOREACH r IN ARRAY %L::text[] LOOP
		        IF EXISTS (SELECT 1 FROM pg_parameter_acl p, aclexplode(p.paracl) a WHERE a.grantee::regrole::text = r) THEN
		            EXECUTE format('REVOKE SET ON PARAMETER log_parameter_max_length, log_parameter_max_length_on_error FROM %%I', r);
		        END IF;
		        EXECUTE format('DROP ROLE IF EXISTS %%I', r);
		    END LOOP;
		END $d$$c$, $1::text[]))`, roles)
	if err != nil {
		return fmt.Errorf("drop fieldseal from the Citus workers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var node, result string
		var ok bool
		if err := rows.Scan(&node, &ok, &result); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("drop fieldseal from the Citus worker %s: %s", node, result)
		}
	}
	return rows.Err()
}
