package db

import "github.com/jackc/pgx/v5/pgxpool"

// Pool is the Store's request pool, for tests that run statements on the
// app's own sessions.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
