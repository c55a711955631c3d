package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
)

// AuditBreak is the first broken link of one subject's chain.
type AuditBreak struct {
	Subject string
	Seq     int64 // the entry where the chain breaks
	Problem string
}

// AuditReport is what VerifyAuditTrail found.
type AuditReport struct {
	Entries  int64
	Subjects int64
	Breaks   []AuditBreak // empty when every chain is intact
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
func VerifyAuditTrail(ctx context.Context, adminURL, subject string, progress func(entries int64)) (AuditReport, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return AuditReport{}, fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	q := New(conn)
	var (
		rep    AuditReport
		cur    string // the subject being walked
		next   int64  // the seq expected next
		prev   []byte // the previous entry's stored hash
		broken bool   // cur's chain already has its first break
		after  = struct {
			subject string
			seq     int64
		}{"", 0}
	)
	zero := make([]byte, sha256.Size)
	for {
		rows, err := q.ListAuditChainPage(ctx, ListAuditChainPageParams{
			OnlySubject: subject, AfterSubject: after.subject, AfterSeq: after.seq, MaxRows: verifyPageSize,
		})
		if err != nil {
			return rep, err
		}
		for _, r := range rows {
			rep.Entries++
			if r.Subject != cur {
				cur, next, prev, broken = r.Subject, 1, zero, false
				rep.Subjects++
			}
			if !broken {
				if problem := checkLink(r, next, prev); problem != "" {
					rep.Breaks = append(rep.Breaks, AuditBreak{Subject: r.Subject, Seq: min(next, r.Seq), Problem: problem})
					broken = true
				}
			}
			next, prev = r.Seq+1, r.Hash
			after.subject, after.seq = r.Subject, r.Seq
		}
		if progress != nil {
			progress(rep.Entries)
		}
		if len(rows) < verifyPageSize {
			break
		}
	}
	return rep, checkHeads(ctx, q, subject, &rep)
}

// checkHeads compares each chain's newest entry with its head (migration
// 00009), which the trigger moves in the same transaction as each append:
// a chain that is whole but stops short of its head lost its newest
// entries. A chain already broken keeps its first break.
func checkHeads(ctx context.Context, q *Queries, subject string, rep *AuditReport) error {
	mismatches, err := q.ListAuditHeadMismatches(ctx, subject)
	if err != nil {
		return err
	}
	broken := map[string]bool{}
	for _, b := range rep.Breaks {
		broken[b.Subject] = true
	}
	for _, m := range mismatches {
		if broken[m.Subject] {
			continue
		}
		b := AuditBreak{Subject: m.Subject, Seq: m.LastSeq + 1}
		switch {
		case m.LastSeq == 0:
			rep.Subjects++
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
		rep.Breaks = append(rep.Breaks, b)
	}
	slices.SortStableFunc(rep.Breaks, func(a, b AuditBreak) int { return strings.Compare(a.Subject, b.Subject) })
	return nil
}

func checkLink(r ListAuditChainPageRow, wantSeq int64, prev []byte) string {
	switch {
	case r.Seq != wantSeq:
		return fmt.Sprintf("entry %d is missing (the next one is %d): deleted", wantSeq, r.Seq)
	case !bytes.Equal(r.PrevHash, prev):
		return "its prev_hash is not the previous entry's hash: an entry before it was inserted, removed or rewritten"
	case !bytes.Equal(r.Hash, auditHash(prev, r)):
		return "its contents do not match its hash: edited, or written around the chain"
	}
	return ""
}

// auditHash is fieldseal.audit_hash (migration 00007) in Go: SHA-256 of the
// previous hash and the entry's fields joined by the unit separator.
func auditHash(prev []byte, r ListAuditChainPageRow) []byte {
	recordID, count := "", ""
	if r.RecordID.Valid {
		recordID = fieldseal.ID(r.RecordID.Bytes).String()
	}
	if r.RecordCount.Valid {
		count = strconv.FormatInt(r.RecordCount.Int64, 10)
	}
	fields := []string{r.Subject, strconv.FormatInt(r.Seq, 10), strconv.FormatInt(r.At.UnixMicro(), 10),
		r.Action, r.Outcome, recordID, count, r.TokenID, r.ClientID, r.RequestID, r.ClientAddr}
	h := sha256.New()
	h.Write(prev)
	h.Write([]byte(strings.Join(fields, "\x1f")))
	return h.Sum(nil)
}
