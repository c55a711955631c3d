package db

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// RecordRefusal implements fieldseal.AuditService.
func (s *Store) RecordRefusal(ctx context.Context, caller fieldseal.Caller, action, outcome string) error {
	return s.recordRefusal(ctx, caller, auditNote{action: action}, outcome)
}

// AuditEvents implements fieldseal.AuditService.
func (s *Store) AuditEvents(ctx context.Context, caller fieldseal.Caller, f fieldseal.AuditFilter) (fieldseal.AuditPage, error) {
	until := f.Until
	if until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	items, err := run(ctx, s, &tx[[]fieldseal.AuditEvent]{caller: caller, note: auditNote{quiet: true}, readOnly: true,
		then: func(q *Queries, _ []fieldseal.AuditEvent) ([]fieldseal.AuditEvent, error) {
			if err := s.dialect.enableAuditReading(ctx, q); err != nil {
				return nil, err
			}
			rows, err := q.ListAuditEvents(ctx, sqlc.ListAuditEventsParams{
				Subject: f.Subject, Action: f.Action, Since: f.Since, Until: until,
				AfterAt: f.After.At, AfterSubject: f.After.Subject, AfterLane: f.After.Lane, AfterSeq: f.After.Seq, MaxRows: int32(f.Limit),
			})
			items := make([]fieldseal.AuditEvent, len(rows))
			for i, r := range rows {
				items[i] = auditEvent(r)
			}
			return items, err
		}})
	if err != nil {
		return fieldseal.AuditPage{}, err
	}
	page := fieldseal.AuditPage{Items: items}
	if n := len(page.Items); n > 0 && n == f.Limit {
		last := page.Items[n-1]
		page.Next = fieldseal.AuditCursor{At: last.At, Subject: last.Subject, Lane: last.Lane, Seq: last.Seq}
	}
	return page, nil
}

var _ fieldseal.AuditService = (*Store)(nil)

// chain names one hash chain of the trail: a subject's lane.
type chain struct {
	subject string
	lane    int16
}

// verifyPageSize bounds the entries held in memory while verifying.
const verifyPageSize = 5000

// VerifyAuditTrail recomputes every subject's hash chain (or only
// subject's) over an admin connection, and reports the first broken link
// of each chain: an entry whose contents no longer match its hash (edited,
// or forged without the trigger), a missing sequence number (deleted), or
// an entry whose prev_hash is not its predecessor's hash (inserted,
// reordered). progress, if not nil, is called every page.
//
// Each chain's newest entry is also compared with its head (migration
// 00009), so entries deleted from a chain's end are reported too, unless
// the head was rewritten to match. A chain cannot tell an entry appended
// through the trigger by someone with database access from one the app
// appended; docs/dba.md says how to close both gaps.
func (a *Admin) VerifyAuditTrail(ctx context.Context, subject string, progress func(entries int64)) (fieldseal.AuditReport, error) {
	q := newQueries(a.db)
	starts, err := chainStarts(ctx, q, subject)
	if err != nil {
		return fieldseal.AuditReport{}, err
	}
	var (
		rep      fieldseal.AuditReport
		w        = fieldseal.ChainWalk{Lane: -1} // the chain being walked
		after    sqlc.ListAuditChainPageParams
		subjects = map[string]bool{}
	)
	for {
		after.OnlySubject, after.MaxRows = subject, verifyPageSize
		rows, err := q.ListAuditChainPage(ctx, after)
		if err != nil {
			return rep, err
		}
		for _, r := range rows {
			rep.Entries++
			if r.Subject != w.Subject || r.Lane != w.Lane {
				first, prev := int64(1), []byte(nil)                // nil: entry 1 links to zeros
				if st, ok := starts[chain{r.Subject, r.Lane}]; ok { // archived up to there
					first, prev = st.Seq, st.PrevHash
				}
				w = fieldseal.StartChain(r.Subject, r.Lane, first, prev)
				if !subjects[r.Subject] {
					subjects[r.Subject] = true
					rep.Subjects++
				}
			}
			if seq, problem := step(&w, sqlc.ListChainEntriesRow(r)); problem != "" {
				rep.Breaks = append(rep.Breaks, fieldseal.AuditBreak{Subject: r.Subject, Lane: r.Lane, Seq: seq, Problem: problem})
			}
			after.AfterSubject, after.AfterLane, after.AfterSeq = r.Subject, r.Lane, r.Seq
		}
		if progress != nil {
			progress(rep.Entries)
		}
		if len(rows) < verifyPageSize {
			break
		}
	}
	return rep, checkHeads(ctx, q, subject, &rep, subjects)
}

