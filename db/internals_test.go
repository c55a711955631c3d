package db

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fieldseal/fieldseal"
)

// Pool is the Store's request pool, for tests that run statements on the
// app's own sessions.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Two valid Encryption-Key values for tests.
const (
	KeyA = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	KeyB = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
)

// MustKey parses s, failing t if it is not a key.
func MustKey(t testing.TB, s string) fieldseal.Key {
	t.Helper()
	k, err := fieldseal.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
