package db

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// tx is one request's transaction, declared once by its Store method:
// whose it is, whether it uses the caller's key, what the audit trail
// says of it, its statements, and how their results become its answer, a
// T. run is the only way to run one.
//
// It takes as few round trips as pgx pipelining allows. The first sends
// BEGIN, the transaction's settings, the throttle check when a key is
// used, the idempotency claim, and the statements queued into first with
// query or exec. Those are sent before the throttle's answer is known, so
// one that tries a key must require it (queries/records.sql says how).
// answer then reads their results. With commitFirst the audit entry and
// COMMIT ride in that first round trip too (a read is one round trip);
// otherwise then runs any further statements and a last round trip sends
// the audit entry, the idempotent answer and COMMIT (a create or a keyed
// list is two round trips).
//
// A Store method reads top to bottom: it queues its statements, says how
// their results make its answer, and returns what run returns. No step
// writes its result anywhere but its return values.
type tx[T any] struct {
	caller   fieldseal.Caller
	note     auditNote
	usesKey  bool
	readOnly bool // BEGIN READ ONLY
	// long raises statement_timeout to Timeouts.Long: for work over all
	// of a subject's records (rotation, export, import).
	long bool
	// commitFirst puts the audit entry (appended only if the statements
	// decrypted: note.ifDecrypted) and COMMIT in the first round trip,
	// before the work's outcome is known: for read-only work only.
	commitFirst bool
	// idem, if set, runs the work at most once for its key (see
	// fieldseal.Idempotent), its answer stored before COMMIT.
	idem *fieldseal.Idempotent[T]

	// first is the statements of the first round trip, after the
	// preamble, queued with query and exec.
	first pgx.Batch
	// answer, if set, makes the request's answer from first's results,
	// once that round trip has been read; its error is the request's
	// (and rolls back whatever has not committed).
	answer func() (T, error)
	// then, if set, runs more statements in the transaction after the
	// first round trip, given answer's result, and returns the request's
	// answer. Not with commitFirst.
	then func(q *Queries, v T) (T, error)
	// count, if set, is the number of records the audit entry counts,
	// read from the answer (0 in a refusal's entry).
	count func(v T) int64
}

var (
	errThenAfterCommit = errors.New("db: a transaction that commits in its first round trip cannot run more statements")
	// errAuditNotAppended marks a request whose audit entry did not
	// commit: its append, or the COMMIT that carried it, failed
	// (Store.OnAuditFailure counts them).
	errAuditNotAppended = errors.New("its audit entry was not appended")
)

// run runs t for its caller and returns its answer. A refusal that the
// trail records (a wrong key, not found, throttled, a conflict) is
// appended, and a wrong key counted, in a transaction of its own, since
// t's was rolled back.
func run[T any](ctx context.Context, s *Store, t *tx[T]) (T, error) {
	v, err := runTx(ctx, s, t)
	if err == nil {
		if !t.note.quiet {
			s.audited(t.note.action, "ok")
		}
		return v, nil
	}
	var zero T
	if errors.Is(err, errAuditNotAppended) {
		s.auditFailed(t.note.action)
	}
	code := fieldseal.ErrorCode(err)
	if !auditedRefusals[code] {
		return zero, err
	}
	note := t.note
	if t.count != nil {
		note.count = counted(t.count(zero))
	}
	if aerr := s.recordRefusal(ctx, t.caller, note, code); aerr != nil {
		if ctx.Err() == nil {
			s.auditFailed(t.note.action)
		}
		return zero, fmt.Errorf("record a refusal (%s): %w", code, aerr)
	}
	return zero, err
}

