package db

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
)

// RevocationChannel is the channel `fieldseal token revoke` notifies.
const RevocationChannel = "fieldseal_revocations"

// Revocations reads the current revocation list, pruning expired entries.
func (s *Store) Revocations(ctx context.Context) ([]fieldseal.Revocation, error) {
	q := New(s.pool)
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

// WatchRevocations keeps apply fed with the revocation list until ctx
// ends: at once, on every notification on RevocationChannel (so a
// revocation reaches every instance within moments), and every interval in
// case a notification was missed while the listening connection was down.
// It reconnects by itself; errors are logged, never fatal.
func (s *Store) WatchRevocations(ctx context.Context, interval time.Duration, apply func([]fieldseal.Revocation), log *slog.Logger) {
	reload := func() {
		list, err := s.Revocations(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("reading the revocation list failed; keeping the last one", "error", err.Error())
			}
			return
		}
		apply(list)
	}
	// listen reads the list as soon as it is LISTENing (and after every
	// reconnection), so nothing revoked before that is missed.
	for ctx.Err() == nil {
		if err := s.listen(ctx, interval, reload); err != nil && ctx.Err() == nil {
			log.Warn("revocation listener lost its connection; reconnecting", "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			reload()
		}
	}
}

// listen holds one connection LISTENing and calls reload on each
// notification and after each quiet interval.
func (s *Store) listen(ctx context.Context, interval time.Duration, reload func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{RevocationChannel}.Sanitize()); err != nil {
		return err
	}
	// The connection has session state now; never hand it back to the pool.
	defer func() { _ = conn.Conn().Close(context.Background()) }()
	reload() // anything revoked between the first read and LISTEN
	for {
		wctx, cancel := context.WithTimeout(ctx, interval)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil, wctx.Err() != nil:
			reload()
		default:
			return err
		}
	}
}

// Revoke records a revocation over an admin connection and notifies every
// instance, in one transaction (NOTIFY is delivered at commit). It is the
// `fieldseal token revoke` command's half of the feature.
func Revoke(ctx context.Context, adminURL string, r fieldseal.Revocation) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		q := New(tx)
		var err error
		if r.JTI != "" {
			err = q.RevokeTokenID(ctx, RevokeTokenIDParams{Jti: r.JTI, ExpiresAt: r.ExpiresAt})
		} else {
			err = q.RevokeSubject(ctx, RevokeSubjectParams{Subject: r.Subject, ExpiresAt: r.ExpiresAt})
		}
		if err != nil {
			return err
		}
		return q.NotifyRevocations(ctx)
	})
}
