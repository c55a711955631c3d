package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// A dialect is the form of everything the Store writes differently on
// one PostgreSQL and on a Citus coordinator (citus.go says why each
// differs). Open finds it once, from the database it connects to, and the
// Store keeps it: nothing else asks which database this is. Each path's
// two forms stand side by side below, one PostgreSQL's first.
//
// Citus's forms run on one PostgreSQL too (Config.CitusForms), so the
// tests of make test exercise them without a cluster.
type dialect interface {
	String() string
	// settings queues the transaction's settings into b.
	settings(ctx context.Context, b *pgx.Batch, p sqlc.SetSubjectParams)
	// bind is sql with the transaction's subject written in as a literal
	// where the dialect routes by it; else sql.
	bind(sql, subject string) string
	// apart: a transaction commits in a round trip of its own (its audit
	// entry after its work is judged), and one that uses a key hears the
	// throttle's answer in one of its own before its statements are sent.
	apart() bool
	// planCacheMode is the plan_cache_mode of a transaction that does or
	// does not carry a key.
	planCacheMode(usesKey bool) string
	// enableAuditReading lets the transaction read audit entries.
	enableAuditReading(ctx context.Context, q *Queries) error
	// createRecords queues into b the inserts of records (one or a
	// batch); the inserted rows are known once inserter.write has run.
	createRecords(ctx context.Context, b *pgx.Batch, key fieldseal.Key, batch recordBatch) *inserter
	// replaceRecord replaces a record's content, its key checked.
	replaceRecord(ctx context.Context, q *Queries, key fieldseal.Key, p sqlc.ReplaceRecordEncryptedParams, secret string) (sqlc.ReplaceRecordEncryptedRow, error)
	// index queues into b the tagging of records just written.
	index(ctx context.Context, b *pgx.Batch, p sqlc.IndexRecordsParams) *tagger
	// reindexRecords tags records just replaced, in a then step.
	reindexRecords(ctx context.Context, q *Queries, p sqlc.IndexRecordsParams) error
	// reindexAll tags every record again under key, after a rotation's
	// DeleteAllTags.
	reindexAll(ctx context.Context, q *Queries, key fieldseal.Key) error
	// reencrypt puts every record of the subject under the data keys of
	// the subject key newWrapped wraps under next (see RotateKey) and
	// returns how many.
	reencrypt(ctx context.Context, q *Queries, current, next fieldseal.Key, newWrapped []byte) (int64, error)
	// workerDrift adds to a grants report what the cluster's other nodes
	// hold otherwise (grants.go).
	workerDrift(ctx context.Context, db sqlc.DBTX, rep *fieldseal.GrantsReport) error
}

// dialectOf asks the database whether it is a Citus coordinator: the one
// place fieldseal's db package asks (the migrations ask for themselves).
// citusForms asks for Citus's forms on one PostgreSQL.
func dialectOf(ctx context.Context, db sqlc.DBTX, citusForms bool) (dialect, error) {
	var onCitus bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus')`).Scan(&onCitus); err != nil {
		return nil, fmt.Errorf("ask the database whether it is a Citus coordinator: %w", err)
	}
	switch {
	case onCitus:
		return citusCoordinator{}, nil
	case citusForms:
		return citusCoordinator{formsOnly: true}, nil
	}
	return onePostgres{}, nil
}

// onePostgres is one PostgreSQL server (or a pooler in front of one).
type onePostgres struct{}

// citusCoordinator is a Citus coordinator: a subject's rows on one shard
// of each table, each statement routed there by its subject. formsOnly:
// its forms on one PostgreSQL (Config.CitusForms), which has no workers.
type citusCoordinator struct{ formsOnly bool }

func (onePostgres) String() string      { return "PostgreSQL" }
func (citusCoordinator) String() string { return "Citus" }

// Settings: one statement setting them with set_config(); on Citus SET
// LOCAL statements, which reach the workers.

func (onePostgres) settings(ctx context.Context, b *pgx.Batch, p sqlc.SetSubjectParams) {
	exec(b, func(q *Queries) error { return q.SetSubject(ctx, p) })
}