// runTx sends t's round trips on one connection. Any failure rolls back;
// a connection left inside a transaction is destroyed by the pool on
// release, never reused.
func runTx[T any](ctx context.Context, s *Store, t *tx[T]) (v T, err error) {
	switch {
	case t.caller.Subject == "":
		return v, fmt.Errorf("db: empty subject")
	case strings.ContainsRune(t.caller.Subject, 0):
		return v, fmt.Errorf("db: a subject with a NUL byte")
	case t.commitFirst && t.then != nil:
		return v, errThenAfterCommit
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return v, mapError(err)
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
		audit := errors.Is(err, errAuditNotAppended)
		err = mapError(err)
		if closed {
			err = lostConnection(err)
		}
		if audit && !errors.Is(err, errAuditNotAppended) {
			err = auditFailure{err} // mapping drops the mark; run counts it
		}
		if err != nil {
			var zero T
			v = zero
		}
	}()
	send := func(b *pgx.Batch) error {
		for _, q := range b.QueuedQueries {
			q.SQL = s.dialect.bind(q.SQL, t.caller.Subject)
		}
		return conn.SendBatch(ctx, b).Close()
	}

	// The first round trip: the preamble, t's statements and, with
	// commitFirst, the audit entry and COMMIT. Where the dialect keeps
	// them apart (Citus: citus.go), a transaction that uses a key hears
	// the throttle's answer before its statements are sent, and commits
	// in a round trip of its own.
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
		claimed = claim(ctx, first, t.idem.Key, t.idem.Fingerprint)
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
	if err := send(first); err != nil {
		return v, err
	}
	committed = commitFirst
	if admission != nil {
		a, err := admission.get()
		if err != nil {
			return v, err
		}
		if !a.Admitted {
			return v, s.throttled(a)
		}
	}
	if work != first {
		work.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: keyUseAdmitted}}, work.QueuedQueries...)
		if err := send(work); err != nil {
			return v, err
		}
	}
	q := newQueries(bound(s.dialect, conn, t.caller.Subject))
	if claimed != nil {
		if ok, err := claimed.get(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return v, err
		} else if !ok {
			return v, answered(ctx, q, t.idem.Key, t.idem.Fingerprint) // the work just done rolls back
		}
	}
	if t.answer != nil {
		if v, err = t.answer(); err != nil {
			return v, err
		}
	}
	if commitFirst {
		if appended != nil {
			if n, _ := appended.get(); n != 1 {
				// Never serve what the trail does not record.
				return v, fmt.Errorf("db: %s succeeded but %w", t.note.action, errAuditNotAppended)
			}
		}
		return v, nil
	}
	if t.then != nil {
		if v, err = t.then(q, v); err != nil {
			return v, err
		}
	}

	// The last round trip: the audit entry, the idempotent answer, COMMIT.
	last := &pgx.Batch{}
	if !t.note.quiet {
		// The work is done and judged: whatever it was to decrypt, it
		// decrypted (where the dialect keeps them apart, a read's entry
		// comes here, not with the read).
		note := t.note
		note.ifDecrypted = false
		if t.count != nil {
			note.count = counted(t.count(v))
		}
		query(last, s.appendEntry(ctx, t.caller, note, "ok"))
	}
	if t.idem != nil {
		if err := save(ctx, last, t.idem.Key, t.idem.Answer(v)); err != nil {
			return v, err
		}
	}
	last.Queue("COMMIT")
	if err := send(last); err != nil {
		if !t.note.quiet && ctx.Err() == nil {
			return v, fmt.Errorf("%w (its append, the idempotent answer or the COMMIT of the last round trip failed): %w", errAuditNotAppended, err)
		}
		return v, err
	}
	committed = true
	return v, nil
}

// auditFailure is a mapped error of a request whose audit entry did not
// commit: it is err, and errors.Is(errAuditNotAppended).
type auditFailure struct{ error }

func (e auditFailure) Unwrap() error        { return e.error }
func (e auditFailure) Is(target error) bool { return target == errAuditNotAppended }

func beginStatement(readOnly bool) string {
	if readOnly {
		return "BEGIN READ ONLY"
	}
	return "BEGIN"
}

// auditNote is what one request's work says about itself in the trail.
type auditNote struct {
	action   string
	recordID *fieldseal.ID
	// recordIDs, for a batch: one entry per record, in order.
	recordIDs []fieldseal.ID
	count     *int64 // set by run from tx.count
	// quiet skips the entry when the work succeeds: reads without a key
	// decrypt nothing and are not audited (their refusals are).
	quiet bool
	// ifDecrypted appends the entry only if the transaction decrypted
	// what it records (fieldseal.decrypted, set by GetRecordDecrypted), so
	// a read's entry can be sent with the read, before its outcome is known.
	ifDecrypted bool
}

func counted(n int64) *int64 { return &n }

// auditedRefusals are the refusals that get an entry of their own.
var auditedRefusals = map[string]bool{
	fieldseal.EWRONGKEY: true, fieldseal.ENOTFOUND: true, fieldseal.ERATELIMITED: true,
	fieldseal.ECONFLICT: true, fieldseal.EFORBIDDEN: true, fieldseal.ECORRUPT: true,
}

// recordRefusal appends the audit entry of a refused request, in a
// transaction of its own (one round trip), and counts a wrong key against
// the caller. A refused batch is one refusal: one entry, whose count is
// the batch's size, and one wrong key counted.
func (s *Store) recordRefusal(ctx context.Context, caller fieldseal.Caller, note auditNote, outcome string) error {
	if note.recordIDs != nil {
		note = auditNote{action: note.action, count: counted(int64(len(note.recordIDs)))}
	}
	t := &tx[struct{}]{caller: caller, note: auditNote{action: note.action, recordID: note.recordID, count: note.count, quiet: true}, commitFirst: true}
	if outcome == fieldseal.EWRONGKEY {
		exec(&t.first, func(q *Queries) error {
			return q.RecordKeyFailure(ctx, sqlc.RecordKeyFailureParams{TokenID: caller.TokenID, WindowSeconds: s.cfg.Throttle.windowSeconds()})
		})
		exec(&t.first, func(q *Queries) error { return q.PruneKeyFailures(ctx, s.cfg.Throttle.windowSeconds()) })
	}
	appended := query(&t.first, s.appendEntry(ctx, caller, note, outcome))
	t.answer = func() (struct{}, error) {
		if n, err := appended.get(); err != nil || n != 1 {
			return struct{}{}, fmt.Errorf("db: the refusal's audit entry was not appended (%v)", err)
		}
		return struct{}{}, nil
	}
	_, err := runTx(ctx, s, t)
	if err == nil {
		s.audited(note.action, outcome)
	}
	return err
}

