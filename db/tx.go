package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// tx is one request's transaction, declared once: whose it is, whether it
// uses the caller's key, what the audit trail says of it, and its
// statements. Store.run is the only way to run one.
//
// It takes as few round trips as pgx pipelining allows. The first sends
// BEGIN, the subject (with the transaction's timeouts), the throttle check
// when a key is used, the idempotency claim, and every statement queued
// with query or exec. Statements queued there are sent before the
// throttle's answer is known, so one that tries a key must require it
// (queries/records.sql says how). check then judges their results. With
// commitFirst the audit entry and COMMIT ride in that first round trip too
// (a read is one round trip); otherwise then runs any further statements
// and a last round trip sends the audit entry, the idempotent answer and
// COMMIT. A create or a keyed list is two round trips.
type tx struct {
	caller   fieldseal.Caller
	note     auditNote
	usesKey  bool
	readOnly bool // BEGIN READ ONLY
	// long raises statement_timeout to Timeouts.Long: for work over all
	// of a subject's records (rotation, export).
	long bool
	idem *idempotency
	// commitFirst puts the audit entry (appended only if the statements
	// decrypted: note.ifDecrypted) and COMMIT in the first round trip,
	// before the work's outcome is known: for read-only work only.
	commitFirst bool
	// check, if set, judges the first round trip's results; its error is
	// the request's (and rolls back whatever has not committed).
	check func() error
	// then, if set, runs more statements in the transaction after the
	// first round trip. Not with commitFirst.
	then  func(q *Queries) error
	first pgx.Batch // the statements of the first round trip, after the preamble
}

// pending is the result of a statement queued into a transaction's first
// round trip: known once that round trip has been read.
type pending[T any] struct {
	value T
	err   error
}

var (
	errNotRun          = errors.New("db: the statement's round trip was not read")
	errThenAfterCommit = errors.New("db: a transaction that commits in its first round trip cannot run more statements")
)

// get returns the statement's result; pgx.ErrNoRows for a :one query that
// found no row (mapError makes it ENOTFOUND), which does not fail the
// transaction: a statement gated on the throttle check returns no row for
// a caller it refused.
func (p *pending[T]) get() (T, error) { return p.value, p.err }

// query queues call, one call of a generated :one, :many or :execrows
// method, into b (a transaction's first round trip: &t.first).
func query[T any](b *pgx.Batch, call func(q *Queries) (T, error)) *pending[T] {
	p := &pending[T]{err: errNotRun}
	queue(b, func(q *Queries) error {
		p.value, p.err = call(q)
		return p.err
	})
	return p
}

// exec queues call, one call of a generated :exec method, into b.
func exec(b *pgx.Batch, call func(q *Queries) error) *pending[struct{}] {
	return query(b, func(q *Queries) (struct{}, error) { return struct{}{}, call(q) })
}

// run runs t for its caller. A refusal that the trail records (a wrong
// key, not found, throttled, a conflict) is appended, and a wrong key
// counted, in a transaction of its own, since t's was rolled back.
func (s *Store) run(ctx context.Context, t *tx) error {
	err := s.runTx(ctx, t)
	if err == nil && !t.note.quiet {
		s.audited(t.note.action, "ok")
	}
	code := fieldseal.ErrorCode(err)
	if !auditedRefusals[code] {
		return err
	}
	if aerr := s.recordRefusal(ctx, t.caller, t.note, code); aerr != nil {
		return fmt.Errorf("record a refusal (%s): %w", code, aerr)
	}
	return err
}

