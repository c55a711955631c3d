package fieldseal

import (
	"context"
	"encoding/json"
	"time"
)

// Record is a stored record as the API shows it. Secret is nil when the
// record was read without a key.
type Record struct {
	ID         ID              `json:"id"`
	Collection string          `json:"collection"`
	Public     json.RawMessage `json:"public"`
	Secret     json.RawMessage `json:"secret,omitempty"`
	Version    int64           `json:"version"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	// Damaged, on a list page read with the key, marks a record that does
	// not open under the subject's verified key; it has no Secret.
	Damaged bool `json:"damaged,omitempty"`
}

// RecordInput is what a client writes: a new record or a replacement.
type RecordInput struct {
	Collection string
	Public     json.RawMessage // a JSON object, stored in clear
	Secret     json.RawMessage // a JSON object, stored only encrypted
}

// ListOptions selects one page of a subject's records.
type ListOptions struct {
	Collection string // "" for every collection
	After      ID     // the zero ID for the first page
	Limit      int
	// Secret filters compare searchable fields of secret (blind index;
	// they need the key and Collection); Public filters compare top-level
	// fields of public. All must match.
	Secret, Public []Filter
}

// Filter is one equality filter of a list: a top-level field equals
// Value, compared as a string, and as the number or boolean Value spells
// if it spells one.
type Filter struct {
	Field, Value string
}

// Page is one page of records; Next is the zero ID on the last page.
type Page struct {
	Items []Record
	Next  ID
}

// RecordService stores and reads records. Every method works on the
// caller's subject's records only and returns *Error codes as listed; any
// other error is internal. Every method that takes a key may also return
// ERATELIMITED: after too many wrong keys, key-bearing requests are refused
// before the key is tried.
type RecordService interface {
	// CreateRecord stores a new record with the given id under key. The
	// subject's first write registers key as its key. EWRONGKEY if key is
	// not the subject's key (nothing is written), EUNAVAILABLE; with idem,
	// also *Replay, EIDEMPOTENCYREUSED and EIDEMPOTENCYINUSE.
	CreateRecord(ctx context.Context, caller Caller, key Key, id ID, in RecordInput, idem *Idempotent[Record]) (Record, error)
	// GetRecord returns a record; decrypted when key is not zero.
	// ENOTFOUND, EWRONGKEY, EUNAVAILABLE.
	GetRecord(ctx context.Context, caller Caller, id ID, key Key) (Record, error)
	// ListRecords returns one page in creation order; decrypted when key is
	// not zero. With Secret filters, the key and Collection are required
	// and every filtered field must be searchable in the collection
	// (EINVALID, naming it). EWRONGKEY, EUNAVAILABLE.
	ListRecords(ctx context.Context, caller Caller, key Key, opts ListOptions) (Page, error)
	// CreateRecords stores a batch of new records, in one transaction:
	// all or none. Errors as CreateRecord.
	CreateRecords(ctx context.Context, caller Caller, key Key, ids []ID, in []RecordInput, idem *Idempotent[[]Record]) ([]Record, error)
	// ReplaceRecord replaces a record under key. If match is not nil, the
	// record's current version must be one of match. ENOTFOUND, EWRONGKEY,
	// ECONFLICT, EUNAVAILABLE; nothing is written on error.
	ReplaceRecord(ctx context.Context, caller Caller, key Key, id ID, match []int64, in RecordInput) (Record, error)
	// DeleteRecord deletes a record; with match not nil only one of those
	// versions. ENOTFOUND, ECONFLICT, EUNAVAILABLE.
	DeleteRecord(ctx context.Context, caller Caller, id ID, match []int64) error
}
