package db

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
)

// VerifyKey implements fieldseal.KeyService.
func (s *Store) VerifyKey(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key) error {
	return s.do(ctx, caller, &auditNote{action: fieldseal.ActionVerify}, true, pgx.TxOptions{}, func(q *Queries) error {
		if err := requireKey(ctx, q, key); fieldseal.ErrorCode(err) == fieldseal.ENOTFOUND {
			return fieldseal.Errorf(fieldseal.EWRONGKEY, "no key is registered for this subject yet: its first write registers one")
		} else if err != nil {
			return err
		}
		return nil
	})
}

// RotateKey implements fieldseal.KeyService. It is one transaction: a
// crash, a kill or a lost connection before COMMIT leaves every record and
// the verifier under the current key; after it, all under next.
func (s *Store) RotateKey(ctx context.Context, caller fieldseal.Caller, current, next fieldseal.Key) (int64, error) {
	var n int64
	err := s.do(ctx, caller, &auditNote{action: fieldseal.ActionRotate, count: &n}, true, pgx.TxOptions{}, func(q *Queries) error {
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
		if n, err = q.ReencryptRecords(ctx, ReencryptRecordsParams{OldKey: current.Passphrase(), NewKey: next.Passphrase()}); err != nil {
			return err
		}
		return q.ReplaceKeyVerifier(ctx, next.Passphrase())
	})
	return n, err
}

// Ciphertext implements fieldseal.ExportService.
func (s *Store) Ciphertext(ctx context.Context, caller fieldseal.Caller, id fieldseal.ID) (string, error) {
	var armored string
	err := s.do(ctx, caller, &auditNote{action: fieldseal.ActionCiphertext, recordID: &id}, false, pgx.TxOptions{}, func(q *Queries) error {
		var err error
		armored, err = q.GetRecordCiphertext(ctx, uuid(id))
		return err
	})
	return armored, err
}

// exportPageSize bounds the rows held in memory while exporting.
const exportPageSize = 200

// Export implements fieldseal.ExportService: pages of exportPageSize rows
// in one read-only repeatable-read transaction, so memory stays bounded
// and the export is one snapshot however long it streams.
func (s *Store) Export(ctx context.Context, caller fieldseal.Caller, fn func(fieldseal.ExportedRecord) error) error {
	// Repeatable read for one snapshot; not read-only: the audit entry is
	// written in the same transaction.
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead}
	var n int64
	return s.do(ctx, caller, &auditNote{action: fieldseal.ActionExport, count: &n}, false, opts, func(q *Queries) error {
		after := fieldseal.ID{}
		for {
			rows, err := q.ExportRecords(ctx, ExportRecordsParams{After: uuid(after), MaxRows: exportPageSize})
			if err != nil {
				return err
			}
			for _, r := range rows {
				n++
				if err := fn(fieldseal.ExportedRecord{
					ID: r.ID.Bytes, Collection: r.Collection, Public: r.Public, Version: r.Version,
					CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Ciphertext: r.Armored,
				}); err != nil {
					return err
				}
				after = r.ID.Bytes
			}
			if len(rows) < exportPageSize {
				return nil
			}
		}
	})
}

var (
	_ fieldseal.KeyService    = (*Store)(nil)
	_ fieldseal.ExportService = (*Store)(nil)
)
