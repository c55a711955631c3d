package db

import (
	"context"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal/db/sqlc"
)

// tagger tags records just written (the dialect's index): on one
// PostgreSQL IndexRecords, in the first round trip; on Citus RecordTags
// there, and InsertTags after (write, from the transaction's then).
type tagger struct {
	indexed *pending[struct{}]
	tags    *pending[[]sqlc.RecordTagsRow]
}

// check returns the tagging's error, once the round trip has been read.
func (t *tagger) check() error {
	if t.indexed != nil {
		_, err := t.indexed.get()
		return err
	}
	_, err := t.tags.get()
	return err
}

// write writes the tags RecordTags computed (on Citus; else nothing).
func (t *tagger) write(ctx context.Context, q *Queries) error {
	if t.tags == nil {
		return nil
	}
	rows, err := t.tags.get()
	if err != nil {
		return err
	}
	return writeTags(ctx, q, rows)
}

// writeTags writes tags computed by RecordTags or AllTags.
func writeTags(ctx context.Context, q *Queries, rows []sqlc.RecordTagsRow) error {
	var set tagSet
	for _, r := range rows {
		set.add(r.RecordID, r.Field, r.Tag)
	}
	return set.insert(ctx, q)
}

// tagSet is tags to write with InsertTags.
type tagSet struct{ p sqlc.InsertTagsParams }

func (t *tagSet) add(id pgtype.UUID, field string, tag []byte) {
	t.p.RecordIds, t.p.Fields, t.p.Tags = append(t.p.RecordIds, id), append(t.p.Fields, field), append(t.p.Tags, tag)
}

// insert writes the tags, a bounded number per statement.
func (t *tagSet) insert(ctx context.Context, q *Queries) error {
	const per = 5000
	for i := 0; i < len(t.p.RecordIds); i += per {
		j := min(i+per, len(t.p.RecordIds))
		if err := q.InsertTags(ctx, sqlc.InsertTagsParams{RecordIds: t.p.RecordIds[i:j], Fields: t.p.Fields[i:j], Tags: t.p.Tags[i:j]}); err != nil {
			return err
		}
	}
	return nil
}
