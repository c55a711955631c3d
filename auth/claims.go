package auth

import (
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Scopes used by fieldseal's routes.
const (
	ScopeRecordsRead  = "records:read"
	ScopeRecordsWrite = "records:write"
	ScopeKeysRotate   = "keys:rotate"
	ScopeAuditRead    = "audit:read"
)

// Claims is what fieldseal uses from a verified token.
type Claims struct {
	Subject string
	ID      string // jti, may be empty
	// TokenID identifies the token for per-token limits: its jti, or a
	// hash of the token when it has none. Never the token itself.
	TokenID   string
	ClientID  string // client_id (RFC 9068), may be empty
	Scopes    []string
	IssuedAt  time.Time // zero when the token has no iat
	ExpiresAt time.Time
}

// HasScope reports whether the token grants scope.
func (c Claims) HasScope(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// tokenClaims is the JSON shape of an access token's claims. A sub that is
// not a string fails to decode, and the token is refused as malformed.
type tokenClaims struct {
	jwt.RegisteredClaims
	Scope    string   `json:"scope"`     // RFC 9068: space-separated
	Scp      []string `json:"scp"`       // the array form some providers use
	ClientID string   `json:"client_id"` // RFC 9068
}

func (tc *tokenClaims) claims() Claims {
	c := Claims{Subject: tc.Subject, ID: tc.ID, ClientID: tc.ClientID}
	c.Scopes = append(strings.Fields(tc.Scope), tc.Scp...)
	if tc.IssuedAt != nil {
		c.IssuedAt = tc.IssuedAt.Time
	}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	return c
}
