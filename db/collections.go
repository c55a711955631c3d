package db

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// GetCollection implements fieldseal.CollectionService.
func (s *Store) GetCollection(ctx context.Context, caller fieldseal.Caller, collection string) (fieldseal.Collection, error) {
	t := &tx[fieldseal.Collection]{caller: caller, note: auditNote{quiet: true}, readOnly: true, commitFirst: true}
	row := query(&t.first, func(q *Queries) (sqlc.GetCollectionRow, error) { return q.GetCollection(ctx, collection) })
	t.answer = func() (fieldseal.Collection, error) {
		c := fieldseal.Collection{Collection: collection, Searchable: map[string]fieldseal.SearchableField{}}
		r, err := row.get()
		if errors.Is(err, pgx.ErrNoRows) {
			return c, nil // never set: nothing searchable
		}
		if err != nil {
			return fieldseal.Collection{}, err
		}
		c.UpdatedAt = r.UpdatedAt
		if r.Reindexing {
			c.Indexing = &fieldseal.Indexing{Fields: r.Indexing, Records: r.IndexDone, Total: r.IndexTotal, UpdatedAt: r.IndexedAt.Time}
		}
		return c, json.Unmarshal(r.Searchable, &c.Searchable)
	}
	return run(ctx, s, t)
}

var _ fieldseal.CollectionService = (*Store)(nil)

// SetCollection implements fieldseal.CollectionService, online, as
// CREATE INDEX CONCURRENTLY builds an index (migration 00022 says why):
//
//  1. The settings change in a short transaction holding the subject's
//     row FOR UPDATE, as a rotation does: writes in flight finish
//     first, and every later write tags its record under the new
//     settings. It appends the request's audit entry.
//  2. A pass tags the records the collection held, reindexBatchRows at a
//     time, each batch a transaction of its own that holds the
//     subject's row FOR SHARE, like any write, and its records FOR SHARE.
//     Where it has reached is kept in the collection's row, so that a
//     PUT of the same settings goes on with a pass that was stopped, and
//     a search on a field it is indexing answers EINDEXING until it ends.
//  3. What the index shows of each field is read, for the answer's
//     warnings.
func (s *Store) SetCollection(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, c fieldseal.Collection) (fieldseal.Indexed, error) {
	searchable, err := json.Marshal(c.Searchable)
	if err != nil {
		return fieldseal.Indexed{}, err
	}
	// The pass this request takes part in: 0 if none.
	pass, err := run(ctx, s, &tx[settingsChange]{caller: caller, note: auditNote{action: fieldseal.ActionCollection}, usesKey: true,
		count: func(c settingsChange) int64 { return c.total }, then: func(q *Queries, _ settingsChange) (settingsChange, error) {
			return changeSettings(ctx, q, key, c, searchable)
		}})
	if err != nil {
		return fieldseal.Indexed{}, err
	}
	for finished := pass.run == 0; !finished; {
		if finished, err = s.reindexBatch(ctx, caller, key, c, pass.run); err != nil {
			return fieldseal.Indexed{}, err
		}
	}
	return s.indexed(ctx, caller, c.Collection)
}

// settingsChange is what step 1 of SetCollection found: how many records
// the collection holds, and the pass it owes (0 if none).
type settingsChange struct{ total, run int64 }

