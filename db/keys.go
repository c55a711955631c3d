package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// VerifyKey implements fieldseal.KeyService.
func (s *Store) VerifyKey(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key) error {
	_, err := run(ctx, s, &tx[struct{}]{caller: caller, note: auditNote{action: fieldseal.ActionVerify}, usesKey: true, then: func(q *Queries, _ struct{}) (struct{}, error) {
		err := requireKey(ctx, q, key)
		if fieldseal.ErrorCode(err) == fieldseal.ENOTFOUND {
			err = fieldseal.Errorf(fieldseal.EWRONGKEY, "no key is registered for this subject yet: its first write registers one")
		}
		return struct{}{}, err
	}})
	return err
}

// RotateKey implements fieldseal.KeyService. It is one transaction: a
// crash, a kill or a lost connection before COMMIT leaves the subject's
// row, every record and search tag as they were; after it, all under
// next. A rewrap writes one row: its time does not grow with the
// subject's records.
func (s *Store) RotateKey(ctx context.Context, caller fieldseal.Caller, current, next fieldseal.Key, reencrypt bool, idem *fieldseal.Idempotent[int64]) (int64, error) {
	return run(ctx, s, &tx[int64]{caller: caller, note: auditNote{action: fieldseal.ActionRotate}, usesKey: true, long: true, idem: idem,
		count: func(n int64) int64 { return n }, then: func(q *Queries, _ int64) (int64, error) {
			held, err := q.LockKeyForRotation(ctx, current.Passphrase())
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, fieldseal.Errorf(fieldseal.EWRONGKEY, "no key is registered for this subject yet: there is nothing to rotate")
			}
			if err != nil {
				return 0, err
			}
			if !held.Matches {
				return 0, errWrongKey
			}
			if held.Layered && !reencrypt {
				wrapped, err := q.RewrapSubjectKey(ctx, sqlc.RewrapSubjectKeyParams{OldKey: current.Passphrase(), NewKey: next.Passphrase()})
				if err != nil {
					return 0, err
				}
				return 0, replaceSubjectKey(ctx, q, current, wrapped)
			}
			return s.replaceKeys(ctx, q, current, next)
		}})
}

// replaceKeys gives the subject a new subject key, wrapped under next,
// and re-encrypts every record and tag under its data keys: a rotation
// with reencrypt, or the first of a subject of the old form.
func (s *Store) replaceKeys(ctx context.Context, q *Queries, current, next fieldseal.Key) (int64, error) {
	wrapped, err := q.NewSubjectKey(ctx, next.Passphrase())
	if err != nil {
		return 0, err
	}
	n, err := s.dialect.reencrypt(ctx, q, current, next, wrapped)
	if err != nil {
		return 0, err
	}
	if err := replaceSubjectKey(ctx, q, current, wrapped); err != nil {
		return 0, err
	}
	// Tags are keyed by the data keys: every one is computed again.
	if err := q.DeleteAllTags(ctx); err != nil {
		return 0, err
	}
	if err := s.dialect.reindexAll(ctx, q, next); err != nil {
		return 0, err
	}
	return n, q.EndIndexing(ctx) // every collection's tags are whole now
}

// replaceSubjectKey gives the subject's row wrapped, proving current.
func replaceSubjectKey(ctx context.Context, q *Queries, current fieldseal.Key, wrapped []byte) error {
	if err := q.ProveKey(ctx, current.Passphrase()); err != nil {
		return err
	}
	replaced, err := q.ReplaceSubjectKey(ctx, wrapped)
	if err == nil && replaced != 1 {
		return fmt.Errorf("db: the subject's key was not replaced although the current key was checked")
	}
	return err
}

var _ fieldseal.KeyService = (*Store)(nil)

// requireKey answers whether key is the subject's current key, holding the
// subject's row until the transaction ends. A subject with no row has
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
