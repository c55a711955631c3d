package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
)

// workTx runs one request's work in a transaction with as few round trips
// as pgx pipelining allows: BEGIN, the subject and (when a key is used) the
// throttle check go in one batch; fn's queries follow; the audit entry and
// COMMIT go in one last batch. (A read was seven round trips; it is four.)
// Any failure rolls back; a connection left inside a transaction is
// destroyed by the pool on release, never reused.
func (s *Store) workTx(ctx context.Context, caller fieldseal.Caller, note *auditNote, usesKey bool, opts pgx.TxOptions, fn func(q *Queries) error) (err error) {
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
	begin.Queue(setSubject, caller.Subject)
	var failures GetKeyFailuresRow
	if usesKey {
		begin.Queue(getKeyFailures, caller.TokenID, s.throttle.windowSeconds()).QueryRow(func(row pgx.Row) error {
			return row.Scan(&failures.TokenFailures, &failures.SubjectFailures, &failures.TokenWindowStart, &failures.SubjectWindowStart)
		})
	}
	if err := conn.SendBatch(ctx, begin).Close(); err != nil {
		return err
	}
	if usesKey {
		if err := s.throttled(failures); err != nil {
			return err
		}
	}
	if err := fn(New(conn)); err != nil {
		return err
	}
	end := &pgx.Batch{}
	if !note.quiet {
		p := auditParams(caller, note, "ok")
		end.Queue(appendAuditEvent, p.Action, p.Outcome, p.RecordID, p.RecordCount, p.TokenID, p.ClientID, p.RequestID, p.ClientAddr)
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

// sendBatch sends b in one round trip on q's connection: the pooled
// connection workTx gives its fn.
func (q *Queries) sendBatch(ctx context.Context, b *pgx.Batch) error {
	conn, ok := q.db.(interface {
		SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
	})
	if !ok {
		return fmt.Errorf("db: %T cannot send a batch", q.db)
	}
	return conn.SendBatch(ctx, b).Close()
}
