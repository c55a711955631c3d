package fieldseal

import (
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
}

// Page is one page of records; Next is the zero ID on the last page.
type Page struct {
	Items []Record
	Next  ID
}
