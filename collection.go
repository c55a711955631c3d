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
	// Indexing, while the records that were there when the settings
	// changed are being tagged, says how far that has gone; nil once
	// every record carries the settings' tags.
	Indexing *Indexing `json:"indexing,omitempty"`
}

// Indexing is a collection's reindex in progress (SetCollection). Until
// it ends, a search on one of Fields is refused with EINDEXING. A reindex
// stopped by a hang-up or a restart goes on where it stopped when the
// same settings are set again.
type Indexing struct {
	// Fields are the searchable fields not searchable yet: new, or whose
	// case_insensitive changed. Empty when only tags of fields no longer
	// searchable are being dropped.
	Fields []string `json:"fields"`
	// Records is how many records have been tagged; Total, how many the
	// collection held when the settings changed (records written since
	// are tagged by their own writes, and some may be counted here too).
	Records int64 `json:"records"`
	Total   int64 `json:"total"`
	// UpdatedAt is when the last batch of records was tagged: long ago
	// means nothing is indexing it now.
	UpdatedAt time.Time `json:"updated_at"`
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
	// SetCollection replaces the collection's settings under key, then
	// indexes the records the collection held, a batch at a time, while
	// the subject's other requests go on; it returns when every record
	// carries the settings' tags, with how many records the collection
	// holds and what the index holds of each field. Settings equal to
	// the current ones go on with a reindex that was stopped (a hang-up,
	// a restart), or change nothing. EWRONGKEY; ECORRUPT or EINVALID (a
	// record that does not open, or whose secret jsonb refuses: the
	// settings stay, the reindex stops there, and setting them again
	// after the record is replaced or deleted goes on); ESUPERSEDED
	// (other settings were set meanwhile); EUNAVAILABLE.
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
