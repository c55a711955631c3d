package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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
		if n, err = s.reencrypt(ctx, q, current, next); err != nil {
			return err
		}
		// Tags are keyed by the client's key: every one is computed again.
		if err := q.DeleteAllTags(ctx); err != nil {
			return err
		}
		if err := s.reindexAll(ctx, q, next); err != nil {
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

// reencrypt puts every record of the subject under next, inside
// PostgreSQL, and returns how many. A record that does not open under
// current (the verified key) is damaged: the rotation is refused (and
// rolls back), naming the damaged records, rather than leave them under a
// key the subject no longer has.
//
// On one PostgreSQL it is one UPDATE. On Citus, whose UPDATE would carry
// both keys written into the worker's statement, a page of records at a
// time is re-encrypted by a SELECT (keys stay parameters) and its new
// ciphertexts written back by an UPDATE (ciphertexts may be logged).
func (s *Store) reencrypt(ctx context.Context, q *Queries, current, next fieldseal.Key) (int64, error) {
	if !s.citus {
		n, err := q.ReencryptRecords(ctx, ReencryptRecordsParams{OldKey: current.Passphrase(), NewKey: next.Passphrase()})
		if err != nil {
			return 0, err
		}
		total, err := q.CountRecords(ctx)
		if err != nil || n == total {
			return n, err
		}
		rows, err := q.ListDamagedRecords(ctx, current.Passphrase())
		if err != nil {
			return 0, err
		}
		return 0, damaged(ids(rows)...)
	}
	var n int64
	var bad []fieldseal.ID
	after := pgtype.UUID{Valid: true}
	for {
		page, err := q.ReencryptPage(ctx, ReencryptPageParams{OldKey: current.Passphrase(), NewKey: next.Passphrase(), After: after, MaxRows: reencryptPageRows})
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			break
		}
		written := make([]pgtype.UUID, 0, len(page))
		secrets := make([][]byte, 0, len(page))
		for _, r := range page {
			if r.Secret == nil {
				bad = appendNamed(bad, fieldseal.ID(r.ID.Bytes))
				continue
			}
			written, secrets = append(written, r.ID), append(secrets, r.Secret)
		}
		after = page[len(page)-1].ID
		if len(bad) > 0 {
			continue // refused below: only the damaged ones are still wanted
		}
		m, err := q.ReplaceSecrets(ctx, ReplaceSecretsParams{Ids: written, Secrets: secrets})
		if err != nil {
			return 0, err
		}
		n += m
	}
	if len(bad) > 0 {
		return 0, damaged(bad...)
	}
	return n, nil
}

// reencryptPageRows is how many records a Citus rotation re-encrypts per
// round trip; their ciphertexts are held in memory meanwhile.
const reencryptPageRows = 1000

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
