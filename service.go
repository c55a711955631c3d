package fieldseal

import "context"

// RecordService stores and reads records. Every method works on one
// subject's records only and returns *Error codes as listed; any other
// error is internal.
type RecordService interface {
	// CreateRecord stores a new record with the given id under key. The
	// subject's first write registers key as its key. EWRONGKEY if key is
	// not the subject's key (nothing is written), EUNAVAILABLE.
	CreateRecord(ctx context.Context, subject string, key Key, id ID, in RecordInput) (Record, error)
	// GetRecord returns a record; decrypted when key is not zero.
	// ENOTFOUND, EWRONGKEY, EUNAVAILABLE.
	GetRecord(ctx context.Context, subject string, id ID, key Key) (Record, error)
	// ListRecords returns one page in creation order; decrypted when key is
	// not zero. EWRONGKEY, EUNAVAILABLE.
	ListRecords(ctx context.Context, subject string, key Key, opts ListOptions) (Page, error)
	// ReplaceRecord replaces a record under key. If match is not nil, the
	// record's current version must be one of match. ENOTFOUND, EWRONGKEY,
	// ECONFLICT, EUNAVAILABLE; nothing is written on error.
	ReplaceRecord(ctx context.Context, subject string, key Key, id ID, match []int64, in RecordInput) (Record, error)
	// DeleteRecord deletes a record; with match not nil only one of those
	// versions. ENOTFOUND, ECONFLICT, EUNAVAILABLE.
	DeleteRecord(ctx context.Context, subject string, id ID, match []int64) error
}
