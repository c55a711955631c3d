package fieldseal

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
