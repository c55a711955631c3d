package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
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
// crash, a kill or a lost connection before COMMIT leaves every record,
// search tag and the verifier under the current key; after it, all under
// next.
func (s *Store) RotateKey(ctx context.Context, caller fieldseal.Caller, current, next fieldseal.Key, idem *fieldseal.Idempotent[int64]) (int64, error) {
	return run(ctx, s, &tx[int64]{caller: caller, note: auditNote{action: fieldseal.ActionRotate}, usesKey: true, long: true, idem: idem,
		count: func(n int64) int64 { return n }, then: func(q *Queries, _ int64) (int64, error) {
			ok, err := q.LockKeyForRotation(ctx, current.Passphrase())
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, fieldseal.Errorf(fieldseal.EWRONGKEY, "no key is registered for this subject yet: there is nothing to rotate")
			}
			if err != nil {
				return 0, err
			}
			if !ok {
				return 0, errWrongKey
			}
			n, err := s.dialect.reencrypt(ctx, q, current, next)
			if err != nil {
				return 0, err
			}
			// Tags are keyed by the client's key: every one is computed again.
			if err := q.DeleteAllTags(ctx); err != nil {
				return 0, err
			}
			if err := s.dialect.reindexAll(ctx, q, next); err != nil {
				return 0, err
			}
			if err := q.EndIndexing(ctx); err != nil { // every collection's tags are whole now
				return 0, err
			}
			if err := q.ProveKey(ctx, current.Passphrase()); err != nil {
				return 0, err
			}
			replaced, err := q.ReplaceKeyVerifier(ctx, next.Passphrase())
			if err == nil && replaced != 1 {
				return 0, fmt.Errorf("db: the verifier was not replaced although the current key was checked")
			}
			return n, err
		}})
}

var _ fieldseal.KeyService = (*Store)(nil)

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
