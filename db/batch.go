package db

import (
	"context"
	"fmt"

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
	batch := batchParams(recIDs, in)
	t := &tx[[]fieldseal.Record]{caller: caller, note: auditNote{action: fieldseal.ActionCreate, recordIDs: recIDs}, usesKey: true, idem: idem}
	writeKey := registerKey(ctx, &t.first, key)
	created := s.dialect.createRecords(ctx, &t.first, key, recIDs, in, batch)
	tagged := s.dialect.index(ctx, &t.first, batch.index(key))
	t.answer = func() ([]fieldseal.Record, error) {
		if err := writeKey.check(); err != nil {
			return nil, err
		}
		rows, err := created()
		if err != nil {
			return nil, err
		}
		if err := tagged.check(); err != nil {
			return nil, err
		}
		if len(rows) != len(in) {
			return nil, fmt.Errorf("db: %d records inserted for a batch of %d", len(rows), len(in))
		}
		byID := make(map[pgtype.UUID]sqlc.CreateRecordsRow, len(rows))
		for _, r := range rows {
			byID[r.ID] = r
		}
		recs := make([]fieldseal.Record, len(recIDs))
		for i, id := range recIDs {
			r := byID[uuid(id)]
			recs[i] = record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt)
		}
		return recs, nil
	}
	t.then = func(q *Queries, recs []fieldseal.Record) ([]fieldseal.Record, error) {
		return recs, tagged.write(ctx, q)
	}
	return run(ctx, s, t)
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