func (s *Store) audited(action, outcome string) {
	if s.OnAudit != nil {
		s.OnAudit(action, outcome)
	}
}

func (s *Store) auditFailed(action string) {
	if s.OnAuditFailure != nil {
		s.OnAuditFailure(action)
	}
}

// appendEntry is the append of note's entry with outcome, for query.
func (s *Store) appendEntry(ctx context.Context, caller fieldseal.Caller, note auditNote, outcome string) func(q *Queries) (int64, error) {
	return func(q *Queries) (int64, error) {
		if note.recordIDs != nil {
			ids := make([]pgtype.UUID, len(note.recordIDs))
			for i, id := range note.recordIDs {
				ids[i] = uuid(id)
			}
			n, err := q.AppendAuditEvents(ctx, sqlc.AppendAuditEventsParams{
				Action: note.action, Outcome: outcome, RecordIds: ids,
				TokenID: caller.JTI, ClientID: caller.ClientID, RequestID: caller.RequestID, ClientAddr: caller.ClientAddr,
			})
			if err == nil && n != int64(len(ids)) {
				return n, fmt.Errorf("db: %d audit entries appended for a batch of %d", n, len(ids))
			}
			return n, err
		}
		p := sqlc.AppendAuditEventParams{
			Action: note.action, Outcome: outcome,
			TokenID: caller.JTI, ClientID: caller.ClientID, RequestID: caller.RequestID, ClientAddr: caller.ClientAddr,
		}
		if note.recordID != nil {
			p.RecordID = uuid(*note.recordID)
		}
		if note.count != nil {
			p.RecordCount = pgtype.Int8{Int64: *note.count, Valid: true}
		}
		if note.ifDecrypted && outcome == "ok" {
			return q.AppendAuditEventIfDecrypted(ctx, sqlc.AppendAuditEventIfDecryptedParams(p))
		}
		return q.AppendAuditEvent(ctx, p)
	}
}

// An Idempotency-Key (fieldseal.Idempotent) is claimed inside the
// transaction of its work, in the first round trip, before the work's
// statements, and its answer saved in the last, before COMMIT. A key
// answered before makes the transaction roll back, so the work runs at
// most once. run does both.

// claim queues the claim of key (and the pruning of this subject's
// expired keys) into b: true when claimed, no row when the key has a live
// answer.
func claim(ctx context.Context, b *pgx.Batch, key string, fingerprint [32]byte) *pending[bool] {
	claimed := query(b, func(q *Queries) (bool, error) {
		ok, err := q.ClaimIdempotencyKey(ctx, sqlc.ClaimIdempotencyKeyParams{Key: key, Fingerprint: fingerprint[:]})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_timeout: the first is still running
			return false, fieldseal.Errorf(fieldseal.EIDEMPOTENCYINUSE, "a request with this Idempotency-Key is still running; retry once it has answered")
		}
		return ok, err
	})
	exec(b, func(q *Queries) error { return q.PruneIdempotencyKeys(ctx) })
	return claimed
}

// answered returns what a request whose key was not claimed gets: the
// stored answer as *fieldseal.Replay when it is the same request, else
// EIDEMPOTENCYREUSED.
func answered(ctx context.Context, q *Queries, key string, fingerprint [32]byte) error {
	row, err := q.GetIdempotencyAnswer(ctx, key)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(row.Fingerprint, fingerprint[:]) != 1 {
		return fieldseal.Errorf(fieldseal.EIDEMPOTENCYREUSED, "this Idempotency-Key was used for a different request in the last 24 hours")
	}
	a := fieldseal.Answer{Status: int(row.Status), Body: row.Body}
	if err := json.Unmarshal(row.Header, &a.Header); err != nil {
		return fmt.Errorf("db: a stored idempotent answer's header: %w", err)
	}
	return &fieldseal.Replay{Answer: a}
}

// save queues the work's answer a under key into b.
func save(ctx context.Context, b *pgx.Batch, key string, a fieldseal.Answer) error {
	header, err := json.Marshal(a.Header)
	if err != nil {
		return err
	}
	exec(b, func(q *Queries) error {
		return q.SaveIdempotencyAnswer(ctx, sqlc.SaveIdempotencyAnswerParams{Key: key, Status: int32(a.Status), Header: header, Body: a.Body})
	})
	return nil
}

// Pipelining: statements queued into a round trip, their results read
// once it has been.

// pending is the result of a statement queued into a transaction's first
// round trip: known once that round trip has been read.
type pending[T any] struct {
	value T
	err   error
}

var errNotRun = errors.New("db: the statement's round trip was not read")

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
