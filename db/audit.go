package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
)

// auditNote is what one request's work says about itself in the trail.
type auditNote struct {
	action   string
	recordID *fieldseal.ID
	count    *int64
	// quiet skips the entry when the work succeeds: reads without a key
	// decrypt nothing and are not audited (their refusals are).
	quiet bool
}

// auditedRefusals are the refusals that get an entry of their own.
var auditedRefusals = map[string]bool{
	fieldseal.EWRONGKEY: true, fieldseal.ENOTFOUND: true, fieldseal.ERATELIMITED: true,
	fieldseal.ECONFLICT: true, fieldseal.EFORBIDDEN: true,
}

// do runs one request's work for caller in one subject-scoped transaction:
// refused at once if usesKey and the caller is throttled; on success the
// audit entry is appended in the same transaction, so there is no work
// without its entry. A refusal is audited (and a wrong key counted) in a
// transaction of its own, since the work's was rolled back.
func (s *Store) do(ctx context.Context, caller fieldseal.Caller, note *auditNote, usesKey bool, opts pgx.TxOptions, fn func(q *Queries) error) error {
	return s.doWork(ctx, caller, note, usesKey, opts, work{then: fn})
}

// doWork is do with statements in the first round trip (see work).
func (s *Store) doWork(ctx context.Context, caller fieldseal.Caller, note *auditNote, usesKey bool, opts pgx.TxOptions, w work) error {
	err := s.workTx(ctx, caller, note, usesKey, opts, w)
	if err == nil && !note.quiet {
		s.audited(note.action, "ok")
	}
	code := fieldseal.ErrorCode(err)
	if !auditedRefusals[code] {
		return err
	}
	if aerr := s.recordRefusal(ctx, caller, note, code); aerr != nil {
		return fmt.Errorf("record a refusal (%s): %w", code, aerr)
	}
	return err
}

// recordRefusal appends the audit entry of a refused request, in a
// transaction of its own, and counts a wrong key against the caller.
func (s *Store) recordRefusal(ctx context.Context, caller fieldseal.Caller, note *auditNote, outcome string) error {
	err := s.inTx(ctx, caller.Subject, func(q *Queries) error {
		if outcome == fieldseal.EWRONGKEY {
			p := RecordKeyFailureParams{TokenID: caller.TokenID, WindowSeconds: s.throttle.windowSeconds()}
			if err := q.RecordKeyFailure(ctx, p); err != nil {
				return err
			}
			if err := q.PruneKeyFailures(ctx, s.throttle.windowSeconds()); err != nil {
				return err
			}
		}
		return appendAudit(ctx, q, caller, note, outcome)
	})
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

func appendAudit(ctx context.Context, q *Queries, caller fieldseal.Caller, note *auditNote, outcome string) error {
	_, err := q.AppendAuditEvent(ctx, auditParams(caller, note, outcome))
	return err
}

func auditParams(caller fieldseal.Caller, note *auditNote, outcome string) AppendAuditEventParams {
	p := AppendAuditEventParams{
		Action: note.action, Outcome: outcome,
		TokenID: caller.JTI, ClientID: caller.ClientID, RequestID: caller.RequestID, ClientAddr: caller.ClientAddr,
	}
	if note.recordID != nil {
		p.RecordID = uuid(*note.recordID)
	}
	if note.count != nil {
		p.RecordCount = pgtype.Int8{Int64: *note.count, Valid: true}
	}
	return p
}

// RecordRefusal implements fieldseal.AuditService.
func (s *Store) RecordRefusal(ctx context.Context, caller fieldseal.Caller, action, outcome string) error {
	return s.recordRefusal(ctx, caller, &auditNote{action: action}, outcome)
}

// AuditEvents implements fieldseal.AuditService.
func (s *Store) AuditEvents(ctx context.Context, caller fieldseal.Caller, f fieldseal.AuditFilter) (fieldseal.AuditPage, error) {
	page := fieldseal.AuditPage{Items: []fieldseal.AuditEvent{}}
	until := f.Until
	if until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	err := s.inTxWith(ctx, caller.Subject, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(q *Queries) error {
		if err := q.EnableAuditReading(ctx); err != nil {
			return err
		}
		rows, err := q.ListAuditEvents(ctx, ListAuditEventsParams{
			Subject: f.Subject, Action: f.Action, Since: f.Since, Until: until,
			AfterAt: f.After.At, AfterSubject: f.After.Subject, AfterSeq: f.After.Seq, MaxRows: int32(f.Limit),
		})
		for _, r := range rows {
			e := fieldseal.AuditEvent{Subject: r.Subject, Seq: r.Seq, At: r.At, Action: r.Action, Outcome: r.Outcome,
				TokenJTI: r.TokenID, ClientID: r.ClientID, RequestID: r.RequestID, ClientAddr: r.ClientAddr}
			if r.RecordID.Valid {
				id := fieldseal.ID(r.RecordID.Bytes)
				e.RecordID = &id
			}
			if r.RecordCount.Valid {
				n := r.RecordCount.Int64
				e.RecordCount = &n
			}
			page.Items = append(page.Items, e)
		}
		return err
	})
	if err != nil {
		return fieldseal.AuditPage{}, err
	}
	if n := len(page.Items); n > 0 && n == f.Limit {
		last := page.Items[n-1]
		page.Next = fieldseal.AuditCursor{At: last.At, Subject: last.Subject, Seq: last.Seq}
	}
	return page, nil
}

var (
	_ fieldseal.AuditService = (*Store)(nil)
	_                        = errors.New
)
