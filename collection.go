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
	// the same transaction, indexes every record of the collection;
	// it returns how many records were indexed. EWRONGKEY, ECORRUPT
	// (a record does not open under the key: nothing changes),
	// EINVALID, EUNAVAILABLE.
	SetCollection(ctx context.Context, caller Caller, key Key, c Collection) (int64, error)
	// GetCollection returns the collection's settings: no searchable
	// field if they were never set. EUNAVAILABLE.
	GetCollection(ctx context.Context, caller Caller, collection string) (Collection, error)
}
