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
	return s.run(ctx, &tx{caller: caller, note: auditNote{action: fieldseal.ActionVerify}, usesKey: true, then: func(q *Queries) error {
		if err := requireKey(ctx, q, key); fieldseal.ErrorCode(err) == fieldseal.ENOTFOUND {
			return fieldseal.Errorf(fieldseal.EWRONGKEY, "no key is registered for this subject yet: its first write registers one")
		} else if err != nil {
			return err
		}
		return nil
	}})
}

// RotateKey implements fieldseal.KeyService. It is one transaction: a
// crash, a kill or a lost connection before COMMIT leaves every record,
// search tag and the verifier under the current key; after it, all under
// next.
func (s *Store) RotateKey(ctx context.Context, caller fieldseal.Caller, current, next fieldseal.Key, idem *fieldseal.Idempotent[int64]) (int64, error) {
	var n int64
	err := s.run(ctx, &tx{caller: caller, note: auditNote{action: fieldseal.ActionRotate, count: &n}, usesKey: true, long: true, idem: idempotent(idem, &n), then: func(q *Queries) error {
		ok, err := q.LockKeyForRotation(ctx, current.Passphrase())
		if errors.Is(err, pgx.ErrNoRows) {
			return fieldseal.Errorf(fieldseal.EWRONGKEY, "no key is registered for this subject yet: there is nothing to rotate")
		}
		if err != nil {
			return err
		}
		if !ok {
			return errWrongKey
		}
		if n, err = s.dialect.reencrypt(ctx, q, current, next); err != nil {
			return err
		}
		// Tags are keyed by the client's key: every one is computed again.
		if err := q.DeleteAllTags(ctx); err != nil {
			return err
		}
		if err := s.dialect.reindexAll(ctx, q, next); err != nil {
			return err
		}
		if err := q.EndIndexing(ctx); err != nil { // every collection's tags are whole now
			return err
		}
		if err := q.ProveKey(ctx, current.Passphrase()); err != nil {
			return err
		}
		replaced, err := q.ReplaceKeyVerifier(ctx, next.Passphrase())
		if err == nil && replaced != 1 {
			return fmt.Errorf("db: the verifier was not replaced although the current key was checked")
		}
		return err
	}})
	return n, err
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
