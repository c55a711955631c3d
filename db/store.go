package db

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fieldseal/fieldseal"
)

// Store runs fieldseal's queries over a connection pool of the app role.
type Store struct {
	pool     *pgxpool.Pool
	throttle Throttle
	// OnAudit, if not nil, is told of every audit entry committed: its
	// action and outcome. For metrics. Set before the Store is used.
	OnAudit func(action, outcome string)
}

// NewStore returns a Store over pool that throttles wrong keys as t says.
func NewStore(pool *pgxpool.Pool, t Throttle) (*Store, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &Store{pool: pool, throttle: t}, nil
}

// inTx runs fn in one transaction that first sets the subject for
// row-level security, with no audit entry of its own (fn appends what it
// must): workTx with nothing to audit. fn's error rolls it back.
func (s *Store) inTx(ctx context.Context, subject string, fn func(q *Queries) error) error {
	return s.inTxWith(ctx, subject, pgx.TxOptions{}, fn)
}

// inTxWith is inTx with transaction options.
func (s *Store) inTxWith(ctx context.Context, subject string, opts pgx.TxOptions, fn func(q *Queries) error) error {
	return s.workTx(ctx, fieldseal.Caller{Subject: subject}, &auditNote{quiet: true}, false, opts, work{then: fn})
}

// requireKey answers whether key is the subject's current key, holding the
// verifier row until the transaction ends. A subject with no verifier has
// never written: ENOTFOUND.
func requireKey(ctx context.Context, q *Queries, key fieldseal.Key) error {
	ok, err := q.CheckKey(ctx, key.Passphrase())
	if errors.Is(err, pgx.ErrNoRows) {
		return fieldseal.Errorf(fieldseal.ENOTFOUND, "no such record")
	}
	if err != nil {
		return err
	}
	if !ok {
		return errWrongKey
	}
	return nil
}

var errWrongKey = fieldseal.Errorf(fieldseal.EWRONGKEY, "this key is not the subject's current key")
