package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldseal/fieldseal"
)

// work is what one request does inside workTx.
type work struct {
	// first, if set, queues the request's statements into the first round
	// trip, behind BEGIN, the subject and the throttle check (AdmitKeyUse).
	// They are sent before the throttle's answer is known, so a statement
	// that tries a key must require it (queries/records.sql says how); a
	// row they do not return because of it is not an error (see queue).
	first func(b *pgx.Batch)
	// then, if set, runs after the first round trip, unless the caller was
	// throttled.
	then func(q *Queries) error
	// commitFirst puts the audit entry and COMMIT in the first round trip
	// too, before the work's outcome is known: for read-only work only,
	// whose entry (unless the note is quiet) is due exactly when its
	// statements set fieldseal.decrypted, as GetRecordDecrypted does. A
	// refused request's transaction then commits nothing; its refusal is
	// recorded as ever, by do. then only judges what first read: it gets
	// no Queries.
	commitFirst bool
	// long raises the transaction's statement_timeout to Timeouts.Long:
	// for work over all of a subject's records (rotation, export).
	long bool
	// idem, if set, makes the work idempotent (see idempotency.go).
	idem *idempotency
}

// workTx runs one request's work in a transaction with as few round trips
// as pgx pipelining allows: BEGIN, the subject, (when a key is used) the
// throttle check and w.first's statements go in one batch; w.then's
// queries follow; the audit entry and COMMIT go in one last batch, or in
// the first (w.commitFirst). A read is one round trip; a list with the
// key, or a create, two.
// Any failure rolls back; a connection left inside a transaction is
// destroyed by the pool on release, never reused.
func (s *Store) workTx(ctx context.Context, caller fieldseal.Caller, note *auditNote, usesKey bool, opts pgx.TxOptions, w work) (err error) {
	if caller.Subject == "" {
		return fmt.Errorf("db: empty subject")
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return mapError(err)
	}
	defer conn.Release()
	committed := false
	defer func() {
		closed := conn.Conn().IsClosed()
		if !committed && !closed {
			// Bounded: a server that does not answer must not hold the
			// request; the pool destroys a connection left in a transaction.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		err = mapError(err)
		if closed {
			err = lostConnection(err)
		}
	}()

	statementTimeout := s.timeouts.Statement
	if w.long {
		statementTimeout = s.timeouts.Long
	}
	begin := &pgx.Batch{}
	begin.Queue(beginStatement(opts))
	queue(begin, func(q *Queries) error {
		return q.SetSubject(ctx, SetSubjectParams{
			Subject: caller.Subject, StatementTimeout: milliseconds(statementTimeout), LockTimeout: milliseconds(s.timeouts.Lock),
		})
	})
	var admission AdmitKeyUseRow
	if usesKey {
		queue(begin, func(q *Queries) (err error) {
			admission, err = q.AdmitKeyUse(ctx, AdmitKeyUseParams{
				TokenID: caller.TokenID, WindowSeconds: s.throttle.windowSeconds(),
				TokenLimit: int32(s.throttle.TokenLimit), SubjectLimit: int32(s.throttle.SubjectLimit),
			})
			return err
		})
	}
	var claimed bool
	if w.idem != nil {
		w.idem.claim(ctx, begin, &claimed)
	}
	if w.first != nil {
		w.first(begin)
	}
	var appended int64
	appendAudit := func(b *pgx.Batch, ifDecrypted bool) {
		p := auditParams(caller, note, "ok")
		p.IfDecrypted = ifDecrypted
		queue(b, func(q *Queries) (err error) {
			appended, err = q.AppendAuditEvent(ctx, p)
			return err
		})
	}
	if w.commitFirst {
		if !note.quiet {
			appendAudit(begin, true)
		}
		begin.Queue("COMMIT")
	}
	if err := conn.SendBatch(ctx, begin).Close(); err != nil {
		return err
	}
	committed = w.commitFirst
	if usesKey && !admission.Admitted {
		return s.throttled(admission)
	}
	if w.idem != nil && !claimed {
		return w.idem.answered(ctx, New(conn)) // the work just done rolls back
	}
	if w.then != nil {
		q := New(conn)
		if w.commitFirst {
			q = nil // the transaction has ended: nothing more may run in it
		}
		if err := w.then(q); err != nil {
			return err
		}
	}
	if w.commitFirst {
		if !note.quiet && appended != 1 {
			// Never serve what the trail does not record.
			return fmt.Errorf("db: %s succeeded but its audit entry was not appended", note.action)
		}
		return nil
	}
	end := &pgx.Batch{}
	if !note.quiet {
		appendAudit(end, false)
	}
	if w.idem != nil {
		if err := w.idem.save(ctx, end); err != nil {
			return err
		}
	}
	end.Queue("COMMIT")
	if err := conn.SendBatch(ctx, end).Close(); err != nil {
		return err
	}
	committed = true
	return nil
}

func beginStatement(opts pgx.TxOptions) string {
	stmt := "BEGIN"
	if opts.IsoLevel != "" {
		stmt += " ISOLATION LEVEL " + string(opts.IsoLevel)
	}
	if opts.AccessMode != "" {
		stmt += " " + string(opts.AccessMode)
	}
	return stmt
}

// sqlc cannot put several of its queries in one pgx batch. To batch them
// anyway without restating their SQL, arguments or columns, queue calls
// the generated method twice: first on a recorder, a DBTX that keeps the
// statement and runs nothing, to queue that statement; then, when the
// batch's results are read, on a replay, a DBTX that hands the method the
// statement's results, which the generated code scans as usual.

// recorder is a DBTX that runs nothing: it keeps the statement it was
// given, its arguments and how the generated code sends it.
type recorder struct {
	kind string // "exec", "query" or "queryRow"
	sql  string
	args []any
}

var errRecorded = errors.New("db: statement recorded for a batch, not run")

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.kind, r.sql, r.args = "exec", sql, args
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.kind, r.sql, r.args = "query", sql, args
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.kind, r.sql, r.args = "queryRow", sql, args
	return recordedRow{}
}

type recordedRow struct{}

func (recordedRow) Scan(...any) error { return errRecorded }

// replay is a DBTX that answers with results already received.
type replay struct {
	tag  pgconn.CommandTag
	rows pgx.Rows
	row  pgx.Row
}

func (r replay) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) { return r.tag, nil }
func (r replay) Query(context.Context, string, ...any) (pgx.Rows, error)         { return r.rows, nil }
func (r replay) QueryRow(context.Context, string, ...any) pgx.Row                { return r.row }

// queue puts the statement of call, one call of a generated method, in b.
// When b's results are read, call runs again with the statement's results:
// whatever it assigns then is the answer. An error it returns fails the
// batch, except pgx.ErrNoRows: a gated statement may return no row, and
// call's caller judges that once the throttle check's answer is known.
func queue(b *pgx.Batch, call func(q *Queries) error) {
	r := &recorder{}
	if err := call(New(r)); !errors.Is(err, errRecorded) || r.sql == "" {
		panic(fmt.Sprintf("db: the batched call did not run one generated query (%v)", err))
	}
	replayed := func(db replay) error {
		if err := call(New(db)); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	}
	qq := b.Queue(r.sql, r.args...)
	switch r.kind {
	case "exec":
		qq.Exec(func(tag pgconn.CommandTag) error { return replayed(replay{tag: tag}) })
	case "query":
		qq.Query(func(rows pgx.Rows) error { return replayed(replay{rows: rows}) })
	case "queryRow":
		qq.QueryRow(func(row pgx.Row) error { return replayed(replay{row: row}) })
	}
}