// runTx sends t's round trips on one connection. Any failure rolls back;
// a connection left inside a transaction is destroyed by the pool on
// release, never reused.
func (s *Store) runTx(ctx context.Context, t *tx) (err error) {
	switch {
	case t.caller.Subject == "":
		return fmt.Errorf("db: empty subject")
	case strings.ContainsRune(t.caller.Subject, 0):
		return fmt.Errorf("db: a subject with a NUL byte")
	case t.commitFirst && t.then != nil:
		return errThenAfterCommit
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
		if err != nil && errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, context.Canceled) {
			// The caller went away, and the cancel request that sent
			// stopped the statement (pool.go): its doing, not the database's.
			err = fmt.Errorf("%w: %w", context.Canceled, err)
		}
		err = mapError(err)
		if closed {
			err = lostConnection(err)
		}
	}()

	// The first round trip: the preamble, t's statements and, with
	// commitFirst, the audit entry and COMMIT. On Citus a transaction that
	// uses a key hears the throttle's answer before its statements are
	// sent (see citus.go), and commits in a round trip of its own.
	commitFirst := t.commitFirst && !s.dialect.apart()
	first := &pgx.Batch{}
	first.Queue(beginStatement(t.readOnly))
	statementTimeout := s.cfg.Timeouts.Statement
	if t.long {
		statementTimeout = s.cfg.Timeouts.Long
	}
	s.dialect.settings(ctx, first, sqlc.SetSubjectParams{
		Subject: t.caller.Subject, StatementTimeout: milliseconds(statementTimeout), LockTimeout: milliseconds(s.cfg.Timeouts.Lock),
		PlanCacheMode: s.dialect.planCacheMode(t.usesKey),
	})
	var admission *pending[sqlc.AdmitKeyUseRow]
	if t.usesKey {
		admission = query(first, func(q *Queries) (sqlc.AdmitKeyUseRow, error) {
			return q.AdmitKeyUse(ctx, sqlc.AdmitKeyUseParams{
				TokenID: t.caller.TokenID, WindowSeconds: s.cfg.Throttle.windowSeconds(),
				TokenLimit: int32(s.cfg.Throttle.TokenLimit), SubjectLimit: int32(s.cfg.Throttle.SubjectLimit),
			})
		})
	}
	var claimed *pending[bool]
	if t.idem != nil {
		claimed = t.idem.claim(ctx, first)
	}
	work := first
	if t.usesKey && s.dialect.apart() {
		work = &pgx.Batch{}
	}
	work.QueuedQueries = append(work.QueuedQueries, t.first.QueuedQueries...)
	var appended *pending[int64]
	if commitFirst {
		if !t.note.quiet {
			appended = query(first, s.appendEntry(ctx, t.caller, t.note, "ok"))
		}
		first.Queue("COMMIT")
	}
	if err := s.send(ctx, conn, t.caller.Subject, first); err != nil {
		return err
	}
	committed = commitFirst
	if admission != nil {
		a, err := admission.get()
		if err != nil {
			return err
		}
		if !a.Admitted {
			return s.throttled(a)
		}
	}
	if work != first {
		work.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: keyUseAdmitted}}, work.QueuedQueries...)
		if err := s.send(ctx, conn, t.caller.Subject, work); err != nil {
			return err
		}
	}
	q := newQueries(bound(s.dialect, conn, t.caller.Subject))
	if claimed != nil {
		if ok, err := claimed.get(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		} else if !ok {
			return t.idem.answered(ctx, q) // the work just done rolls back
		}
	}
	if t.check != nil {
		if err := t.check(); err != nil {
			return err
		}
	}
	if commitFirst {
		if appended != nil {
			if n, _ := appended.get(); n != 1 {
				// Never serve what the trail does not record.
				return fmt.Errorf("db: %s succeeded but its audit entry was not appended", t.note.action)
			}
		}
		return nil
	}
	if t.then != nil {
		if err := t.then(q); err != nil {
			return err
		}
	}
	last := &pgx.Batch{}
	if !t.note.quiet {
		// The work is done and judged: whatever it was to decrypt, it
		// decrypted (on Citus a read's entry comes here, not with the read).
		note := t.note
		note.ifDecrypted = false
		query(last, s.appendEntry(ctx, t.caller, note, "ok"))
	}
	if t.idem != nil {
		if err := t.idem.save(ctx, last); err != nil {
			return err
		}
	}
	last.Queue("COMMIT")
	if err := s.send(ctx, conn, t.caller.Subject, last); err != nil {
		return err
	}
	committed = true
	return nil
}

func beginStatement(readOnly bool) string {
	if readOnly {
		return "BEGIN READ ONLY"
	}
	return "BEGIN"
}

// sqlc cannot put several of its queries in one pgx batch. To batch them
// anyway without restating their SQL, arguments or columns, queue calls
// the generated method twice: first on a recorder, a sqlc.DBTX that keeps the
// statement and runs nothing, to queue that statement; then, when the
// batch's results are read, on a replay, a sqlc.DBTX that hands the method the
// statement's results, which the generated code scans as usual. This
// relies on each generated method making exactly one sqlc.DBTX call and
// returning its error unchanged (TestGeneratedMethodsMakeOneCall).

// recorder is a sqlc.DBTX that runs nothing: it keeps the statement it was
// given, its arguments and how the generated code sends it.
type recorder struct {
	calls int
	kind  string // "exec", "query" or "queryRow"
	sql   string
	args  []any
}

var errRecorded = errors.New("db: statement recorded for a batch, not run")

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.calls++
	r.kind, r.sql, r.args = "exec", sql, args
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.calls++
	r.kind, r.sql, r.args = "query", sql, args
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.calls++
	r.kind, r.sql, r.args = "queryRow", sql, args
	return recordedRow{}
}

type recordedRow struct{}

func (recordedRow) Scan(...any) error { return errRecorded }

// replay is a sqlc.DBTX that answers with results already received.
type replay struct {
	tag  pgconn.CommandTag
	rows pgx.Rows
	row  pgx.Row
}

func (r replay) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) { return r.tag, nil }
func (r replay) Query(context.Context, string, ...any) (pgx.Rows, error)         { return r.rows, nil }
func (r replay) QueryRow(context.Context, string, ...any) pgx.Row                { return r.row }

// queue puts the statement of call, one call of a generated method, in b.
// When b's results are read, call runs again with the statement's results.
// An error it returns fails the batch, except pgx.ErrNoRows (see pending).
func queue(b *pgx.Batch, call func(q *Queries) error) {
	r := &recorder{}
	if err := call(newQueries(r)); !errors.Is(err, errRecorded) || r.calls != 1 {
		panic(fmt.Sprintf("db: the batched call did not run exactly one generated query (%d calls, %v)", r.calls, err))
	}
	replayed := func(db replay) error {
		if err := call(newQueries(db)); err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