// changeSettings is step 1 of SetCollection: the settings change under
// the subject's row held FOR UPDATE.
func changeSettings(ctx context.Context, q *Queries, key fieldseal.Key, c fieldseal.Collection, searchable []byte) (settingsChange, error) {
	var ch settingsChange
	if _, err := q.RegisterSubjectKey(ctx, key.Passphrase()); err != nil {
		return ch, err
	}
	if held, err := q.LockKeyForRotation(ctx, key.Passphrase()); err != nil {
		return ch, err
	} else if !held.Matches {
		return ch, errWrongKey
	}
	var err error
	if ch.total, err = q.CountCollection(ctx, c.Collection); err != nil {
		return ch, err
	}
	cur, err := q.LockCollection(ctx, c.Collection)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return ch, err
	}
	set := err == nil
	var before map[string]fieldseal.SearchableField
	if set {
		if err := json.Unmarshal(cur.Searchable, &before); err != nil {
			return ch, err
		}
	}
	if set && maps.Equal(before, c.Searchable) {
		if cur.Reindexing {
			ch.run = cur.IndexRun // go on where it stopped
		}
		return ch, nil
	}
	// Tags to compute (fields new, changed, or still being indexed) or to
	// drop (fields no longer searchable, or still being dropped): a pass
	// is owed.
	indexing, dropping := []string{}, []string{}
	for field, opts := range c.Searchable {
		if was, ok := before[field]; !ok || was != opts || slices.Contains(cur.Indexing, field) {
			indexing = append(indexing, field)
		}
	}
	for _, field := range append(slices.Collect(maps.Keys(before)), cur.Dropping...) {
		if _, kept := c.Searchable[field]; !kept && !slices.Contains(dropping, field) {
			dropping = append(dropping, field)
		}
	}
	slices.Sort(indexing)
	slices.Sort(dropping)
	reindexing := len(c.Searchable) > 0 || len(dropping) > 0
	started, err := q.StartIndexing(ctx, sqlc.StartIndexingParams{
		Collection: c.Collection, Searchable: searchable, Indexing: indexing, Dropping: dropping, Reindexing: reindexing, Total: ch.total,
	})
	if reindexing {
		ch.run = started
	}
	return ch, err
}

// reindexBatchRows is how many records one batch of a reindex tags: a
// replace of one of them waits for the batch (reindexBatch).
const reindexBatchRows = 500

