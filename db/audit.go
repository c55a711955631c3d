package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
)

// auditNote is what one request's work says about itself in the trail.
type auditNote struct {
	action   string
	recordID *fieldseal.ID
	count    *int64 // read when the entry is appended, after the work
	// quiet skips the entry when the work succeeds: reads without a key
	// decrypt nothing and are not audited (their refusals are).
	quiet bool
	// ifDecrypted appends the entry only if the transaction decrypted
	// what it records (fieldseal.decrypted, set by GetRecordDecrypted), so
	// a read's entry can be sent with the read, before its outcome is known.
	ifDecrypted bool
}

// auditedRefusals are the refusals that get an entry of their own.
var auditedRefusals = map[string]bool{
	fieldseal.EWRONGKEY: true, fieldseal.ENOTFOUND: true, fieldseal.ERATELIMITED: true,
	fieldseal.ECONFLICT: true, fieldseal.EFORBIDDEN: true,
}

// recordRefusal appends the audit entry of a refused request, in a
// transaction of its own (one round trip), and counts a wrong key against
// the caller.
func (s *Store) recordRefusal(ctx context.Context, caller fieldseal.Caller, note auditNote, outcome string) error {
	t := &tx{caller: caller, note: auditNote{action: note.action, recordID: note.recordID, count: note.count, quiet: true}, commitFirst: true}
	if outcome == fieldseal.EWRONGKEY {
		exec(&t.first, func(q *Queries) error {
			return q.RecordKeyFailure(ctx, RecordKeyFailureParams{TokenID: caller.TokenID, WindowSeconds: s.throttle.windowSeconds()})
		})
		exec(&t.first, func(q *Queries) error { return q.PruneKeyFailures(ctx, s.throttle.windowSeconds()) })
	}
	appended := query(&t.first, s.appendEntry(ctx, caller, note, outcome))
	t.check = func() error {
		if n, err := appended.get(); err != nil || n != 1 {
			return fmt.Errorf("db: the refusal's audit entry was not appended (%v)", err)
		}
		return nil
	}
	err := s.runTx(ctx, t)
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

// appendEntry is the append of note's entry with outcome, for query.
func (s *Store) appendEntry(ctx context.Context, caller fieldseal.Caller, note auditNote, outcome string) func(q *Queries) (int64, error) {
	return func(q *Queries) (int64, error) {
		p := AppendAuditEventParams{
			Action: note.action, Outcome: outcome, IfDecrypted: note.ifDecrypted && outcome == "ok",
			TokenID: caller.JTI, ClientID: caller.ClientID, RequestID: caller.RequestID, ClientAddr: caller.ClientAddr,
		}
		if note.recordID != nil {
			p.RecordID = uuid(*note.recordID)
		}
		if note.count != nil {
			p.RecordCount = pgtype.Int8{Int64: *note.count, Valid: true}
		}
		return q.AppendAuditEvent(ctx, p)
	}
}

// RecordRefusal implements fieldseal.AuditService.
func (s *Store) RecordRefusal(ctx context.Context, caller fieldseal.Caller, action, outcome string) error {
	return s.recordRefusal(ctx, caller, auditNote{action: action}, outcome)
}

// AuditEvents implements fieldseal.AuditService.
func (s *Store) AuditEvents(ctx context.Context, caller fieldseal.Caller, f fieldseal.AuditFilter) (fieldseal.AuditPage, error) {
	page := fieldseal.AuditPage{Items: []fieldseal.AuditEvent{}}
	until := f.Until
	if until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	err := s.run(ctx, &tx{caller: caller, note: auditNote{quiet: true}, readOnly: true, then: func(q *Queries) error {
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
	}})
	if err != nil {
		return fieldseal.AuditPage{}, err
	}
	if n := len(page.Items); n > 0 && n == f.Limit {
		last := page.Items[n-1]
		page.Next = fieldseal.AuditCursor{At: last.At, Subject: last.Subject, Seq: last.Seq}
	}
	return page, nil
}

var _ fieldseal.AuditService = (*Store)(nil)
