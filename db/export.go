package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// Ciphertext implements fieldseal.ExportService.
func (s *Store) Ciphertext(ctx context.Context, caller fieldseal.Caller, id fieldseal.ID) (fieldseal.Ciphertext, error) {
	return run(ctx, s, &tx[fieldseal.Ciphertext]{caller: caller, note: auditNote{action: fieldseal.ActionCiphertext, recordID: &id},
		then: func(q *Queries, _ fieldseal.Ciphertext) (fieldseal.Ciphertext, error) {
			r, err := q.GetRecordCiphertext(ctx, uuid(id))
			return fieldseal.Ciphertext{Armored: r.Armored, Collection: r.Collection, KeyVersion: r.KeyVersion, SubjectKey: subjectKey(r.KeyVersion, r.WrappedKey)}, err
		}})
}

// Export implements fieldseal.ExportService: one statement, so one
// snapshot, whose rows are handed to fn as they arrive from PostgreSQL, so
// memory stays bounded however many records there are. The transaction is
// READ COMMITTED: the audit entry appended at its end must see entries the
// subject committed while the export streamed.
//
// An export holds its connection while fn writes to the client, so a
// client that reads slowly holds it too: at most a quarter of the pool
// streams exports at once (others answer EUNAVAILABLE with Retry-After),
// the statement is bounded by Timeouts.Long, and fn is expected to bound
// each write (handlers/export.go does).
func (s *Store) Export(ctx context.Context, caller fieldseal.Caller, fn func(fieldseal.ExportedRecord) error) error {
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		return &fieldseal.Error{Code: fieldseal.EUNAVAILABLE, RetryAfter: 5 * time.Second,
			Message: fmt.Sprintf("%d exports are running, as many as this server runs at once; try again shortly", cap(s.exports))}
	}
	_, err := run(ctx, s, &tx[int64]{caller: caller, note: auditNote{action: fieldseal.ActionExport}, long: true,
		count: func(n int64) int64 { return n }, then: func(q *Queries, _ int64) (int64, error) {
			rows, err := q.db.Query(ctx, sqlc.ExportRecords)
			if err != nil {
				return 0, err
			}
			var n int64
			var r sqlc.ExportRecordsRow
			_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Collection, &r.Public, &r.Version, &r.CreatedAt, &r.UpdatedAt, &r.Armored, &r.KeyVersion, &r.WrappedKey}, func() error {
				n++
				if err := fn(fieldseal.ExportedRecord{
					ID: r.ID.Bytes, Collection: r.Collection, Public: r.Public, Version: r.Version,
					CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Ciphertext: r.Armored,
					KeyVersion: r.KeyVersion, SubjectKey: subjectKey(r.KeyVersion, r.WrappedKey),
				}); err != nil {
					return &callerError{err}
				}
				return nil
			})
			return n, err
		}})
	return err
}

var _ fieldseal.ExportService = (*Store)(nil)

// subjectKey is the wrapped subject key a record of key version v needs
// to be opened: none for version 0 (the client key opens it).
func subjectKey(v int32, wrapped []byte) []byte {
	if v == 0 {
		return nil
	}
	return wrapped
}
