package db

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// idempotency is an Idempotency-Key inside the transaction of its work:
// claimed in the first round trip (before the work's statements), its
// answer saved in the last (before COMMIT). A key answered before makes
// the transaction roll back, so the work runs at most once.
type idempotency struct {
	key         string
	fingerprint [32]byte
	answer      func() fieldseal.Answer // the work's answer, once it has run
}

// idempotent returns the idempotency of idem, whose answer is made from
// *result after the work has run; nil when idem is nil.
func idempotent[T any](idem *fieldseal.Idempotent[T], result *T) *idempotency {
	if idem == nil {
		return nil
	}
	return &idempotency{key: idem.Key, fingerprint: idem.Fingerprint, answer: func() fieldseal.Answer { return idem.Answer(*result) }}
}

// claim queues the claim of the key (and the pruning of this subject's
// expired keys) into b: true when claimed, no row when the key has a live
// answer.
func (i *idempotency) claim(ctx context.Context, b *pgx.Batch) *pending[bool] {
	claimed := query(b, func(q *Queries) (bool, error) {
		ok, err := q.ClaimIdempotencyKey(ctx, sqlc.ClaimIdempotencyKeyParams{Key: i.key, Fingerprint: i.fingerprint[:]})
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
func (i *idempotency) answered(ctx context.Context, q *Queries) error {
	row, err := q.GetIdempotencyAnswer(ctx, i.key)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(row.Fingerprint, i.fingerprint[:]) != 1 {
		return fieldseal.Errorf(fieldseal.EIDEMPOTENCYREUSED, "this Idempotency-Key was used for a different request in the last 24 hours")
	}
	a := fieldseal.Answer{Status: int(row.Status), Body: row.Body}
	if err := json.Unmarshal(row.Header, &a.Header); err != nil {
		return fmt.Errorf("db: a stored idempotent answer's header: %w", err)
	}
	return &fieldseal.Replay{Answer: a}
}

// save queues the work's answer into b.
func (i *idempotency) save(ctx context.Context, b *pgx.Batch) error {
	a := i.answer()
	header, err := json.Marshal(a.Header)
	if err != nil {
		return err
	}
	exec(b, func(q *Queries) error {
		return q.SaveIdempotencyAnswer(ctx, sqlc.SaveIdempotencyAnswerParams{Key: i.key, Status: int32(a.Status), Header: header, Body: a.Body})
	})
	return nil
}
