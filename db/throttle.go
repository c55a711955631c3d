package db

import (
	"fmt"
	"time"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/db/sqlc"
)

// Throttle limits wrong keys: once a token has had TokenLimit wrong-key
// answers in the current Window, or all of a subject's tokens together
// SubjectLimit, key-bearing requests answer ERATELIMITED until the window
// passes, before the key is even tried, so a throttled caller learns
// nothing about any key. Requests without a key are not affected.
type Throttle struct {
	TokenLimit   int
	SubjectLimit int
	Window       time.Duration
}

// DefaultThrottle is 10 wrong keys a minute per token, 50 per subject.
var DefaultThrottle = Throttle{TokenLimit: 10, SubjectLimit: 50, Window: time.Minute}

// Validate checks that the limits make sense.
func (t Throttle) Validate() error {
	switch {
	case t.TokenLimit < 1:
		return fmt.Errorf("the per-token wrong-key limit must be at least 1")
	case t.SubjectLimit < t.TokenLimit:
		return fmt.Errorf("the per-subject wrong-key limit (%d) must be at least the per-token limit (%d)", t.SubjectLimit, t.TokenLimit)
	case t.Window < time.Second:
		return fmt.Errorf("the wrong-key window must be at least a second")
	}
	return nil
}

func (t Throttle) windowSeconds() int32 { return int32(t.Window / time.Second) }

// throttled is the refusal of a caller whose key use AdmitKeyUse refused:
// Retry-After is the end of the window whose limit was reached.
func (s *Store) throttled(a sqlc.AdmitKeyUseRow) error {
	until := a.SubjectWindowStart.Add(s.cfg.Throttle.Window)
	if int(a.TokenFailures) >= s.cfg.Throttle.TokenLimit {
		until = a.TokenWindowStart.Add(s.cfg.Throttle.Window)
	}
	return &fieldseal.Error{
		Code:       fieldseal.ERATELIMITED,
		Message:    "too many wrong keys: key-bearing requests are refused until the window passes",
		RetryAfter: max(time.Until(until), time.Second),
	}
}