// reindexBatch tags the pass's next batch of records and says whether
// the pass has ended (with this batch, or before it: another PUT of the
// same settings, or a key rotation, ended it).
func (s *Store) reindexBatch(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, c fieldseal.Collection, pass int64) (bool, error) {
	t := &tx[reindexStep]{caller: caller, note: auditNote{action: fieldseal.ActionCollection, quiet: true}, usesKey: true}
	// In this order, as a rotation takes them: the subject's row, then the
	// collection's row.
	matches := query(&t.first, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
	state := query(&t.first, func(q *Queries) (sqlc.LockCollectionRow, error) { return q.LockCollection(ctx, c.Collection) })
	t.answer = func() (reindexStep, error) {
		st, err := state.get()
		if err != nil {
			return reindexStep{}, err
		}
		if st.IndexRun != pass || !st.Reindexing {
			var now map[string]fieldseal.SearchableField
			if err := json.Unmarshal(st.Searchable, &now); err != nil {
				return reindexStep{}, err
			}
			if st.Reindexing || !maps.Equal(now, c.Searchable) {
				return reindexStep{}, fieldseal.Errorf(fieldseal.ESUPERSEDED, "collection %q was given other searchable fields while these were being indexed: the later settings are the collection's now (GET /v1/collections/{collection})", c.Collection)
			}
			return reindexStep{finished: true}, nil // ended by a rotation or by another PUT of the same settings
		}
		// The key was checked when the pass started: a rotation that
		// replaced the subject's keys started a new run; one that rewrapped
		// them keeps the pass, which goes on with the new key.
		if ok, err := matches.get(); err != nil {
			return reindexStep{}, err
		} else if !ok {
			return reindexStep{}, fieldseal.Errorf(fieldseal.ESUPERSEDED, "the subject's key was rotated while collection %q was being indexed: its settings are kept and their indexing stopped there; PUT them again with the new key to go on", c.Collection)
		}
		return reindexStep{state: st}, nil
	}
	t.then = func(q *Queries, step reindexStep) (reindexStep, error) {
		if step.finished {
			return step, nil
		}
		st := step.state
		batch, err := q.LockIndexBatch(ctx, sqlc.LockIndexBatchParams{Collection: c.Collection, After: after(st.IndexedThrough), MaxRows: reindexBatchRows})
		if err != nil {
			return step, err
		}
		step.finished = len(batch) < reindexBatchRows
		through := st.IndexedThrough
		if len(batch) > 0 {
			through = batch[len(batch)-1]
			if err := tagBatch(ctx, q, key, c.Collection, batch, st.Dropping); err != nil {
				return step, err
			}
		}
		n, err := q.AdvanceIndexing(ctx, sqlc.AdvanceIndexingParams{Through: through, Done: int64(len(batch)), Finished: step.finished, Collection: c.Collection, Run: pass})
		if err == nil && n != 1 {
			err = errors.New("db: the reindex's row changed although it was held")
		}
		return step, err
	}
	step, err := run(ctx, s, t)
	return step.finished, err
}

// reindexStep is where a batch of a reindex found the pass (held FOR
// UPDATE), and whether it has ended.
type reindexStep struct {
	state    sqlc.LockCollectionRow
	finished bool
}

// tagBatch gives the records in batch (in id order, held FOR SHARE) their
// tags under the collection's settings, replacing a tag of the same field
// (InsertTags), and drops their tags of the fields in dropping; it
// refuses a batch with a record that does not open or whose secret jsonb
// refuses, naming them.
func tagBatch(ctx context.Context, q *Queries, key fieldseal.Key, collection string, batch []pgtype.UUID, dropping []string) error {
	rows, err := q.BatchTags(ctx, sqlc.BatchTagsParams{Ids: batch, Collection: collection, Key: key.Passphrase()})
	if err != nil {
		return err
	}
	var bad, unreadable []pgtype.UUID
	var set tagSet
	for _, r := range rows {
		switch {
		case r.Damaged:
			bad = appendNamed(bad, r.ID)
		case r.Unreadable:
			unreadable = appendNamed(unreadable, r.ID)
		default:
			for i := range r.Fields {
				set.add(r.ID, r.Fields[i], r.Tags[i])
			}
		}
	}
	const stopped = "; the collection's new settings are kept and their indexing stopped there: PUT them again afterwards to go on"
	switch {
	case len(bad) > 0:
		e := damaged(ids(bad)...).(*fieldseal.Error)
		return fieldseal.Errorf(e.Code, "%s%s", e.Message, stopped)
	case len(unreadable) > 0:
		return fieldseal.Errorf(fieldseal.EINVALID, "records %s hold a secret that PostgreSQL's jsonb cannot read (\\u0000, a lone surrogate escape or a number beyond its range; "+
			"fieldseal accepted such secrets before it could search them): replace or delete them%s", joinIDs(ids(unreadable)), stopped)
	}
	if len(dropping) > 0 {
		if err := q.DropTagsOf(ctx, sqlc.DropTagsOfParams{First: batch[0], Last: batch[len(batch)-1], Ids: batch, Fields: dropping}); err != nil {
			return err
		}
	}
	return set.insert(ctx, q)
}

// after is a pass's cursor as LockIndexBatch takes it: before every id
// when the pass has tagged nothing yet.
func after(through pgtype.UUID) pgtype.UUID {
	if !through.Valid {
		return pgtype.UUID{Valid: true}
	}
	return through
}

// indexed reads, once a collection's records carry its settings' tags,
// how many it holds and what the tags show of each field.
func (s *Store) indexed(ctx context.Context, caller fieldseal.Caller, collection string) (fieldseal.Indexed, error) {
	t := &tx[fieldseal.Indexed]{caller: caller, note: auditNote{quiet: true}, readOnly: true, long: true, commitFirst: true}
	count := query(&t.first, func(q *Queries) (int64, error) { return q.CountCollection(ctx, collection) })
	fields := query(&t.first, func(q *Queries) ([]sqlc.CollectionFieldTagsRow, error) { return q.CollectionFieldTags(ctx, collection) })
	t.answer = func() (fieldseal.Indexed, error) {
		var res fieldseal.Indexed
		var err error
		if res.Records, err = count.get(); err != nil {
			return res, err
		}
		rows, err := fields.get()
		for _, f := range rows {
			res.Fields = append(res.Fields, fieldseal.FieldTags{Field: f.Field, Tagged: f.Tagged, Distinct: f.DistinctValues, MostCommon: f.MostCommon})
		}
		return res, err
	}
	return run(ctx, s, t)
}
