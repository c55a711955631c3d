package db

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// Usage reads how tokens were used between since and until, per subject
// and per token, with each subject's decrypts over the baseline before
// since scaled to the window's length (`fieldseal audit usage`). Judge
// the report to flag what looks wrong. In one snapshot.
func (a *Admin) Usage(ctx context.Context, since, until time.Time, baseline time.Duration) (fieldseal.UsageReport, error) {
	rep := fieldseal.UsageReport{Since: since, Until: until, Subjects: []fieldseal.SubjectUsage{}, Tokens: []fieldseal.TokenUsage{}}
	err := a.Snapshot(ctx, func() error {
		q := newQueries(a.db)
		subjects, err := q.UsageBySubject(ctx, sqlc.UsageBySubjectParams{Since: since, BaselineSince: since.Add(-baseline), Until: until})
		if err != nil {
			return err
		}
		scale := 0.0 // the baseline's decrypts in a window's length
		if baseline > 0 {
			scale = until.Sub(since).Seconds() / baseline.Seconds()
		}
		for _, s := range subjects {
			rep.Subjects = append(rep.Subjects, fieldseal.SubjectUsage{Subject: s.Subject, Tokens: s.Tokens, BaselineDecrypts: float64(s.BaselineDecrypts) * scale,
				Use: fieldseal.Use{Requests: s.Requests, Decrypts: s.Decrypts, Refusals: s.Refusals, WrongKeys: s.WrongKeys, Addresses: s.Addresses, FirstSeen: s.FirstSeen, LastSeen: s.LastSeen}})
		}
		tokens, err := q.UsageByToken(ctx, sqlc.UsageByTokenParams{Since: since, Until: until})
		if err != nil {
			return err
		}
		for _, t := range tokens {
			rep.Tokens = append(rep.Tokens, fieldseal.TokenUsage{Subject: t.Subject, TokenID: t.TokenID, ClientID: t.ClientID, UsedAfterRevocation: t.UsedAfterRevocation,
				Use: fieldseal.Use{Requests: t.Requests, Decrypts: t.Decrypts, Refusals: t.Refusals, WrongKeys: t.WrongKeys, Addresses: t.Addresses, FirstSeen: t.FirstSeen, LastSeen: t.LastSeen}})
		}
		return nil
	})
	return rep, err
}

// RevokeUsed revokes the token t (by its jti, until expires) and appends
// the revocation, with why, to the audit chain of the subject t was used
// for, in one transaction: `fieldseal audit usage --revoke`.
func (a *Admin) RevokeUsed(ctx context.Context, t fieldseal.TokenUsage, expires time.Time) error {
	tx, err := a.begin(ctx, pgx.TxOptions{})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	q := newQueries(tx)
	// The entry's subject, for the audit trigger wherever it runs: SET
	// LOCAL reaches a Citus cluster's workers (citus.go), and is the
	// transaction's own setting on one PostgreSQL.
	for _, set := range []string{"SET LOCAL citus.propagate_set_commands = 'local'", "SET LOCAL fieldseal.subject = " + quote(t.Subject)} {
		if _, err := tx.Exec(ctx, set); err != nil {
			return err
		}
	}
	if err := q.RevokeTokenID(ctx, sqlc.RevokeTokenIDParams{Jti: t.TokenID, ExpiresAt: expires}); err != nil {
		return err
	}
	if err := q.AppendTokenRevocation(ctx, sqlc.AppendTokenRevocationParams{TokenID: t.TokenID, Reason: strings.Join(t.Flags, ",")}); err != nil {
		return err
	}
	if err := q.NotifyRevocations(ctx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
