package fieldseal

import (
	"context"
	"time"
)

// Collection is a collection's settings: which top-level fields of its
// records' secret are searchable by equality (blind index).
type Collection struct {
	Collection string                     `json:"collection"`
	Searchable map[string]SearchableField `json:"searchable"`
	// UpdatedAt is when the settings last changed; zero if never set.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SearchableField is how one searchable field compares.
type SearchableField struct {
	// CaseInsensitive compares strings lower-cased (after Unicode NFC).
	CaseInsensitive bool `json:"case_insensitive"`
}

// Limits of a collection's settings.
const (
	MaxSearchableFields = 32
	MaxFieldNameLength  = 128 // characters
)

// CollectionService keeps collections' settings. Settings are per
// subject, like records.
type CollectionService interface {
	// SetCollection replaces the collection's settings under key and, in
	// the same transaction, indexes every record of the collection; it
	// returns how many records were indexed and what the index holds of
	// each field. EWRONGKEY, ECORRUPT (a record does not open under the
	// key: nothing changes), EINVALID, EUNAVAILABLE.
	SetCollection(ctx context.Context, caller Caller, key Key, c Collection) (Indexed, error)
	// GetCollection returns the collection's settings: no searchable
	// field if they were never set. EUNAVAILABLE.
	GetCollection(ctx context.Context, caller Caller, collection string) (Collection, error)
}

// Indexed is what indexing a collection did.
type Indexed struct {
	Records int64
	Fields  []FieldTags // the searchable fields some record holds, by name
}

// FieldTags is what a searchable field's tags show to whoever reads the
// tags table, key or no key: how many records hold the field, how many
// distinct values they hold, and how many records share the most common.
type FieldTags struct {
	Field      string
	Tagged     int64
	Distinct   int64
	MostCommon int64
}

// Revealing reports whether the field's tags give its values away to
// frequency analysis: few distinct values that records share (fewer than
// 100), or one value held by more than 5 % of the records. Unique values
// (an email, an SSN) reveal only that they are unique.
func (f FieldTags) Revealing() bool {
	return f.Distinct < f.Tagged && (f.Distinct < 100 || f.MostCommon*20 > f.Tagged)
}
