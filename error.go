package fieldseal

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each is the stable "code" of a problem+json response; the
// HTTP status for each is chosen in handlers/errors.go and nowhere else.
const (
	EINVALID      = "invalid_request"    // malformed input
	EKEYREQUIRED  = "key_required"       // Encryption-Key absent where needed
	EINVALIDKEY   = "invalid_key"        // Encryption-Key not base64 of 32 bytes
	EUNAUTHORIZED = "invalid_token"      // missing, malformed or untrusted token
	EFORBIDDEN    = "insufficient_scope" // valid token without the scope
	EWRONGKEY     = "wrong_key"          // a well-formed key that is not the subject's
	ENOTFOUND     = "not_found"          // no such record for this subject
	ECONFLICT     = "version_conflict"   // If-Match does not match
	ETOOLARGE     = "payload_too_large"  // body over the limit
	ERATELIMITED  = "rate_limited"       // too many requests
	EUNAVAILABLE  = "unavailable"        // the database cannot be reached, or not in time
	EINTERNAL     = "internal"           // anything else; never shown in detail

	ECORRUPT           = "corrupt_record"         // a stored record does not open under the verified key
	EIDEMPOTENCYINUSE  = "idempotency_key_in_use" // the same Idempotency-Key is still running
	EIDEMPOTENCYREUSED = "idempotency_key_reused" // the Idempotency-Key was used for another request
	EINDEXING          = "still_indexing"         // a search on a field whose records are still being tagged
	ESUPERSEDED        = "settings_changed"       // a collection's settings changed while a PUT indexed them
)

// Error is an error with a code and a message safe to show the client.
// Messages never contain keys, tokens or decrypted values.
type Error struct {
	Code    string
	Message string
	// RetryAfter, for ERATELIMITED and EUNAVAILABLE, is how long until
	// the request may succeed.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code and a formatted, client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorRetryAfter returns the RetryAfter of the first *Error in err's chain.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, and a generic text for any other error, whose detail belongs in
// the log only.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
