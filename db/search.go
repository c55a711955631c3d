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

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// search is ListRecords with secret filters on a collection's searchable
// fields: the settings, the key check and the page in one round trip.
func search(ctx context.Context, b *pgx.Batch, key fieldseal.Key, opts fieldseal.ListOptions) func() ([]fieldseal.Record, error) {
	settings := query(b, func(q *Queries) (sqlc.GetCollectionRow, error) { return q.GetCollection(ctx, opts.Collection) })
	matches := query(b, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
	p := sqlc.SearchRecordsDecryptedParams{Collection: opts.Collection, After: uuid(opts.After), Key: key.Passphrase(), MaxRows: int32(opts.Limit)}
	for _, f := range opts.Secret {
		p.Fields, p.Values = append(p.Fields, f.Field), append(p.Values, f.Value)
	}
	if len(opts.Public) > 0 {
		p.PublicFilter = publicFilter(opts.Public)
	}
	rows := query(b, func(q *Queries) ([]sqlc.SearchRecordsDecryptedRow, error) { return q.SearchRecordsDecrypted(ctx, p) })
	return func() ([]fieldseal.Record, error) {
		if err := readKeyCheck(matches); err != nil {
			return nil, err
		}
		var searchable map[string]json.RawMessage
		r, err := settings.get()
		if err == nil {
			if err := json.Unmarshal(r.Searchable, &searchable); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		for _, f := range opts.Secret {
			if _, ok := searchable[f.Field]; !ok {
				return nil, fieldseal.Errorf(fieldseal.EINVALID, "secret.%s is not a searchable field of collection %q: make it searchable with PUT /v1/collections/{collection}", f.Field, opts.Collection)
			}
			if slices.Contains(r.Indexing, f.Field) {
				return nil, fieldseal.Errorf(fieldseal.EINDEXING, "secret.%s of collection %q is still being indexed (%d of %d records tagged): search it once GET /v1/collections/{collection} no longer lists it under indexing; "+
					"if no PUT of the collection's settings is running (its client hung up, or fieldseal restarted), PUT the same settings again to go on", f.Field, opts.Collection, r.IndexDone, r.IndexTotal)
			}
		}
		rows, err := rows.get()
		out := make([]sqlc.ListRecordsDecryptedRow, len(rows))
		for i, r := range rows {
			out[i] = sqlc.ListRecordsDecryptedRow(r)
		}
		return decryptedPage(out), err
	}
}

// filter is ListRecords with public filters only: the GIN index finds
// the matches; with the key, only the page is decrypted.
func filter(ctx context.Context, b *pgx.Batch, key fieldseal.Key, opts fieldseal.ListOptions) func() ([]fieldseal.Record, error) {
	path := publicFilter(opts.Public)
	if key.IsZero() {
		rows := query(b, func(q *Queries) ([]sqlc.ListRecordsFilteredRow, error) {
			return q.ListRecordsFiltered(ctx, sqlc.ListRecordsFilteredParams{After: uuid(opts.After), Collection: opts.Collection, PublicFilter: path, MaxRows: int32(opts.Limit)})
		})
		return func() ([]fieldseal.Record, error) {
			rows, err := rows.get()
			items := make([]fieldseal.Record, len(rows))
			for i, r := range rows {
				items[i] = record(r.ID, r.Collection, r.Public, nil, r.Version, r.CreatedAt, r.UpdatedAt)
			}
			return items, err
		}
	}
	matches := query(b, func(q *Queries) (bool, error) { return q.CheckKey(ctx, key.Passphrase()) })
	rows := query(b, func(q *Queries) ([]sqlc.ListRecordsFilteredDecryptedRow, error) {
		return q.ListRecordsFilteredDecrypted(ctx, sqlc.ListRecordsFilteredDecryptedParams{
			After: uuid(opts.After), Collection: opts.Collection, PublicFilter: path, Key: key.Passphrase(), MaxRows: int32(opts.Limit),
		})
	})
	return func() ([]fieldseal.Record, error) {
		if err := readKeyCheck(matches); err != nil {
			return nil, err
		}
		rows, err := rows.get()
		out := make([]sqlc.ListRecordsDecryptedRow, len(rows))
		for i, r := range rows {
			out[i] = sqlc.ListRecordsDecryptedRow(r)
		}
		return decryptedPage(out), err
	}
}

// readKeyCheck judges CheckKey's answer for a read: a subject with no
// row never wrote, so has nothing to read (not an error).
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

// decryptedPage is rows read with the key, as records.
func decryptedPage(rows []sqlc.ListRecordsDecryptedRow) []fieldseal.Record {
	items := make([]fieldseal.Record, len(rows))
	for i, r := range rows {
		items[i] = decrypted(r)
	}
	return items
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
