package auth

import (
	"sync"

	"github.com/fieldseal/fieldseal"
)

// Revocations is the in-memory revocation list every request is checked
// against; something outside (the db package's watcher) replaces its
// contents whenever the shared list changes. Safe for concurrent use.
type Revocations struct {
	mu       sync.RWMutex
	jtis     map[string]struct{}
	subjects map[string]fieldseal.Revocation // the latest per subject
}

// NewRevocations returns an empty list.
func NewRevocations() *Revocations {
	return &Revocations{jtis: map[string]struct{}{}, subjects: map[string]fieldseal.Revocation{}}
}

// Replace makes list the current revocations.
func (r *Revocations) Replace(list []fieldseal.Revocation) {
	jtis := make(map[string]struct{}, len(list))
	subjects := map[string]fieldseal.Revocation{}
	for _, rv := range list {
		switch {
		case rv.JTI != "":
			jtis[rv.JTI] = struct{}{}
		case rv.Subject != "":
			if cur, ok := subjects[rv.Subject]; !ok || rv.RevokedBefore.After(cur.RevokedBefore) {
				subjects[rv.Subject] = rv
			}
		}
	}
	r.mu.Lock()
	r.jtis, r.subjects = jtis, subjects
	r.mu.Unlock()
}

// Revoked reports whether c's token is revoked: by its jti, or because its
// subject's tokens issued before some time are, and it was issued before
// then (or does not say when it was issued).
func (r *Revocations) Revoked(c Claims) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.jtis[c.ID]; ok && c.ID != "" {
		return true
	}
	if rv, ok := r.subjects[c.Subject]; ok {
		return c.IssuedAt.IsZero() || c.IssuedAt.Before(rv.RevokedBefore)
	}
	return false
}
