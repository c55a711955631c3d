package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
)

// CreateRecord implements fieldseal.RecordService. Registering the key (a
// subject's first write does), checking it and inserting go in the first
// round trip with BEGIN and the throttle check; the audit entry and COMMIT
// in the second. The insert runs even when the key turns out wrong or the
// caller throttled (it tries no key: encrypting with any key raises
// nothing in PostgreSQL's log); the transaction then rolls back with it.
func (s *Store) CreateRecord(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, id fieldseal.ID, in fieldseal.RecordInput, idem *fieldseal.Idempotent[fieldseal.Record]) (fieldseal.Record, error) {
	var rec fieldseal.Record
	var matches bool
	var row CreateRecordRow
	var createErr error
	err := s.doWork(ctx, caller, &auditNote{action: fieldseal.ActionCreate, recordID: &id}, true, pgx.TxOptions{}, work{
		idem: idempotent(idem, &rec),
		first: func(b *pgx.Batch) {
			queue(b, func(q *Queries) error {
				_, err := q.RegisterKeyVerifier(ctx, key.Passphrase())
				return err
			})
			queue(b, func(q *Queries) (err error) {
				matches, err = q.CheckKey(ctx, key.Passphrase())
				return err
			})
			queue(b, func(q *Queries) error {
				row, createErr = q.CreateRecord(ctx, CreateRecordParams{
					ID: uuid(id), Collection: in.Collection, Public: in.Public, Secret: string(in.Secret), Key: key.Passphrase(),
				})
				return createErr
			})
		},
		then: func(*Queries) error {
			switch {
			case !matches:
				return errWrongKey
			case createErr != nil: // only no row reaches here
				return fmt.Errorf("db: the record's insert returned no row")
			}
			rec = record(row.ID, row.Collection, row.Public, nil, row.Version, row.CreatedAt, row.UpdatedAt)
			return nil
		},
	})
	return rec, err
}

// GetRecord implements fieldseal.RecordService in one round trip: BEGIN,
// subject, throttle check, the read, its audit entry (appended only if the
// read decrypted) and COMMIT.
func (s *Store) GetRecord(ctx context.Context, caller fieldseal.Caller, id fieldseal.ID, key fieldseal.Key) (fieldseal.Record, error) {
	var rec fieldseal.Record
	var rowErr error
	note := &auditNote{action: fieldseal.ActionRead, recordID: &id}
	if key.IsZero() {
		note.quiet = true // metadata only: nothing decrypted
		var row GetRecordRow
		err := s.doWork(ctx, caller, note, false, pgx.TxOptions{}, work{
			first: func(b *pgx.Batch) {
				queue(b, func(q *Queries) error {
					row, rowErr = q.GetRecord(ctx, uuid(id))
					return rowErr
				})
			},
			then: func(*Queries) error {
				if rowErr != nil {
					return rowErr // no rows: not found
				}
				rec = record(row.ID, row.Collection, row.Public, nil, row.Version, row.CreatedAt, row.UpdatedAt)
				return nil
			},
			commitFirst: true,
		})
		return rec, err
	}
	var row GetRecordDecryptedRow
	err := s.doWork(ctx, caller, note, true, pgx.TxOptions{}, work{
		first: func(b *pgx.Batch) {
			queue(b, func(q *Queries) error {
				row, rowErr = q.GetRecordDecrypted(ctx, GetRecordDecryptedParams{ID: uuid(id), Key: key.Passphrase()})
				return rowErr
			})
		},
		then: func(*Queries) error {
			switch {
			case rowErr != nil:
				return rowErr // no rows: not found
			case !row.KeyMatches:
				return errWrongKey
			}
			rec = record(row.ID, row.Collection, row.Public, &row.Secret, row.Version, row.CreatedAt, row.UpdatedAt)
			return nil
		},
		commitFirst: true,
	})
	return rec, err
}

