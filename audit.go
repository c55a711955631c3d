package fieldseal

import (
	"context"
	"time"
)

// Audit actions, one per kind of work.
const (
	ActionCreate     = "record.create"
	ActionRead       = "record.read"
	ActionList       = "record.list"
	ActionReplace    = "record.replace"
	ActionDelete     = "record.delete"
	ActionCiphertext = "record.ciphertext"
	ActionExport     = "records.export"
	ActionImport     = "records.import"
	// ActionCollection is setting a collection's searchable fields (which
	// decrypts its records to index them).
	ActionCollection = "collection.update"
	// ActionCollectionRead is reading a collection's settings (only its
	// refusals are recorded: nothing is decrypted).
	ActionCollectionRead = "collection.read"
	ActionRotate         = "key.rotate"
	ActionVerify         = "key.verify"
	// ActionAuditRead is reading the trail or the grants report (their
	// refusals are recorded under it).
	ActionAuditRead = "audit.read"
)

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
	Lane        int16     `json:"lane"` // which of the subject's chains
	Seq         int64     `json:"seq"`  // position in that chain, from 1
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
	Lane    int16
	Seq     int64
}

// AuditPage is one page of the trail; Next is zero on the last page.
type AuditPage struct {
	Items []AuditEvent
	Next  AuditCursor
}

// AuditBreak is the first broken link of one subject's chain.
type AuditBreak struct {
	Subject string
	Lane    int16 // which of the subject's chains
	Seq     int64 // the entry where the chain breaks
	Problem string
}

// AuditReport is what db.VerifyAuditTrail (fieldseal audit verify) found.
type AuditReport struct {
	Entries  int64
	Subjects int64
	Breaks   []AuditBreak // empty when every chain is intact
}
