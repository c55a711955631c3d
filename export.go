package fieldseal

import (
	"context"
	"encoding/json"
	"time"
)

// ExportService reads a subject's records as stored, for backup and
// recovery without fieldseal.
type ExportService interface {
	// Ciphertext returns a record's secret as an ASCII-armored OpenPGP
	// message. ENOTFOUND, EUNAVAILABLE.
	Ciphertext(ctx context.Context, caller Caller, id ID) (string, error)
	// Export calls fn with every record of the subject, in creation order,
	// from one consistent snapshot; an error from fn stops it.
	Export(ctx context.Context, caller Caller, fn func(ExportedRecord) error) error
	// Import restores exported records under key, in one transaction
	// (a subject's first write registers key; EWRONGKEY if key is not the
	// subject's): every ciphertext must be a message in the form fieldseal
	// writes that opens under key to a secret CheckObject accepts
	// (EINVALID naming the lines, nothing written otherwise); records
	// whose id the subject has are skipped. EUNAVAILABLE; with idem as
	// CreateRecord.
	Import(ctx context.Context, caller Caller, key Key, recs []ImportedRecord, idem *Idempotent[ImportResult]) (ImportResult, error)
}

// ImportedRecord is one line of an export read back: Ciphertext is the
// binary OpenPGP message (dearmored).
type ImportedRecord struct {
	ID         ID
	Collection string
	Public     json.RawMessage
	Version    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Ciphertext []byte
}

// ImportResult counts what an import did.
type ImportResult struct {
	Imported int64 `json:"imported"`
	Skipped  int64 `json:"skipped"`
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
