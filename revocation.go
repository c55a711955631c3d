package fieldseal

import "time"

// Revocation withdraws tokens before they expire: one token by its jti, or
// every token of Subject issued before RevokedBefore. After ExpiresAt no
// token it names can be valid any more, and it is forgotten.
type Revocation struct {
	JTI           string
	Subject       string
	RevokedBefore time.Time
	ExpiresAt     time.Time
}
