package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// CreateRecord implements fieldseal.RecordService: the key's
// registration and check, the insert and the tags in the first round
// trip with BEGIN and the throttle check (on Citus the insert and the
// tags are written after it: dialect.go), the audit entry and COMMIT in
// the second.
func (s *Store) CreateRecord(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, id fieldseal.ID, in fieldseal.RecordInput, idem *fieldseal.Idempotent[fieldseal.Record]) (fieldseal.Record, error) {
	t := &tx[fieldseal.Record]{caller: caller, note: auditNote{action: fieldseal.ActionCreate, recordID: &id}, usesKey: true, idem: idem}
	c := s.create(ctx, &t.first, key, batchParams([]fieldseal.ID{id}, []fieldseal.RecordInput{in}))
	t.answer = func() (fieldseal.Record, error) { return fieldseal.Record{}, c.check() }
	t.then = func(q *Queries, _ fieldseal.Record) (fieldseal.Record, error) {
		recs, err := c.write(ctx, q)
		if err != nil {
			return fieldseal.Record{}, err
		}
		return recs[0], nil
	}
	return run(ctx, s, t)
}

// GetRecord implements fieldseal.RecordService in one round trip: BEGIN,
// subject, throttle check, the read, its audit entry (appended only if the
// read decrypted) and COMMIT.
func (s *Store) GetRecord(ctx context.Context, caller fieldseal.Caller, id fieldseal.ID, key fieldseal.Key) (fieldseal.Record, error) {
	t := &tx[fieldseal.Record]{caller: caller, note: auditNote{action: fieldseal.ActionRead, recordID: &id}, commitFirst: true}
	if key.IsZero() {
		t.note.quiet = true // metadata only: nothing decrypted
		read := query(&t.first, func(q *Queries) (sqlc.GetRecordRow, error) { return q.GetRecord(ctx, uuid(id)) })
		t.answer = func() (fieldseal.Record, error) {
			row, err := read.get()
			if err != nil {
				return fieldseal.Record{}, err // no rows: not found
			}
			return record(row.ID, row.Collection, row.Public, nil, row.Version, row.CreatedAt, row.UpdatedAt), nil
		}
		return run(ctx, s, t)
	}
	t.usesKey, t.note.ifDecrypted = true, true
	read := query(&t.first, func(q *Queries) (sqlc.GetRecordDecryptedRow, error) {
		return q.GetRecordDecrypted(ctx, sqlc.GetRecordDecryptedParams{ID: uuid(id), Key: key.Passphrase()})
	})
	t.answer = func() (fieldseal.Record, error) {
		row, err := read.get()
		switch {
		case err != nil:
			return fieldseal.Record{}, err // no rows: not found
		case !row.KeyMatches:
			return fieldseal.Record{}, errWrongKey
		case row.Damaged || !fieldseal.IsObject([]byte(row.Secret)):
			return fieldseal.Record{}, damaged(id)
		}
		return record(row.ID, row.Collection, row.Public, &row.Secret, row.Version, row.CreatedAt, row.UpdatedAt), nil
	}
	return run(ctx, s, t)
}

// ListRecords implements fieldseal.RecordService. With the key, the key
// check and the page (which decrypts nothing unless the key is the
// subject's) go in one round trip.
func (s *Store) ListRecords(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, opts fieldseal.ListOptions) (fieldseal.Page, error) {
	t := &tx[[]fieldseal.Record]{caller: caller, note: auditNote{action: fieldseal.ActionList, quiet: key.IsZero()}, usesKey: !key.IsZero(),
		count: func(items []fieldseal.Record) int64 { return int64(len(items)) }}
	// A page of every collection is a scan of the subject's records in id
	// order, whatever the parameters: its cached generic plan is right,
	// and planning each page anew cost more than reading it. Without a
	// key, a collection filter keeps custom plans, which use the (subject,
	// collection, id) index; with the key every plan is generic (see
	// SetSubject), and the filter has a statement of its own.
	switch {
	case len(opts.Secret) > 0:
		if key.IsZero() || opts.Collection == "" {
			return fieldseal.Page{}, fmt.Errorf("db: secret filters need the key and a collection")
		}
		t.answer = search(ctx, &t.first, key, opts)
	case len(opts.Public) > 0:
		t.commitFirst = key.IsZero() // nothing decrypted, nothing to audit
		t.answer = filter(ctx, &t.first, key, opts)
	case key.IsZero():
		if opts.Collection == "" {
			exec(&t.first, func(q *Queries) error { return q.UseGenericPlans(ctx) })
		}
		t.commitFirst = true // nothing decrypted, nothing to audit
		rows := query(&t.first, func(q *Queries) ([]sqlc.ListRecordsRow, error) {
			return q.ListRecords(ctx, sqlc.ListRecordsParams{After: uuid(opts.After), Collection: opts.Collection, MaxRows: int32(opts.Limit)})
		})
		t.answer = func() ([]fieldseal.Record, error) {
			rows, err := rows.get()
			items := make([]fieldseal.Record, len(rows))
			for i, r := range rows {
				items[i] = record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt)
			}
			return items, err
		}
	default:
		matches := query(&t.first, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
		// Key-bearing transactions run generic plans (SetSubject), so each
		// filter has a statement, and so a plan, of its own.
		rows := query(&t.first, func(q *Queries) ([]sqlc.ListRecordsDecryptedRow, error) {
			if opts.Collection == "" {
				return q.ListRecordsDecrypted(ctx, sqlc.ListRecordsDecryptedParams{Key: key.Passphrase(), After: uuid(opts.After), MaxRows: int32(opts.Limit)})
			}
			rows, err := q.ListCollectionDecrypted(ctx, sqlc.ListCollectionDecryptedParams{
				Key: key.Passphrase(), Collection: opts.Collection, After: uuid(opts.After), MaxRows: int32(opts.Limit),
			})
			out := make([]sqlc.ListRecordsDecryptedRow, len(rows))
			for i, r := range rows {
				out[i] = sqlc.ListRecordsDecryptedRow(r)
			}
			return out, err
		})
		t.answer = func() ([]fieldseal.Record, error) {
			if err := readKeyCheck(matches); err != nil {
				return nil, err
			}
			rows, err := rows.get()
			return decryptedPage(rows), err
		}
	}
	items, err := run(ctx, s, t)
	if err != nil {
		return fieldseal.Page{}, err
	}
	page := fieldseal.Page{Items: items}
	if page.Items == nil {
		page.Items = []fieldseal.Record{}
	}
	if len(page.Items) == opts.Limit && opts.Limit > 0 {
		page.Next = page.Items[len(page.Items)-1].ID
	}
	return page, nil
}