// chainStarts is where each archived chain now starts (migration 00017).
func chainStarts(ctx context.Context, q *Queries, subject string) (map[chain]sqlc.ListAuditChainStartsRow, error) {
	rows, err := q.ListAuditChainStarts(ctx, subject)
	starts := make(map[chain]sqlc.ListAuditChainStartsRow, len(rows))
	for _, r := range rows {
		starts[chain{r.Subject, r.Lane}] = r
	}
	return starts, err
}

// checkHeads compares each lane's newest entry with its head (migrations
// 00009 and 00012), which the trigger moves in the same transaction as
// each append: a chain that is whole but stops short of its head lost its
// newest entries; a lane missing below the subject's highest was deleted
// with its head. A chain already broken keeps its first break.
func checkHeads(ctx context.Context, q *Queries, subject string, rep *fieldseal.AuditReport, seen map[string]bool) error {
	mismatches, err := q.ListAuditHeadMismatches(ctx, subject)
	if err != nil {
		return err
	}
	broken := map[chain]bool{}
	for _, b := range rep.Breaks {
		broken[chain{b.Subject, b.Lane}] = true
	}
	for _, m := range mismatches {
		if broken[chain{m.Subject, m.Lane}] {
			continue
		}
		b := fieldseal.AuditBreak{Subject: m.Subject, Lane: m.Lane, Seq: m.LastSeq + 1}
		switch {
		case m.LastSeq == 0 && m.HeadSeq == 0:
			b.Seq = 1
			b.Problem = "the lane is missing, entries and head, below the subject's highest lane: it was deleted"
		case m.LastSeq == 0:
			b.Problem = fmt.Sprintf("every entry (1 to %d) is missing: the chain was deleted", m.HeadSeq)
		case m.HeadSeq > m.LastSeq:
			b.Problem = fmt.Sprintf("entries %d to %d are missing: the newest entries were deleted", m.LastSeq+1, m.HeadSeq)
		case m.HeadSeq < m.LastSeq:
			b.Seq = m.HeadSeq + 1
			b.Problem = fmt.Sprintf("the chain's head is entry %d: entries after it were written around the chain", m.HeadSeq)
		default:
			b.Seq = m.LastSeq
			b.Problem = "its hash is not the chain's head: the newest entry was rewritten"
		}
		if !seen[m.Subject] {
			seen[m.Subject] = true
			rep.Subjects++ // every entry of the subject is gone: the walk did not count it
		}
		rep.Breaks = append(rep.Breaks, b)
	}
	slices.SortStableFunc(rep.Breaks, func(a, b fieldseal.AuditBreak) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return int(a.Lane) - int(b.Lane)
	})
	return nil
}

// step moves w past r and words r's problem if r is where w's chain
// first breaks; seq is the entry the break is reported at.
func step(w *fieldseal.ChainWalk, r sqlc.ListChainEntriesRow) (seq int64, problem string) {
	want := w.Next
	switch w.Step(chainEvent(r), r.PrevHash, r.Hash) {
	case fieldseal.LinkSeq:
		return min(want, r.Seq), fmt.Sprintf("entry %d is missing (the next one is %d): deleted", want, r.Seq)
	case fieldseal.LinkPrev:
		return r.Seq, "its prev_hash is not the previous entry's hash: an entry before it was inserted, removed or rewritten"
	case fieldseal.LinkHash:
		return r.Seq, "its contents do not match its hash: edited, or written around the chain"
	}
	return r.Seq, ""
}

// chainEvent is a row read with its hashes, as the API and archives show
// it (the hashes aside).
func chainEvent(r sqlc.ListChainEntriesRow) fieldseal.AuditEvent {
	return auditEvent(sqlc.ListAuditEventsRow{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq, At: r.At, Action: r.Action, Outcome: r.Outcome,
		RecordID: r.RecordID, RecordCount: r.RecordCount, TokenID: r.TokenID, ClientID: r.ClientID, RequestID: r.RequestID, ClientAddr: r.ClientAddr})
}

