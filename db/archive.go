package db

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// ArchiveResult is what `fieldseal audit archive` moved.
type ArchiveResult struct {
	Chains  int
	Entries int64
}

// ErrTrailBroken is returned by Admin.Archive when an entry it would
// archive does not verify: then nothing is archived.
var ErrTrailBroken = errors.New("the audit trail is broken")

// Archive moves every entry older than before out of the database,
// over an admin connection (a superuser, or a fieldseal_owner member): in
// one REPEATABLE READ transaction it writes each chain's entries up to its
// newest entry older than before to w (a header line, then one entry a
// line with its hashes, in chain order), verifying each as it goes (its
// hash, and its link to the one before, from the chain's recorded start)
// and refusing the whole archive at the first break; calls sync (which
// must make w durable); and only then deletes those entries and records
// where each chain now starts, and commits. It reads only what it
// archives, so its cost follows the archive, not the trail.
// Appends go on meanwhile: they touch only the heads and newer entries.
// On any error nothing is deleted.
func (a *Admin) Archive(ctx context.Context, before time.Time, w io.Writer, sync func() error) (ArchiveResult, error) {
	tx, err := a.begin(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return ArchiveResult{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	q := newQueries(tx)
	if _, err := tx.Exec(ctx, enableAuditArchiving); err != nil {
		return ArchiveResult{}, err
	}
	cuts, err := q.ListArchiveCuts(ctx, before)
	if err != nil {
		return ArchiveResult{}, err
	}
	h := fieldseal.ArchiveHeader{Format: fieldseal.ArchiveFormat, Before: before.UTC().Format(time.RFC3339Nano), Chains: []fieldseal.ArchiveChain{}}
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT current_database(), now()`).Scan(&h.Database, &now); err != nil {
		return ArchiveResult{}, err
	}
	h.CreatedAt = now.UTC().Format(time.RFC3339Nano)
	for _, c := range cuts {
		h.Chains = append(h.Chains, fieldseal.ArchiveChain{Subject: c.Subject, Lane: c.Lane, FirstSeq: c.FirstSeq,
			PrevHash: hex.EncodeToString(c.FirstPrevHash), LastSeq: c.LastSeq, LastHash: hex.EncodeToString(c.LastHash)})
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return ArchiveResult{}, err
	}
	res := ArchiveResult{Chains: len(cuts)}
	for _, c := range cuts {
		w := fieldseal.StartChain(c.Subject, c.Lane, c.FirstSeq, c.FirstPrevHash)
		for {
			rows, err := q.ListChainEntries(ctx, sqlc.ListChainEntriesParams{Subject: c.Subject, Lane: c.Lane, AfterSeq: w.Next - 1, LastSeq: c.LastSeq, MaxRows: verifyPageSize})
			if err != nil {
				return res, err
			}
			for _, r := range rows {
				if _, problem := step(&w, r); problem != "" {
					return res, fmt.Errorf("%w (subject %q lane %d at entry %d: %s): nothing was archived", ErrTrailBroken, c.Subject, c.Lane, r.Seq, problem)
				}
				if err := enc.Encode(fieldseal.ArchivedEntry{AuditEvent: chainEvent(r), PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash)}); err != nil {
					return res, err
				}
				res.Entries++
			}
			if len(rows) < verifyPageSize {
				break
			}
		}
		if !w.EndsAt(c.LastSeq, c.LastHash) {
			return res, fmt.Errorf("%w (subject %q lane %d: its entries end at %d, not %d): nothing was archived", ErrTrailBroken, c.Subject, c.Lane, w.Next-1, c.LastSeq)
		}
	}
	if err := sync(); err != nil {
		return res, fmt.Errorf("the archive could not be made durable, so nothing was deleted: %w", err)
	}
	for _, c := range cuts {
		n, err := q.DeleteArchivedEntries(ctx, sqlc.DeleteArchivedEntriesParams{Subject: c.Subject, Lane: c.Lane, LastSeq: c.LastSeq})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			n, err = 0, nil
		}
		if err != nil {
			return res, err
		}
		switch want := c.LastSeq - c.FirstSeq + 1; {
		case n == 0: // no DELETE privilege, or row-level security let none through
			return res, errors.New("this role may not delete audit entries: run the archive as a superuser or a member of fieldseal_owner; nothing was deleted")
		case n != want:
			return res, fmt.Errorf("db: %d entries of subject %q lane %d deleted, %d archived: nothing was deleted", n, c.Subject, c.Lane, want)
		}
		if err := q.MoveChainStart(ctx, sqlc.MoveChainStartParams{Subject: c.Subject, Lane: c.Lane, Seq: c.LastSeq + 1, PrevHash: c.LastHash}); err != nil {
			return res, err
		}
	}
	return res, tx.Commit(ctx)
}

// enableAuditArchiving lets the archive's transaction read every entry
// and delete the archived ones (as a fieldseal_owner member: migration
// 00017's policy), on every node of a Citus cluster too: SET LOCAL, which
// Citus sends on to the workers when citus.propagate_set_commands is
// 'local' (on one PostgreSQL that setting is a placeholder nothing reads).
const enableAuditArchiving = `SET LOCAL citus.propagate_set_commands = 'local'; ` +
	`SET LOCAL fieldseal.audit_reader = 'on'; SET LOCAL fieldseal.audit_archive = 'on'`

// ChainStarts is the database's name and where each archived chain
// starts in it (FirstSeq and PrevHash): for `fieldseal audit verify
// --archive`, which checks that the newest archive of each chain ends
// right before it.
func (a *Admin) ChainStarts(ctx context.Context) (string, []fieldseal.ArchiveChain, error) {
	var database string
	if err := a.db.QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
		return "", nil, err
	}
	rows, err := newQueries(a.db).ListAuditChainStarts(ctx, "")
	out := make([]fieldseal.ArchiveChain, len(rows))
	for i, r := range rows {
		out[i] = fieldseal.ArchiveChain{Subject: r.Subject, Lane: r.Lane, FirstSeq: r.Seq, PrevHash: hex.EncodeToString(r.PrevHash)}
	}
	return database, out, err
}
