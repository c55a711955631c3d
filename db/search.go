package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldseal/fieldseal"
)

// GetCollection implements fieldseal.CollectionService.
func (s *Store) GetCollection(ctx context.Context, caller fieldseal.Caller, collection string) (fieldseal.Collection, error) {
	c := fieldseal.Collection{Collection: collection, Searchable: map[string]fieldseal.SearchableField{}}
	t := &tx{caller: caller, note: auditNote{quiet: true}, readOnly: true, commitFirst: true}
	row := query(&t.first, func(q *Queries) (GetCollectionRow, error) { return q.GetCollection(ctx, collection) })
	t.check = func() error {
		r, err := row.get()
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // never set: nothing searchable
		}
		if err != nil {
			return err
		}
		c.UpdatedAt = r.UpdatedAt
		if r.Reindexing {
			c.Indexing = &fieldseal.Indexing{Fields: r.Indexing, Records: r.IndexDone, Total: r.IndexTotal, UpdatedAt: r.IndexedAt.Time}
		}
		return json.Unmarshal(r.Searchable, &c.Searchable)
	}
	return c, s.run(ctx, t)
}

var _ fieldseal.CollectionService = (*Store)(nil)

// CreateRecords implements fieldseal.RecordService: the batch's inserts,
// its tags and its key check in the first round trip; one audit entry per
// record and COMMIT in the second.
func (s *Store) CreateRecords(ctx context.Context, caller fieldseal.Caller, key fieldseal.Key, recIDs []fieldseal.ID, in []fieldseal.RecordInput, idem *fieldseal.Idempotent[[]fieldseal.Record]) ([]fieldseal.Record, error) {
	if len(recIDs) != len(in) {
		return nil, fmt.Errorf("db: %d ids for %d records", len(recIDs), len(in))
	}
	recs := make([]fieldseal.Record, 0, len(in))
	batch := batchParams(recIDs, in)
	t := &tx{caller: caller, note: auditNote{action: fieldseal.ActionCreate, recordIDs: recIDs}, usesKey: true, idem: idempotent(idem, &recs)}
	writeKey := registerKey(ctx, &t.first, key)
	created := s.dialect.createRecords(ctx, &t.first, key, recIDs, in, batch)
	tagged := s.dialect.index(ctx, &t.first, batch.index(key))
	t.check = func() error {
		if err := writeKey.check(); err != nil {
			return err
		}
		rows, err := created()
		if err != nil {
			return err
		}
		if err := tagged.check(); err != nil {
			return err
		}
		if len(rows) != len(in) {
			return fmt.Errorf("db: %d records inserted for a batch of %d", len(rows), len(in))
		}
		byID := make(map[pgtype.UUID]CreateRecordsRow, len(rows))
		for _, r := range rows {
			byID[r.ID] = r
		}
		for _, id := range recIDs {
			r := byID[uuid(id)]
			recs = append(recs, record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt))
		}
		return nil
	}
	t.then = func(q *Queries) error { return tagged.write(ctx, q) }
	if err := s.run(ctx, t); err != nil {
		return nil, err
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

// tagger tags records just written (the dialect's index): on one
// PostgreSQL IndexRecords, in the first round trip; on Citus RecordTags
// there, and InsertTags after (write, from the transaction's then).
type tagger struct {
	indexed *pending[struct{}]
	tags    *pending[[]RecordTagsRow]
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
func writeTags(ctx context.Context, q *Queries, rows []RecordTagsRow) error {
	var set tagSet
	for _, r := range rows {
		set.add(r.RecordID, r.Field, r.Tag)
	}
	return set.insert(ctx, q)
}

// maxNamed is how many damaged or unreadable records a refusal names, as
// ListDamagedRecords does (LIMIT 20).
const maxNamed = 20

// appendNamed appends v to a refusal's list, up to maxNamed.
func appendNamed[T any](list []T, v T) []T {
	if len(list) < maxNamed {
		list = append(list, v)
	}
	return list
}

// tagSet is tags to write with InsertTags.
type tagSet struct{ p InsertTagsParams }

func (t *tagSet) add(id pgtype.UUID, field string, tag []byte) {
	t.p.RecordIds, t.p.Fields, t.p.Tags = append(t.p.RecordIds, id), append(t.p.Fields, field), append(t.p.Tags, tag)
}

// insert writes the tags, a bounded number per statement.
func (t *tagSet) insert(ctx context.Context, q *Queries) error {
	const per = 5000
	for i := 0; i < len(t.p.RecordIds); i += per {
		j := min(i+per, len(t.p.RecordIds))
		if err := q.InsertTags(ctx, InsertTagsParams{RecordIds: t.p.RecordIds[i:j], Fields: t.p.Fields[i:j], Tags: t.p.Tags[i:j]}); err != nil {
			return err
		}
	}
	return nil
}

func batchParams(recIDs []fieldseal.ID, in []fieldseal.RecordInput) recordBatch {
	b := recordBatch{ids: make([]pgtype.UUID, len(in)), collections: make([]string, len(in)), publics: make([][]byte, len(in)), secrets: make([]string, len(in))}
	for i, r := range in {
		b.ids[i], b.collections[i], b.publics[i], b.secrets[i] = uuid(recIDs[i]), r.Collection, r.Public, string(r.Secret)
	}
	return b
}

// index is the batch's tagging under key.
func (b recordBatch) index(key fieldseal.Key) IndexRecordsParams {
	return IndexRecordsParams{Ids: b.ids, Collections: b.collections, Secrets: b.secrets, Key: key.Passphrase()}
}

// search is ListRecords with secret filters: the collection's settings,
// the key check and the page in one round trip.
func (s *Store) search(ctx context.Context, t *tx, key fieldseal.Key, opts fieldseal.ListOptions, page *fieldseal.Page) {
	settings := query(&t.first, func(q *Queries) (GetCollectionRow, error) { return q.GetCollection(ctx, opts.Collection) })
	matches := query(&t.first, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
	p := SearchRecordsDecryptedParams{Collection: opts.Collection, After: uuid(opts.After), Key: key.Passphrase(), MaxRows: int32(opts.Limit)}
	for _, f := range opts.Secret {
		p.Fields, p.Values = append(p.Fields, f.Field), append(p.Values, f.Value)
	}
	if len(opts.Public) > 0 {
		p.PublicFilter = publicFilter(opts.Public)
	}
	rows := query(&t.first, func(q *Queries) ([]SearchRecordsDecryptedRow, error) { return q.SearchRecordsDecrypted(ctx, p) })
	t.check = func() error {
		if err := readKeyCheck(matches); err != nil {
			return err
		}
		var searchable map[string]json.RawMessage
		r, err := settings.get()
		if err == nil {
			if err := json.Unmarshal(r.Searchable, &searchable); err != nil {
				return err
			}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		for _, f := range opts.Secret {
			if _, ok := searchable[f.Field]; !ok {
				return fieldseal.Errorf(fieldseal.EINVALID, "secret.%s is not a searchable field of collection %q: make it searchable with PUT /v1/collections/{collection}", f.Field, opts.Collection)
			}
			if slices.Contains(r.Indexing, f.Field) {
				return fieldseal.Errorf(fieldseal.EINDEXING, "secret.%s of collection %q is still being indexed (%d of %d records tagged): search it once GET /v1/collections/{collection} no longer lists it under indexing; "+
					"if no PUT of the collection's settings is running (its client hung up, or fieldseal restarted), PUT the same settings again to go on", f.Field, opts.Collection, r.IndexDone, r.IndexTotal)
			}
		}
		rows, err := rows.get()
		for _, r := range rows {
			page.Items = append(page.Items, decrypted(ListRecordsDecryptedRow(r)))
		}
		return err
	}
}

// filter is ListRecords with public filters only: the GIN index finds
// the matches; with the key, only the page is decrypted.
func (s *Store) filter(ctx context.Context, t *tx, key fieldseal.Key, opts fieldseal.ListOptions, page *fieldseal.Page) {
	path := publicFilter(opts.Public)
	if key.IsZero() {
		t.commitFirst = true // nothing decrypted, nothing to audit
		rows := query(&t.first, func(q *Queries) ([]ListRecordsFilteredRow, error) {
			return q.ListRecordsFiltered(ctx, ListRecordsFilteredParams{After: uuid(opts.After), Collection: opts.Collection, PublicFilter: path, MaxRows: int32(opts.Limit)})
		})
		t.check = func() error {
			rows, err := rows.get()
			for _, r := range rows {
				page.Items = append(page.Items, record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt))
			}
			return err
		}
		return
	}
	matches := query(&t.first, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
	rows := query(&t.first, func(q *Queries) ([]ListRecordsFilteredDecryptedRow, error) {
		return q.ListRecordsFilteredDecrypted(ctx, ListRecordsFilteredDecryptedParams{
			After: uuid(opts.After), Collection: opts.Collection, PublicFilter: path, Key: key.Passphrase(), MaxRows: int32(opts.Limit),
		})
	})
	t.check = func() error {
		if err := readKeyCheck(matches); err != nil {
			return err
		}
		rows, err := rows.get()
		for _, r := range rows {
			page.Items = append(page.Items, decrypted(ListRecordsDecryptedRow(r)))
		}
		return err
	}
}

// readKeyCheck judges CheckKey's answer for a read: a subject with no
// verifier never wrote, so has nothing to read (not an error).
func readKeyCheck(matches *pending[bool]) error {
	ok, err := matches.get()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	case !ok:
		return errWrongKey
	}
	return nil
}

// decrypted is a row read with the key: a damaged one without secret.
// A secret that is not one JSON object (written by an import before
// imports were checked) is damaged too: a response never carries it.
func decrypted(r ListRecordsDecryptedRow) fieldseal.Record {
	if r.Damaged || !fieldseal.IsObject([]byte(r.Secret)) {
		rec := record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt)
		rec.Damaged = true
		return rec
	}
	return record(r.ID, r.Collection, r.Public, &r.Secret, r.Version, r.CreatedAt, r.UpdatedAt)
}

// jsonNumber matches what both JSON and jsonpath read as a number, short
// enough that numeric holds it (a longer one equals no stored number).
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,999})(\.[0-9]{1,1000})?([eE][+-]?[0-9]{1,3})?$`)

// publicFilter is the jsonpath predicate of public filters: each field,
// at the top level of public, equals the value as a string, or as the
// number or boolean it spells. strict: a field that is absent, or an
// array holding the value, does not match. Served by the records_public
// GIN index (jsonb_path_ops supports == with && and ||).
func publicFilter(filters []fieldseal.Filter) string {
	var b strings.Builder
	b.WriteString("strict ")
	for i, f := range filters {
		if i > 0 {
			b.WriteString(" && ")
		}
		field, _ := json.Marshal(f.Field) // a JSON string is a jsonpath string
		value, _ := json.Marshal(f.Value)
		path := "$." + string(field)
		fmt.Fprintf(&b, "(%s == %s", path, value)
		if f.Value == "true" || f.Value == "false" || jsonNumber.MatchString(f.Value) {
			fmt.Fprintf(&b, " || %s == %s", path, f.Value) // the value as JSON spells it
		}
		b.WriteString(")")
	}
	return b.String()
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