// ListRecords implements fieldseal.RecordService. With the key, the key
// check and the page (which decrypts nothing unless the key is the
// subject's) go in one round trip.
func (s *Store) ListRecords(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, opts fieldseal.ListOptions) (fieldseal.Page, error) {
	page := fieldseal.Page{Items: []fieldseal.Record{}}
	var count int64
	note := &auditNote{action: fieldseal.ActionList, count: &count, quiet: key.IsZero()}
	// A page of every collection is a scan of the subject's records in id
	// order, whatever the parameters: its cached generic plan is right,
	// and planning each page anew cost more than reading it. A collection
	// filter keeps custom plans, which use the (subject, collection, id)
	// index.
	genericPlans := func(b *pgx.Batch) {
		if opts.Collection == "" {
			queue(b, func(q *Queries) error { return q.UseGenericPlans(ctx) })
		}
	}
	var w work
	if key.IsZero() {
		w.commitFirst = true // nothing decrypted, nothing to audit
		w.first = func(b *pgx.Batch) {
			genericPlans(b)
			queue(b, func(q *Queries) error {
				rows, err := q.ListRecords(ctx, ListRecordsParams{
					After: uuid(opts.After), Collection: opts.Collection, MaxRows: int32(opts.Limit),
				})
				for _, r := range rows {
					page.Items = append(page.Items, record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt))
				}
				return err
			})
		}
	} else {
		var matches bool
		var checkErr error
		var rows []ListRecordsDecryptedRow
		w.first = func(b *pgx.Batch) {
			genericPlans(b)
			queue(b, func(q *Queries) error {
				matches, checkErr = q.CheckKey(ctx, key.Passphrase())
				return checkErr
			})
			queue(b, func(q *Queries) (err error) {
				rows, err = q.ListRecordsDecrypted(ctx, ListRecordsDecryptedParams{
					Key: key.Passphrase(), After: uuid(opts.After), Collection: opts.Collection, MaxRows: int32(opts.Limit),
				})
				return err
			})
		}
		w.then = func(*Queries) error {
			switch {
			case errors.Is(checkErr, pgx.ErrNoRows):
				return nil // no verifier: a subject that never wrote has no records
			case checkErr != nil:
				return checkErr
			case !matches:
				return errWrongKey
			}
			for _, r := range rows {
				page.Items = append(page.Items, record(r.ID, r.Collection, r.Public, &r.Secret, r.Version, r.CreatedAt, r.UpdatedAt))
			}
			count = int64(len(page.Items))
			return nil
		}
	}
	if err := s.doWork(ctx, caller, note, !key.IsZero(), pgx.TxOptions{}, w); err != nil {
		return fieldseal.Page{}, err
	}
	if len(page.Items) == opts.Limit && opts.Limit > 0 {
		page.Next = page.Items[len(page.Items)-1].ID
	}
	return page, nil
}

// ReplaceRecord implements fieldseal.RecordService.
func (s *Store) ReplaceRecord(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, id fieldseal.ID, match []int64, in fieldseal.RecordInput) (fieldseal.Record, error) {
	var rec fieldseal.Record
	err := s.do(ctx, caller, &auditNote{action: fieldseal.ActionReplace, recordID: &id}, true, pgx.TxOptions{}, func(q *Queries) error {
		if err := requireKey(ctx, q, key); err != nil {
			// Another subject's record is "not found" whatever the key.
			if _, nfErr := q.GetRecord(ctx, uuid(id)); nfErr != nil {
				return nfErr
			}
			return err
		}
		row, err := q.ReplaceRecord(ctx, ReplaceRecordParams{
			Collection: in.Collection, Public: in.Public, Secret: string(in.Secret), Key: key.Passphrase(),
			ID: uuid(id), CheckVersion: match != nil, Versions: match,
		})
		if err != nil {
			return versionOrNotFound(ctx, q, id, err)
		}
		rec = record(row.ID, row.Collection, row.Public, nil, row.Version, row.CreatedAt, row.UpdatedAt)
		return nil
	})
	return rec, err
}

// DeleteRecord implements fieldseal.RecordService.
func (s *Store) DeleteRecord(ctx context.Context, caller fieldseal.Caller, id fieldseal.ID, match []int64) error {
	return s.do(ctx, caller, &auditNote{action: fieldseal.ActionDelete, recordID: &id}, false, pgx.TxOptions{}, func(q *Queries) error {
		n, err := q.DeleteRecord(ctx, DeleteRecordParams{ID: uuid(id), CheckVersion: match != nil, Versions: match})
		if err != nil {
			return err
		}
		if n == 0 {
			return versionOrNotFound(ctx, q, id, nil)
		}
		return nil
	})
}

// versionOrNotFound tells why a conditional write touched no row.
func versionOrNotFound(ctx context.Context, q *Queries, id fieldseal.ID, err error) error {
	if err != nil && fieldseal.ErrorCode(mapError(err)) != fieldseal.ENOTFOUND {
		return err
	}
	if _, err := q.GetRecord(ctx, uuid(id)); err != nil {
		return err // ENOTFOUND after mapping
	}
	return fieldseal.Errorf(fieldseal.ECONFLICT, "the record has changed: its current version does not match If-Match")
}

func uuid(id fieldseal.ID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

func record(id pgtype.UUID, collection string, public []byte, secret *string, version int64, created, updated time.Time) fieldseal.Record {
	r := fieldseal.Record{
		ID: id.Bytes, Collection: collection, Public: json.RawMessage(public),
		Version: version, CreatedAt: created, UpdatedAt: updated,
	}
	if secret != nil {
		r.Secret = json.RawMessage(*secret)
	}
	return r
}

var _ fieldseal.RecordService = (*Store)(nil)
