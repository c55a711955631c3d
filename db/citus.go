package db

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// On a Citus coordinator (CheckSessionRole finds out), a subject's rows
// live on one shard of each table, all co-located (fieldseal migrate
// distributes them), and the Store runs each request there:
//
//   - The transaction's settings are SET LOCAL statements, which Citus
//     sends on to the workers (citus.propagate_set_commands = 'local');
//     set_config() would stay on the coordinator, and row-level security
//     on the shards would see no subject.
//   - Every statement names its subject as a literal: the queries say
//     "subject = current_setting('fieldseal.subject', true)" and bind
//     writes the subject in its place. Citus routes a statement to one
//     shard only when the subject is a constant in its text; given as a
//     parameter, it would route too, but then Citus writes every
//     parameter, the key among them, into the statement it sends to the
//     worker, whose log_statement would log it. With the subject a
//     literal a SELECT's parameters stay parameters there, and parameter
//     logging is off on every node (the SET LOCALs). An UPDATE's or
//     INSERT's parameters Citus still evaluates on the coordinator and
//     writes in: no write sends a key to a worker (encryption for a write
//     runs on the coordinator; rotation re-encrypts in a SELECT).
//   - Citus evaluates a data-modifying statement's stable functions on
//     the coordinator, and the throttle's answer (set_config of
//     fieldseal.key_use, by AdmitKeyUse) is set on the worker that ran
//     it: so a transaction that uses a key hears that answer first, in a
//     round trip of its own, and then sets fieldseal.key_use on every
//     node with SET LOCAL before any statement tries the key. For the
//     same reason the read's audit entry, appended only if the read
//     decrypted (fieldseal.decrypted, set on the worker), is not sent
//     with the read but after it, once the Store has seen it decrypt.

// Where one PostgreSQL runs a key-using INSERT or UPDATE, the Store on
// Citus splits it: a SELECT does the key's work on the worker and returns
// only what may be logged (ciphertexts, tags), and a write sends that.
// So rotation (reencrypt in keys.go), tagging (tagger in search.go) and
// import (importPage in search.go); a batch create inserts record by
// record (createRecords), each INSERT ... VALUES encrypting on the
// coordinator, as a single create does.

// subjectSetting is the text bind replaces.
const subjectSetting = "current_setting('fieldseal.subject', true)"

// keyUseAdmitted is what AdmitKeyUse sets when it admits, for every node.
const keyUseAdmitted = "SET LOCAL fieldseal.key_use = 'admitted'"

// enableAuditReading is EnableAuditReading, on every node.
func (s *Store) enableAuditReading(ctx context.Context, q *Queries) error {
	if s.citus {
		_, err := q.db.Exec(ctx, "SET LOCAL fieldseal.audit_reader = 'on'")
		return err
	}
	return q.EnableAuditReading(ctx)
}

// setLocal queues the transaction's settings as SET LOCAL statements,
// the Citus form of SetSubject.
func setLocal(b *pgx.Batch, p SetSubjectParams) {
	for _, kv := range [][2]string{
		{"citus.propagate_set_commands", "local"}, // first: the others reach the workers
		{"fieldseal.subject", p.Subject},
		{"statement_timeout", p.StatementTimeout},
		{"lock_timeout", p.LockTimeout},
		{"log_parameter_max_length", "0"},
		{"log_parameter_max_length_on_error", "0"},
		{"plan_cache_mode", p.PlanCacheMode},
		{"enable_seqscan", "off"}, // see SetSubject
	} {
		b.Queue("SET LOCAL " + kv[0] + " = " + quote(kv[1]))
	}
}

// send sends b on conn, its statements bound to subject.
func (s *Store) send(ctx context.Context, conn *pgxpool.Conn, subject string, b *pgx.Batch) error {
	if s.citus {
		for _, q := range b.QueuedQueries {
			q.SQL = bind(q.SQL, subject)
		}
	}
	return conn.SendBatch(ctx, b).Close()
}

// bound is db, its statements bound to subject on Citus.
func (s *Store) bound(db DBTX, subject string) DBTX {
	if !s.citus {
		return db
	}
	return boundDB{db, subject}
}

// bind writes subject, as a literal, where sql reads the transaction's
// subject setting.
func bind(sql, subject string) string {
	return strings.ReplaceAll(sql, subjectSetting, quote(subject))
}

// quote is a SQL string literal of v: an escape string, which reads the
// same whatever standard_conforming_strings says. runTx refuses a
// subject with a NUL byte, which would end the statement's text.
func quote(v string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(v) + "'"
}

type boundDB struct {
	db      DBTX
	subject string
}

func (b boundDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return b.db.Exec(ctx, bind(sql, b.subject), args...)
}

func (b boundDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return b.db.Query(ctx, bind(sql, b.subject), args...)
}

func (b boundDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return b.db.QueryRow(ctx, bind(sql, b.subject), args...)
}
