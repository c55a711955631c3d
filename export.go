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
