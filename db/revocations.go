package db

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// RevocationChannel is the channel `fieldseal token revoke` notifies.
const RevocationChannel = "fieldseal_revocations"

// readRevocations reads the current revocation list over q, pruning
// expired entries.
func readRevocations(ctx context.Context, q *Queries) ([]fieldseal.Revocation, error) {
	if _, err := q.PruneRevocations(ctx); err != nil {
		return nil, mapError(err)
	}
	rows, err := q.ListRevocations(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	list := make([]fieldseal.Revocation, 0, len(rows))
	for _, r := range rows {
		list = append(list, fieldseal.Revocation{JTI: r.Jti, Subject: r.Subject, RevokedBefore: r.RevokedBefore, ExpiresAt: r.ExpiresAt})
	}
	return list, nil
}

// ListenerName is the application_name of the listening connection, as
// pg_stat_activity shows it.
const ListenerName = "fieldseal revocations"

// PollInterval is how often the revocation list is read when nothing can
// LISTEN: behind a transaction pooler with no direct URL.
const PollInterval = 5 * time.Second

// WatchRevocations keeps apply fed with the revocation list until ctx
// ends: at once, on every notification on RevocationChannel (so a
// revocation reaches every instance within moments), and every interval in
// case a notification was missed. It LISTENs on a connection of its own,
// outside the request pool. When that connection is lost it reconnects
// with capped, jittered exponential backoff, LISTENs again and reads the
// list once; the outage is logged once when it starts and once when it
// ends, and the last list read stays in force meanwhile. Behind a
// transaction pooler with no direct URL it polls every PollInterval.
func (s *Store) WatchRevocations(ctx context.Context, interval time.Duration, apply func([]fieldseal.Revocation), log *slog.Logger) {
	if s.cfg.TransactionPooler && s.cfg.DirectURL == "" {
		s.pollRevocations(ctx, min(interval, PollInterval), apply, log)
		return
	}
	url := s.cfg.URL
	if s.cfg.DirectURL != "" {
		url = s.cfg.DirectURL
	}
	cfg, err := connConfig(url, false, s.cfg.Timeouts)
	if err != nil {
		log.Error("revocation listener: the database URL is not valid; revocations reach this instance only at restart")
		return
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = ListenerName
	var b backoff
	var downSince time.Time
	connected := func() {
		b.reset()
		if !downSince.IsZero() {
			log.Info("revocation listener reconnected", "down_for", time.Since(downSince).Round(time.Millisecond).String())
			downSince = time.Time{}
		}
	}
	for {
		err := listen(ctx, cfg.ConnConfig, interval, apply, connected)
		if ctx.Err() != nil {
			return
		}
		if downSince.IsZero() {
			downSince = time.Now()
			log.Warn("revocation listener lost its connection; reconnecting with backoff (the last revocation list read stays in force)", "error", err.Error())
		} else {
			log.Debug("revocation listener: reconnecting failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.next()):
		}
	}
}

// listen connects, LISTENs, reads the list (anything revoked before
// LISTEN took effect), tells connected, then reads it again on each
// notification and after each quiet interval, until the connection fails
// (its error) or ctx ends (nil).
func listen(ctx context.Context, cfg *pgx.ConnConfig, interval time.Duration, apply func([]fieldseal.Revocation), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{RevocationChannel}.Sanitize()); err != nil {
		return err
	}
	q := newQueries(conn)
	for first := true; ; first = false {
		list, err := readRevocations(ctx, q)
		if err != nil {
			return err
		}
		apply(list)
		if first {
			connected()
		}
		wctx, cancel := context.WithTimeout(ctx, interval)
		_, err = conn.WaitForNotification(wctx)
		quiet := errors.Is(err, context.DeadlineExceeded) && wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil, quiet && !conn.IsClosed():
			// a notification, or a quiet interval: read the list again
		default:
			return err
		}
	}
}

// pollRevocations reads the list every interval on the health connection.
func (s *Store) pollRevocations(ctx context.Context, interval time.Duration, apply func([]fieldseal.Revocation), log *slog.Logger) {
	failing := false
	for {
		list, err := readRevocations(ctx, newQueries(s.health))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			log.Warn("reading the revocation list failed; retrying every poll (the last list read stays in force)", "error", err.Error())
		case err == nil:
			if failing {
				log.Info("reading the revocation list works again")
			}
			failing = false
			apply(list)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// backoff is capped exponential backoff with jitter: waits grow from
// 100 ms to 30 s, each drawn from the upper half of its step, so
// instances that lost the same database do not reconnect in lockstep.
type backoff struct{ step time.Duration }

const (
	backoffFirst = 100 * time.Millisecond
	backoffCap   = 30 * time.Second
)

func (b *backoff) next() time.Duration {
	if b.step == 0 {
		b.step = backoffFirst
	}
	d := b.step/2 + rand.N(b.step/2+1)
	b.step = min(2*b.step, backoffCap)
	return d
}

func (b *backoff) reset() { b.step = 0 }

// Revoke records a revocation and notifies every
// instance, in one transaction (NOTIFY is delivered at commit). It is the
// `fieldseal token revoke` command's half of the feature.
func (a *Admin) Revoke(ctx context.Context, r fieldseal.Revocation) error {
	tx, err := a.begin(ctx, pgx.TxOptions{})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	q := newQueries(tx)
	if r.JTI != "" {
		err = q.RevokeTokenID(ctx, sqlc.RevokeTokenIDParams{Jti: r.JTI, ExpiresAt: r.ExpiresAt})
	} else {
		err = q.RevokeSubject(ctx, sqlc.RevokeSubjectParams{Subject: r.Subject, ExpiresAt: r.ExpiresAt})
	}
	if err != nil {
		return err
	}
	if err := q.NotifyRevocations(ctx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