func (citusCoordinator) settings(_ context.Context, b *pgx.Batch, p sqlc.SetSubjectParams) {
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

// The subject: a setting the statements read; on Citus a literal in each
// statement's text, which is what routes it to one shard.

func (onePostgres) bind(sql, _ string) string { return sql }

func (citusCoordinator) bind(sql, subject string) string {
	return strings.ReplaceAll(sql, subjectSetting, quote(subject))
}

func (onePostgres) apart() bool      { return false }
func (citusCoordinator) apart() bool { return true }

// A custom plan folds bind values into constants, which a verbose
// auto_explain would log: on one PostgreSQL a transaction that carries a
// key plans generically. Not on Citus, which cannot distribute a generic
// plan of most statements (docs/scale.md says what to leave off there).

func (onePostgres) planCacheMode(usesKey bool) string {
	if usesKey {
		return "force_generic_plan"
	}
	return "auto"
}

func (citusCoordinator) planCacheMode(bool) string { return "auto" }

// Audit reading: EnableAuditReading; on Citus SET LOCAL, for every node.

func (onePostgres) enableAuditReading(ctx context.Context, q *Queries) error {
	return q.EnableAuditReading(ctx)
}

func (citusCoordinator) enableAuditReading(ctx context.Context, q *Queries) error {
	_, err := q.db.Exec(ctx, "SET LOCAL fieldseal.audit_reader = 'on'")
	return err
}

// Creates and replaces: one statement that encrypts under the
// collection's data key (which it derives from the subject's row) and
// writes; on Citus, whose write would carry the key and the plaintext
// into the worker's statement, a SELECT encrypts (EncryptSecrets: its
// parameters stay parameters on the worker) and the write sends the
// ciphertexts (InsertRecords, ReplaceRecordEncrypted), after the first
// round trip.

// inserter is the insert of records queued by createRecords.
type inserter struct {
	inserted  func() ([]sqlc.CreateRecordsRow, error) // one PostgreSQL: the first round trip's
	encrypted *pending[[]sqlc.EncryptSecretsRow]      // Citus: the ciphertexts, which write inserts
	batch     recordBatch
}

// write inserts what the first round trip encrypted (on Citus) and
// returns the rows inserted.
func (i *inserter) write(ctx context.Context, q *Queries) ([]sqlc.CreateRecordsRow, error) {
	if i.encrypted == nil {
		return i.inserted()
	}
	rows, err := i.encrypted.get()
	if err != nil {
		return nil, err
	}
	if len(rows) != len(i.batch.ids) {
		return nil, fmt.Errorf("db: %d secrets encrypted for %d records", len(rows), len(i.batch.ids))
	}
	if len(rows) == 1 { // a create
		r, err := q.InsertRecord(ctx, sqlc.InsertRecordParams{ID: i.batch.ids[0], Collection: i.batch.collections[0], Public: i.batch.publics[0],
			Secret: rows[0].Secret, KeyVersion: rows[0].KeyVersion})
		return []sqlc.CreateRecordsRow{sqlc.CreateRecordsRow(r)}, err
	}
	p := sqlc.InsertRecordsParams{Ids: i.batch.ids, Collections: i.batch.collections, Publics: i.batch.publics,
		Secrets: make([][]byte, len(rows)), KeyVersions: make([]int32, len(rows))}
	for j, r := range rows {
		p.Secrets[j], p.KeyVersions[j] = r.Secret, r.KeyVersion
	}
	inserted, err := q.InsertRecords(ctx, p)
	out := make([]sqlc.CreateRecordsRow, len(inserted))
	for j, r := range inserted {
		out[j] = sqlc.CreateRecordsRow(r)
	}
	return out, err
}

func (onePostgres) createRecords(ctx context.Context, b *pgx.Batch, key fieldseal.Key, batch recordBatch) *inserter {
	if len(batch.ids) == 1 { // a create: a statement (and a plan) of its own
		created := query(b, func(q *Queries) (sqlc.CreateRecordRow, error) {
			return q.CreateRecord(ctx, sqlc.CreateRecordParams{
				ID: batch.ids[0], Collection: batch.collections[0], Public: batch.publics[0], Secret: batch.secrets[0], Key: key.Passphrase(),
			})
		})
		return &inserter{batch: batch, inserted: func() ([]sqlc.CreateRecordsRow, error) {
			r, err := created.get()
			return []sqlc.CreateRecordsRow{sqlc.CreateRecordsRow(r)}, err
		}}
	}
	created := query(b, func(q *Queries) ([]sqlc.CreateRecordsRow, error) {
		return q.CreateRecords(ctx, sqlc.CreateRecordsParams{Ids: batch.ids, Collections: batch.collections, Publics: batch.publics, Secrets: batch.secrets, Key: key.Passphrase()})
	})
	return &inserter{batch: batch, inserted: created.get}
}

func (citusCoordinator) createRecords(ctx context.Context, b *pgx.Batch, key fieldseal.Key, batch recordBatch) *inserter {
	return &inserter{batch: batch, encrypted: query(b, func(q *Queries) ([]sqlc.EncryptSecretsRow, error) {
		return q.EncryptSecrets(ctx, sqlc.EncryptSecretsParams{Secrets: batch.secrets, Key: key.Passphrase(), Collections: batch.collections})
	})}
}

func (onePostgres) replaceRecord(ctx context.Context, q *Queries, key fieldseal.Key, p sqlc.ReplaceRecordEncryptedParams, secret string) (sqlc.ReplaceRecordEncryptedRow, error) {
	row, err := q.ReplaceRecord(ctx, sqlc.ReplaceRecordParams{
		Collection: p.Collection, Public: p.Public, Secret: secret, Key: key.Passphrase(), ID: p.ID, CheckVersion: p.CheckVersion, Versions: p.Versions,
	})
	return sqlc.ReplaceRecordEncryptedRow(row), err
}

func (citusCoordinator) replaceRecord(ctx context.Context, q *Queries, key fieldseal.Key, p sqlc.ReplaceRecordEncryptedParams, secret string) (sqlc.ReplaceRecordEncryptedRow, error) {
	enc, err := q.EncryptSecrets(ctx, sqlc.EncryptSecretsParams{Secrets: []string{secret}, Key: key.Passphrase(), Collections: []string{p.Collection}})
	if err != nil {
		return sqlc.ReplaceRecordEncryptedRow{}, err
	}
	if len(enc) != 1 {
		return sqlc.ReplaceRecordEncryptedRow{}, fmt.Errorf("db: a replace's secret was not encrypted although its key was checked")
	}
	p.Secret, p.KeyVersion = enc[0].Secret, enc[0].KeyVersion
	return q.ReplaceRecordEncrypted(ctx, p)
}

// Tagging: INSERT ... SELECTs that compute and write the tags in one
// statement (IndexRecords, ReindexAllTags); on Citus, whose INSERT would
// carry the key and plaintext into the worker's log, SELECTs compute the
// tags (their parameters stay parameters) and InsertTags writes them:
// ids, fields and tags, which the worker's log may then hold, as its
// table does (docs/scale.md).

func (onePostgres) index(ctx context.Context, b *pgx.Batch, p sqlc.IndexRecordsParams) *tagger {
	return &tagger{indexed: exec(b, func(q *Queries) error { return q.IndexRecords(ctx, p) })}
}

func (citusCoordinator) index(ctx context.Context, b *pgx.Batch, p sqlc.IndexRecordsParams) *tagger {
	return &tagger{tags: query(b, func(q *Queries) ([]sqlc.RecordTagsRow, error) {
		return q.RecordTags(ctx, sqlc.RecordTagsParams{Ids: p.Ids, Collections: p.Collections, Key: p.Key, Secrets: p.Secrets})
	})}
}

func (onePostgres) reindexRecords(ctx context.Context, q *Queries, p sqlc.IndexRecordsParams) error {
	return q.IndexRecords(ctx, p)
}

func (citusCoordinator) reindexRecords(ctx context.Context, q *Queries, p sqlc.IndexRecordsParams) error {
	rows, err := q.RecordTags(ctx, sqlc.RecordTagsParams{Ids: p.Ids, Collections: p.Collections, Key: p.Key, Secrets: p.Secrets})
	if err != nil {
		return err
	}
	return writeTags(ctx, q, rows)
}

func (onePostgres) reindexAll(ctx context.Context, q *Queries, key fieldseal.Key) error {
	return q.ReindexAllTags(ctx, key.Passphrase())
}

func (citusCoordinator) reindexAll(ctx context.Context, q *Queries, key fieldseal.Key) error {
	rows, err := q.AllTags(ctx, key.Passphrase())
	if err != nil {
		return err
	}
	tags := make([]sqlc.RecordTagsRow, len(rows))
	for i, r := range rows {
		tags[i] = sqlc.RecordTagsRow(r)
	}
	return writeTags(ctx, q, tags)
}

// Re-encryption: one UPDATE; on Citus, whose UPDATE would carry both keys
// written into the worker's statement, a page of records at a time is
// re-encrypted by a SELECT (keys stay parameters) and its new ciphertexts
// written back by an UPDATE (ciphertexts may be logged). A record that
// does not open under current (the verified key) is damaged: the rotation
// is refused (and rolls back), naming the damaged records, rather than
// leave them under a key the subject no longer has.

func (onePostgres) reencrypt(ctx context.Context, q *Queries, current, next fieldseal.Key, newWrapped []byte) (int64, error) {
	n, err := q.ReencryptRecords(ctx, sqlc.ReencryptRecordsParams{OldKey: current.Passphrase(), NewWrapped: newWrapped, NewKey: next.Passphrase()})
	if err != nil {
		return 0, err
	}
	total, err := q.CountRecords(ctx)
	if err != nil || n == total {
		return n, err
	}
	rows, err := q.ListDamagedRecords(ctx, current.Passphrase())
	if err != nil {
		return 0, err
	}
	return 0, damaged(ids(rows)...)
}

func (citusCoordinator) reencrypt(ctx context.Context, q *Queries, current, next fieldseal.Key, newWrapped []byte) (int64, error) {
	var n int64
	var bad []fieldseal.ID
	after := pgtype.UUID{Valid: true}
	for {
		page, err := q.ReencryptPage(ctx, sqlc.ReencryptPageParams{OldKey: current.Passphrase(), NewWrapped: newWrapped, NewKey: next.Passphrase(), After: after, MaxRows: reencryptPageRows})
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			break
		}
		written := make([]pgtype.UUID, 0, len(page))
		secrets := make([][]byte, 0, len(page))
		versions := make([]int32, 0, len(page))
		for _, r := range page {
			if r.Secret == nil {
				bad = appendNamed(bad, fieldseal.ID(r.ID.Bytes))
				continue
			}
			written, secrets, versions = append(written, r.ID), append(secrets, r.Secret), append(versions, r.KeyVersion)
		}
		after = page[len(page)-1].ID
		if len(bad) > 0 {
			continue // refused below: only the damaged ones are still wanted
		}
		m, err := q.ReplaceSecrets(ctx, sqlc.ReplaceSecretsParams{Ids: written, Secrets: secrets, KeyVersions: versions})
		if err != nil {
			return 0, err
		}
		n += m
	}
	if len(bad) > 0 {
		return 0, damaged(bad...)
	}
	return n, nil
}

// reencryptPageRows is how many records Citus's rotation re-encrypts per
// round trip; their ciphertexts are held in memory meanwhile.
const reencryptPageRows = 1000

// bound is db, its statements bound to subject by d.
func bound(d dialect, db sqlc.DBTX, subject string) sqlc.DBTX {
	return boundDB{d, db, subject}
}

type boundDB struct {
	d       dialect
	db      sqlc.DBTX
	subject string
}

func (b boundDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return b.db.Exec(ctx, b.d.bind(sql, b.subject), args...)
}

func (b boundDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return b.db.Query(ctx, b.d.bind(sql, b.subject), args...)
}

func (b boundDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return b.db.QueryRow(ctx, b.d.bind(sql, b.subject), args...)
}
