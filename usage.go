package fieldseal

import (
	"fmt"
	"slices"
	"time"
)

// ActionTokenRevoke is the audit entry of a token revoked by `fieldseal
// audit usage --revoke`, in the chain of the subject it was used for.
const ActionTokenRevoke = "token.revoke"

// UsageReport is what the audit trail says of how tokens were used in a
// window (`fieldseal audit usage`): per subject and per token of each
// subject, and what looks wrong.
type UsageReport struct {
	Since    time.Time      `json:"since"`
	Until    time.Time      `json:"until"`
	Limits   UsageLimits    `json:"limits"`
	Subjects []SubjectUsage `json:"subjects"`
	Tokens   []TokenUsage   `json:"tokens"`
}

// Use is what a subject's or a token's entries in the window count. A
// decrypt is a record a read or a keyed list opened.
type Use struct {
	Requests  int64     `json:"requests"`
	Decrypts  int64     `json:"decrypts"`
	Refusals  int64     `json:"refusals"`
	WrongKeys int64     `json:"wrong_keys"`
	Addresses int64     `json:"addresses"` // distinct client addresses
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// SubjectUsage is one subject's use in the window. BaselineDecrypts is
// what it decrypted in as long a time, on average, over the baseline
// period before the window.
type SubjectUsage struct {
	Subject string `json:"subject"`
	Use
	Tokens           int64    `json:"tokens"`
	BaselineDecrypts float64  `json:"baseline_decrypts"`
	Flags            []string `json:"flags,omitempty"`
}

// TokenUsage is one token's use of one subject in the window. TokenID is
// its jti ("" for requests whose token had none). UsedAfterRevocation:
// an entry of the window came after a revocation of the jti was recorded
// (an instance that had not heard of it yet, or a clock behind).
type TokenUsage struct {
	Subject  string `json:"subject"`
	TokenID  string `json:"token_id"`
	ClientID string `json:"client_id,omitempty"`
	Use
	UsedAfterRevocation bool     `json:"used_after_revocation"`
	Flags               []string `json:"flags,omitempty"`
}

// UsageLimits are the thresholds of what looks wrong.
type UsageLimits struct {
	// Addresses: a token used from more distinct client addresses.
	Addresses int64 `json:"addresses"`
	// DecryptFactor and DecryptMin: a subject (or one of its tokens) that
	// decrypted more than DecryptFactor times its baseline, and at least
	// DecryptMin records.
	DecryptFactor float64 `json:"decrypt_factor"`
	DecryptMin    int64   `json:"decrypt_min"`
	// WrongKeys: a token refused this many wrong keys or more.
	WrongKeys int64 `json:"wrong_keys"`
}

// DefaultUsageLimits flag a token used from more than 3 addresses, 10
// times a subject's usual decrypts (at least 100), 5 wrong keys.
var DefaultUsageLimits = UsageLimits{Addresses: 3, DecryptFactor: 10, DecryptMin: 100, WrongKeys: 5}

// Flags, as the report names them.
const (
	FlagManyAddresses       = "many_addresses"
	FlagDecryptsAboveUsual  = "decrypts_above_usual"
	FlagWrongKeyBurst       = "wrong_key_burst"
	FlagUsedAfterRevocation = "used_after_revocation"
)

// Judge sets the flags of every subject and token under l, and says how
// many tokens it flagged.
func (r *UsageReport) Judge(l UsageLimits) int {
	r.Limits = l
	baseline := map[string]float64{}
	for i := range r.Subjects {
		s := &r.Subjects[i]
		baseline[s.Subject] = s.BaselineDecrypts
		s.Flags = nil
		if decryptsAbove(s.Decrypts, s.BaselineDecrypts, l) {
			s.Flags = append(s.Flags, FlagDecryptsAboveUsual)
		}
	}
	flagged := 0
	for i := range r.Tokens {
		t := &r.Tokens[i]
		t.Flags = nil
		if t.Addresses > l.Addresses {
			t.Flags = append(t.Flags, FlagManyAddresses)
		}
		if decryptsAbove(t.Decrypts, baseline[t.Subject], l) {
			t.Flags = append(t.Flags, FlagDecryptsAboveUsual)
		}
		if t.WrongKeys >= l.WrongKeys {
			t.Flags = append(t.Flags, FlagWrongKeyBurst)
		}
		if t.UsedAfterRevocation {
			t.Flags = append(t.Flags, FlagUsedAfterRevocation)
		}
		if len(t.Flags) > 0 {
			flagged++
		}
	}
	slices.SortStableFunc(r.Tokens, func(a, b TokenUsage) int { return len(b.Flags) - len(a.Flags) })
	return flagged
}

func decryptsAbove(decrypts int64, baseline float64, l UsageLimits) bool {
	return decrypts >= l.DecryptMin && float64(decrypts) > l.DecryptFactor*baseline
}

// Validate checks that the limits make sense.
func (l UsageLimits) Validate() error {
	switch {
	case l.Addresses < 1:
		return fmt.Errorf("the address limit must be at least 1")
	case l.DecryptFactor < 1:
		return fmt.Errorf("the decrypt factor must be at least 1")
	case l.WrongKeys < 1:
		return fmt.Errorf("the wrong-key limit must be at least 1")
	}
	return nil
}
