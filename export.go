package fieldseal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// ExportService reads a subject's records as stored, for backup and
// recovery without fieldseal.
type ExportService interface {
	// Ciphertext returns a record's secret as an ASCII-armored OpenPGP
	// message, with what opens it. ENOTFOUND, EUNAVAILABLE.
	Ciphertext(ctx context.Context, caller Caller, id ID) (Ciphertext, error)
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
	// KeyVersion says which key opens Ciphertext: 0 the client key (an
	// export made before keys in layers), v its collection's data key v
	// derived from SubjectKey.
	KeyVersion int32
	// SubjectKey is the subject key the record was written under,
	// wrapped under the client key (a binary OpenPGP message); nil for
	// key version 0.
	SubjectKey []byte
}

// Ciphertext is a record's secret as stored, and what opens it with the
// client key alone (docs/security.md shows the gpg commands): the
// subject key wrapped under the client key opens with it; the data key
// is HMAC-SHA-256(subject key, "fieldseal data key v1\n" + collection +
// "\n" + key version), in standard base64, the passphrase of the
// record's message. For key version 0 (a record written before keys in
// layers) the client key itself opens the message and SubjectKey is nil.
type Ciphertext struct {
	Armored    string
	Collection string
	KeyVersion int32
	SubjectKey []byte
}

// DataKey is a collection's data key of one version, as migration 00023
// derives it inside PostgreSQL from a subject key (record_key): standard
// base64 of HMAC-SHA-256(subjectKey, "fieldseal data key v1\n" +
// collection + "\n" + version), the passphrase of the collection's
// records. fieldseal never computes it outside PostgreSQL: it is here for
// whoever recovers a record from an export with the client key alone.
func DataKey(subjectKey []byte, collection string, version int32) string {
	mac := hmac.New(sha256.New, subjectKey)
	fmt.Fprintf(mac, "fieldseal data key v1\n%s\n%d", collection, version)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
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
	// KeyVersion and SubjectKey (standard base64 of the binary OpenPGP
	// message; absent for key version 0) are what opens Ciphertext with
	// the client key alone: see Ciphertext.
	KeyVersion int32  `json:"key_version"`
	SubjectKey []byte `json:"subject_key,omitempty"`
}
