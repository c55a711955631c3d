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
	// row they do not return because of it is not an error.
	first func(b *pgx.Batch)
	// then, if set, runs after the first round trip, unless the caller was
	// throttled.
	then func(q *Queries) error
}

// workTx runs one request's work in a transaction with as few round trips
// as pgx pipelining allows: BEGIN, the subject, (when a key is used) the
// throttle check and w.first's statements go in one batch; w.then's
// queries follow; the audit entry and COMMIT go in one last batch. A read
// or a list with the key, or a create, is two round trips.
// Any failure rolls back; a connection left inside a transaction is
// destroyed by the pool on release, never reused.
func (s *Store) workTx(ctx context.Context, caller fieldseal.Caller, note *auditNote, usesKey bool, opts pgx.TxOptions, w work) (err error) {
	if caller.Subject == "" {
		return fmt.Errorf("db: empty subject")
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapError(err)
	}
	defer conn.Release()
	committed := false
	defer func() {
		if !committed && !conn.Conn().IsClosed() {
			// Bounded: a server that does not answer must not hold the
			// request; the pool destroys a connection left in a transaction.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		err = mapError(err)
	}()

	begin := &pgx.Batch{}
	begin.Queue(beginStatement(opts))
	queue(begin, func(q *Queries) error { return q.SetSubject(ctx, caller.Subject) })
	var admission AdmitKeyUseRow
	if usesKey {
		queueOne(begin, &admission, nil, pgx.RowToStructByPos[AdmitKeyUseRow], func(q *Queries) error {
			_, err := q.AdmitKeyUse(ctx, AdmitKeyUseParams{
				TokenID: caller.TokenID, WindowSeconds: s.throttle.windowSeconds(),
				TokenLimit: int32(s.throttle.TokenLimit), SubjectLimit: int32(s.throttle.SubjectLimit),
			})
			return err
		})
	}
	if w.first != nil {
		w.first(begin)
	}
	if err := conn.SendBatch(ctx, begin).Close(); err != nil {
		return err
	}
	if usesKey && !admission.Admitted {
		return s.throttled(admission)
	}
	if w.then != nil {
		if err := w.then(New(conn)); err != nil {
			return err
		}
	}
	end := &pgx.Batch{}
	if !note.quiet {
		p := auditParams(caller, note, "ok")
		queue(end, func(q *Queries) error { return q.AppendAuditEvent(ctx, p) })
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
// anyway without restating their SQL, arguments or columns, the generated
// method is called on a recorder (a DBTX that keeps the statement and its
// arguments and runs nothing), and the recorded statement is queued.

// recorder is a DBTX that runs nothing: it keeps the last statement and
// arguments it was given and answers errRecorded.
type recorder struct {
	sql  string
	args []any
}

var errRecorded = errors.New("db: statement recorded for a batch, not run")

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.sql, r.args = sql, args
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.sql, r.args = sql, args
	return recordedRow{}
}

type recordedRow struct{}

func (recordedRow) Scan(...any) error { return errRecorded }

// statement returns what call (one call of a generated method, whose error
// it returns) would send.
func statement(call func(q *Queries) error) (string, []any) {
	r := &recorder{}
	if err := call(New(r)); !errors.Is(err, errRecorded) || r.sql == "" {
		panic(fmt.Sprintf("db: the batched call did not run a generated query (%v)", err))
	}
	return r.sql, r.args
}

// queue puts call's statement in b, its result unread (an error still
// fails the batch).
func queue(b *pgx.Batch, call func(q *Queries) error) {
	sql, args := statement(call)
	b.Queue(sql, args...)
}

// queueOne puts call's statement (a :one query) in b; when b's results are
// read, its row is scanned into *dst with scan (pgx.RowToStructByPos of
// the generated row type, whose fields are in column order, or pgx.RowTo
// for one column). No row is an error unless found is given: then *found
// says whether a row came.
func queueOne[T any](b *pgx.Batch, dst *T, found *bool, scan pgx.RowToFunc[T], call func(q *Queries) error) {
	sql, args := statement(call)
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		v, err := pgx.CollectExactlyOneRow(rows, scan)
		if found != nil && errors.Is(err, pgx.ErrNoRows) {
			*found = false
			return nil
		}
		if err != nil {
			return err
		}
		*dst = v
		if found != nil {
			*found = true
		}
		return nil
	})
}

// queueMany puts call's statement (a :many query) in b; its rows are
// appended to *dst as queueOne scans one.
func queueMany[T any](b *pgx.Batch, dst *[]T, scan pgx.RowToFunc[T], call func(q *Queries) error) {
	sql, args := statement(call)
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		var err error
		*dst, err = pgx.AppendRows(*dst, rows, scan)
		return err
	})
}
