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
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// the key check and the page in one round trip.
func (s *Store) search(ctx context.Context, t *tx, key fieldseal.Key, opts fieldseal.ListOptions, page *fieldseal.Page) {
	settings := query(&t.first, func(q *Queries) (sqlc.GetCollectionRow, error) { return q.GetCollection(ctx, opts.Collection) })
	matches := query(&t.first, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
	p := sqlc.SearchRecordsDecryptedParams{Collection: opts.Collection, After: uuid(opts.After), Key: key.Passphrase(), MaxRows: int32(opts.Limit)}
	for _, f := range opts.Secret {
		p.Fields, p.Values = append(p.Fields, f.Field), append(p.Values, f.Value)
	}
	if len(opts.Public) > 0 {
		p.PublicFilter = publicFilter(opts.Public)
	}
	rows := query(&t.first, func(q *Queries) ([]sqlc.SearchRecordsDecryptedRow, error) { return q.SearchRecordsDecrypted(ctx, p) })
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
			page.Items = append(page.Items, decrypted(sqlc.ListRecordsDecryptedRow(r)))
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
		rows := query(&t.first, func(q *Queries) ([]sqlc.ListRecordsFilteredRow, error) {
			return q.ListRecordsFiltered(ctx, sqlc.ListRecordsFilteredParams{After: uuid(opts.After), Collection: opts.Collection, PublicFilter: path, MaxRows: int32(opts.Limit)})
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
	rows := query(&t.first, func(q *Queries) ([]sqlc.ListRecordsFilteredDecryptedRow, error) {
		return q.ListRecordsFilteredDecrypted(ctx, sqlc.ListRecordsFilteredDecryptedParams{
			After: uuid(opts.After), Collection: opts.Collection, PublicFilter: path, Key: key.Passphrase(), MaxRows: int32(opts.Limit),
		})
	})
	t.check = func() error {
		if err := readKeyCheck(matches); err != nil {
			return err
		}
		rows, err := rows.get()
		for _, r := range rows {
			page.Items = append(page.Items, decrypted(sqlc.ListRecordsDecryptedRow(r)))
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
func decrypted(r sqlc.ListRecordsDecryptedRow) fieldseal.Record {
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
