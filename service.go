package fieldseal

import (
	"context"
	"encoding/json"
	"time"
)

// Caller is who makes a request: the token's subject, whose records it
// may touch, and an identifier of the token itself (its jti, or a hash of
// it) that wrong-key throttling counts by.
type Caller struct {
	Subject string
	TokenID string
	// What the audit trail records of the request besides the subject.
	JTI        string
	ClientID   string
	RequestID  string
	ClientAddr string
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
	// not zero. EWRONGKEY, EUNAVAILABLE.
	ListRecords(ctx context.Context, caller Caller, key Key, opts ListOptions) (Page, error)
	// ReplaceRecord replaces a record under key. If match is not nil, the
	// record's current version must be one of match. ENOTFOUND, EWRONGKEY,
	// ECONFLICT, EUNAVAILABLE; nothing is written on error.
	ReplaceRecord(ctx context.Context, caller Caller, key Key, id ID, match []int64, in RecordInput) (Record, error)
	// DeleteRecord deletes a record; with match not nil only one of those
	// versions. ENOTFOUND, ECONFLICT, EUNAVAILABLE.
	DeleteRecord(ctx context.Context, caller Caller, id ID, match []int64) error
}

// KeyService manages a subject's data key.
type KeyService interface {
	// VerifyKey returns nil if key is the subject's current key, EWRONGKEY
	// otherwise (also when the subject has no key yet), ERATELIMITED,
	// EUNAVAILABLE.
	VerifyKey(ctx context.Context, caller Caller, key Key) error
	// RotateKey re-encrypts every record of the subject, and its key
	// verifier, from current to next in one transaction, and returns how
	// many records it re-encrypted. EWRONGKEY (nothing changes),
	// EUNAVAILABLE; with idem, also *Replay, EIDEMPOTENCYREUSED and
	// EIDEMPOTENCYINUSE.
	RotateKey(ctx context.Context, caller Caller, current, next Key, idem *Idempotent[int64]) (int64, error)
}

// ExportService reads a subject's records as stored, for backup and
// recovery without fieldseal.
type ExportService interface {
	// Ciphertext returns a record's secret as an ASCII-armored OpenPGP
	// message. ENOTFOUND, EUNAVAILABLE.
	Ciphertext(ctx context.Context, caller Caller, id ID) (string, error)
	// Export calls fn with every record of the subject, in creation order,
	// from one consistent snapshot; an error from fn stops it.
	Export(ctx context.Context, caller Caller, fn func(ExportedRecord) error) error
}

// AuditService appends to and reads the audit trail.
type AuditService interface {
	// RecordRefusal appends an entry for a request refused before any
	// database work (insufficient scope). EUNAVAILABLE.
	RecordRefusal(ctx context.Context, caller Caller, action, outcome string) error
	// AuditEvents returns one page of the trail, every subject's (the
	// caller must hold audit:read). EUNAVAILABLE.
	AuditEvents(ctx context.Context, caller Caller, f AuditFilter) (AuditPage, error)
}

// AuditEvent is one entry of the audit trail. It never holds a key, a
// plaintext value or a token.
type AuditEvent struct {
	Subject     string    `json:"subject"`
	Seq         int64     `json:"seq"`
	At          time.Time `json:"at"`
	Action      string    `json:"action"`
	Outcome     string    `json:"outcome"`
	RecordID    *ID       `json:"record_id,omitempty"`
	RecordCount *int64    `json:"record_count,omitempty"`
	TokenJTI    string    `json:"token_jti,omitempty"`
	ClientID    string    `json:"client_id,omitempty"`
	RequestID   string    `json:"request_id,omitempty"`
	ClientAddr  string    `json:"client_addr,omitempty"`
}

// AuditFilter selects audit entries: empty fields match everything.
type AuditFilter struct {
	Subject string
	Action  string
	Since   time.Time
	Until   time.Time
	After   AuditCursor
	Limit   int
}

// AuditCursor is the position after which a page starts.
type AuditCursor struct {
	At      time.Time
	Subject string
	Seq     int64
}

// AuditPage is one page of the trail; Next is zero on the last page.
type AuditPage struct {
	Items []AuditEvent
	Next  AuditCursor
}

// ExportedRecord is one line of an export: a record with its secret as
// the armored OpenPGP message that `gpg --decrypt` opens with the key.
type ExportedRecord struct {
	ID         ID              `json:"id"`
	Collection string          `json:"collection"`
	Public     json.RawMessage `json:"public"`
	Version    int64           `json:"version"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Ciphertext string          `json:"ciphertext"`
}