// ReplaceRecord implements fieldseal.RecordService.
func (s *Store) ReplaceRecord(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, id fieldseal.ID, match []int64, in fieldseal.RecordInput) (fieldseal.Record, error) {
	return run(ctx, s, &tx[fieldseal.Record]{caller: caller, note: auditNote{action: fieldseal.ActionReplace, recordID: &id}, usesKey: true,
		then: func(q *Queries, _ fieldseal.Record) (fieldseal.Record, error) {
			if err := requireKey(ctx, q, key); err != nil {
				// Another subject's record is "not found" whatever the key.
				if _, nfErr := q.GetRecord(ctx, uuid(id)); nfErr != nil {
					return fieldseal.Record{}, nfErr
				}
				return fieldseal.Record{}, err
			}
			row, err := s.dialect.replaceRecord(ctx, q, key, sqlc.ReplaceRecordEncryptedParams{
				Collection: in.Collection, Public: in.Public, ID: uuid(id), CheckVersion: match != nil, Versions: match,
			}, string(in.Secret))
			if err != nil {
				return fieldseal.Record{}, versionOrNotFound(ctx, q, id, err)
			}
			if err := q.DeleteRecordTags(ctx, uuid(id)); err != nil {
				return fieldseal.Record{}, err
			}
			if err := s.dialect.reindexRecords(ctx, q, batchParams([]fieldseal.ID{id}, []fieldseal.RecordInput{in}).index(key)); err != nil {
				return fieldseal.Record{}, err
			}
			return record(row.ID, row.Collection, row.Public, nil, row.Version, row.CreatedAt, row.UpdatedAt), nil
		}})
}

// DeleteRecord implements fieldseal.RecordService.
func (s *Store) DeleteRecord(ctx context.Context, caller fieldseal.Caller, id fieldseal.ID, match []int64) error {
	_, err := run(ctx, s, &tx[struct{}]{caller: caller, note: auditNote{action: fieldseal.ActionDelete, recordID: &id},
		then: func(q *Queries, _ struct{}) (struct{}, error) {
			n, err := q.DeleteRecord(ctx, sqlc.DeleteRecordParams{ID: uuid(id), CheckVersion: match != nil, Versions: match})
			if err == nil && n == 0 {
				err = versionOrNotFound(ctx, q, id, nil)
			}
			return struct{}{}, err
		}})
	return err
}

// keyForWrite is the key check of a write that may be its subject's first.
type keyForWrite struct{ matches *pending[bool] }

// registerKey queues into b the registration of key (a subject's first
// write registers its key; later ones change nothing) and its check,
// which holds the subject's row FOR SHARE until the transaction ends.
func registerKey(ctx context.Context, b *pgx.Batch, key fieldseal.Key) keyForWrite {
	exec(b, func(q *Queries) error {
		_, err := q.RegisterSubjectKey(ctx, key.Passphrase())
		return err
	})
	return keyForWrite{query(b, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })}
}

// check is EWRONGKEY unless key is the subject's. Its row was
// registered in this transaction, so no row means no admission.
func (k keyForWrite) check() error {
	if ok, err := k.matches.get(); err != nil || !ok {
		return errWrongKey
	}
	return nil
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

// damaged is the answer for records that do not open under the subject's
// verified key: the owner can delete them or restore them from a backup.
func damaged(ids ...fieldseal.ID) error {
	if len(ids) == 1 {
		return fieldseal.Errorf(fieldseal.ECORRUPT, "record %s does not open under the subject's verified key: it is damaged; delete it or restore it from a backup", ids[0])
	}
	return fieldseal.Errorf(fieldseal.ECORRUPT, "records %s do not open under the subject's verified key: they are damaged; delete them or restore them from a backup", joinIDs(ids))
}

func joinInts(ns []int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

func joinIDs(ids []fieldseal.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, ", ")
}

func ids(uuids []pgtype.UUID) []fieldseal.ID {
	out := make([]fieldseal.ID, len(uuids))
	for i, u := range uuids {
		out[i] = u.Bytes
	}
	return out
}

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
