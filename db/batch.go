package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// CreateRecords implements fieldseal.RecordService: the batch's inserts,
// its tags and its key check in the first round trip; one audit entry per
// record and COMMIT in the second.
func (s *Store) CreateRecords(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, recIDs []fieldseal.ID, in []fieldseal.RecordInput, idem *fieldseal.Idempotent[[]fieldseal.Record]) ([]fieldseal.Record, error) {
	if len(recIDs) != len(in) {
		return nil, fmt.Errorf("db: %d ids for %d records", len(recIDs), len(in))
	}
	t := &tx[[]fieldseal.Record]{caller: caller, note: auditNote{action: fieldseal.ActionCreate, recordIDs: recIDs}, usesKey: true, idem: idem}
	c := s.create(ctx, &t.first, key, batchParams(recIDs, in))
	t.answer = func() ([]fieldseal.Record, error) { return nil, c.check() }
	t.then = func(q *Queries, _ []fieldseal.Record) ([]fieldseal.Record, error) { return c.write(ctx, q) }
	return run(ctx, s, t)
}

// creation is records being created: their key's registration and
// check, their inserts and their tags.
type creation struct {
	writeKey keyForWrite
	inserted *inserter
	tagged   *tagger
	batch    recordBatch
}

// create queues into b a creation of the records in batch, under key:
// registering the key (a subject's first write does) and checking it,
// inserting and tagging (for a collection with searchable fields). The
// insert runs even when the key turns out wrong or the caller throttled:
// it then inserts nothing (check tells why), and the transaction rolls
// back.
func (s *Store) create(ctx context.Context, b *pgx.Batch, key fieldseal.Key, batch recordBatch) creation {
	return creation{
		writeKey: registerKey(ctx, b, key),
		inserted: s.dialect.createRecords(ctx, b, key, batch),
		tagged:   s.dialect.index(ctx, b, batch.index(key)),
		batch:    batch,
	}
}

// check judges the first round trip: the key, then the tagging.
func (c creation) check() error {
	if err := c.writeKey.check(); err != nil {
		return err
	}
	return c.tagged.check()
}

// write writes what the first round trip left to write (on Citus, the
// records and their tags) and returns the records, in the order given.
func (c creation) write(ctx context.Context, q *Queries) ([]fieldseal.Record, error) {
	rows, err := c.inserted.write(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(rows) != len(c.batch.ids) {
		return nil, fmt.Errorf("db: %d records inserted for a batch of %d", len(rows), len(c.batch.ids))
	}
	if err := c.tagged.write(ctx, q); err != nil {
		return nil, err
	}
	byID := make(map[pgtype.UUID]sqlc.CreateRecordsRow, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	recs := make([]fieldseal.Record, len(c.batch.ids))
	for i, id := range c.batch.ids {
		r := byID[id]
		recs[i] = record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt)
	}
	return recs, nil
}

// recordBatch is records as the batch statements take them.
type recordBatch struct {
	ids         []pgtype.UUID
	collections []string
	publics     [][]byte
	secrets     []string
}

func batchParams(recIDs []fieldseal.ID, in []fieldseal.RecordInput) recordBatch {
	b := recordBatch{ids: make([]pgtype.UUID, len(in)), collections: make([]string, len(in)), publics: make([][]byte, len(in)), secrets: make([]string, len(in))}
	for i, r := range in {
		b.ids[i], b.collections[i], b.publics[i], b.secrets[i] = uuid(recIDs[i]), r.Collection, r.Public, string(r.Secret)
	}
	return b
}

// index is the batch's tagging under key.
func (b recordBatch) index(key fieldseal.Key) sqlc.IndexRecordsParams {
	return sqlc.IndexRecordsParams{Ids: b.ids, Collections: b.collections, Secrets: b.secrets, Key: key.Passphrase()}
}