// auditEvent is an entry as the API and archives show it.
func auditEvent(r sqlc.ListAuditEventsRow) fieldseal.AuditEvent {
	e := fieldseal.AuditEvent{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq, At: r.At, Action: r.Action, Outcome: r.Outcome,
		TokenJTI: r.TokenID, ClientID: r.ClientID, RequestID: r.RequestID, ClientAddr: r.ClientAddr}
	if r.RecordID.Valid {
		id := fieldseal.ID(r.RecordID.Bytes)
		e.RecordID = &id
	}
	if r.RecordCount.Valid {
		n := r.RecordCount.Int64
		e.RecordCount = &n
	}
	return e
}

// Checkpoint reads every lane's head, and the database's name and clock,
// in one statement (one snapshot): `fieldseal audit checkpoint`.
func (a *Admin) Checkpoint(ctx context.Context) (fieldseal.Checkpoint, error) {
	rows, err := newQueries(a.db).ListAuditHeadsForCheckpoint(ctx)
	if err != nil {
		return fieldseal.Checkpoint{}, err
	}
	cp := fieldseal.Checkpoint{Version: 1, Heads: []fieldseal.CheckpointHead{}}
	var at time.Time
	if len(rows) == 0 {
		// An empty trail: no row to carry the name and the time.
		if err := a.db.QueryRow(ctx, `SELECT current_database(), now()`).Scan(&cp.Database, &at); err != nil {
			return cp, err
		}
	}
	for _, r := range rows {
		cp.Database, at = r.Database, r.At
		cp.Heads = append(cp.Heads, fieldseal.CheckpointHead{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq, Hash: hex.EncodeToString(r.Hash)})
	}
	cp.At = at.UTC().Format(time.RFC3339Nano)
	return cp, nil
}

// CheckCheckpoint reports every entry cp names that is no longer in its
// chain as it was: gone (a tail cut after the checkpoint, even with its
// head moved back to match) or with another hash (rewritten). An entry
// archived since is looked up with archived (the archives given to
// verify); one archived in none of them cannot be checked, and is
// reported as such.
func (a *Admin) CheckCheckpoint(ctx context.Context, cp fieldseal.Checkpoint, archived func(subject string, lane int16, seq int64) (hash string, ok bool)) ([]fieldseal.AuditBreak, error) {
	var database string
	if err := a.db.QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
		return nil, err
	}
	if cp.Database != database {
		return nil, fmt.Errorf("the checkpoint is of database %q, not %q", cp.Database, database)
	}
	var p sqlc.ListCheckpointedEntriesParams
	want := map[chain]string{}
	for _, h := range cp.Heads {
		p.Subjects, p.Lanes, p.Seqs = append(p.Subjects, h.Subject), append(p.Lanes, h.Lane), append(p.Seqs, h.Seq)
		want[chain{h.Subject, h.Lane}] = h.Hash
	}
	rows, err := newQueries(a.db).ListCheckpointedEntries(ctx, p)
	if err != nil {
		return nil, err
	}
	starts, err := chainStarts(ctx, newQueries(a.db), "")
	if err != nil {
		return nil, err
	}
	var breaks []fieldseal.AuditBreak
	for _, r := range rows {
		wantHash := want[chain{r.Subject, r.Lane}]
		start, wasArchived := starts[chain{r.Subject, r.Lane}]
		wasArchived = wasArchived && r.Seq < start.Seq
		if r.Hash == nil && wasArchived {
			got, ok := archived(r.Subject, r.Lane, r.Seq)
			switch {
			case !ok:
				breaks = append(breaks, fieldseal.AuditBreak{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq,
					Problem: fmt.Sprintf("the entry checkpointed at %s has been archived (the chain starts at entry %d in the database): give its archive with --archive to check it", cp.At, start.Seq)})
			case got != wantHash:
				breaks = append(breaks, fieldseal.AuditBreak{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq,
					Problem: fmt.Sprintf("the archived entry's hash is not the one checkpointed at %s: it was rewritten", cp.At)})
			}
			continue
		}
		switch got := hex.EncodeToString(r.Hash); {
		case r.Hash == nil:
			breaks = append(breaks, fieldseal.AuditBreak{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq,
				Problem: fmt.Sprintf("the entry checkpointed at %s is gone: the chain was cut after the checkpoint", cp.At)})
		case got != wantHash:
			breaks = append(breaks, fieldseal.AuditBreak{Subject: r.Subject, Lane: r.Lane, Seq: r.Seq,
				Problem: fmt.Sprintf("the entry's hash is not the one checkpointed at %s: it was rewritten", cp.At)})
		}
	}
	return breaks, nil
}
