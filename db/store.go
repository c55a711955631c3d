package db

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store runs fieldseal's queries over a connection pool of the app role.
type Store struct {
	pool   *pgxpool.Pool
	health *pgxpool.Pool // one connection for /readyz and revocation polls
	cfg    Config        // with its defaults filled in
	// dialect: one PostgreSQL's or Citus's forms (dialect.go), found by
	// Open.
	dialect dialect
	// exports holds a token per export running: at most a quarter of the
	// pool's connections stream exports at once (see Export).
	exports chan struct{}
	// OnAudit, if not nil, is told of every audit entry committed: its
	// action and outcome. For metrics. Set before the Store is used.
	OnAudit func(action, outcome string)
	// OnAuditFailure, if not nil, is told of every request that failed
	// because its audit entry did not commit (its append, or the COMMIT
	// that carried it, failed; a client that went away is not counted).
	OnAuditFailure func(action string)
}

// Open connects to PostgreSQL as c says and, on its first connection,
// refuses a role that could step around fieldseal's protections and finds
// the database's dialect (one PostgreSQL or a Citus coordinator). A
// refusal, or a database that cannot be asked, is a *SessionError.
// Further connections are made as needed.
func Open(ctx context.Context, c Config) (*Store, error) {
	if c.Timeouts == (Timeouts{}) {
		c.Timeouts = DefaultTimeouts
	}
	if c.Throttle == (Throttle{}) {
		c.Throttle = DefaultThrottle
	}
	if err := c.Throttle.Validate(); err != nil {
		return nil, err
	}
	if err := c.Timeouts.Validate(); err != nil {
		return nil, err
	}
	if c.DirectURL != "" {
		if _, err := pgx.ParseConfig(c.DirectURL); err != nil {
			return nil, errors.New("the direct URL is not a valid PostgreSQL URL")
		}
	}
	pool, health, err := newPools(ctx, c)
	if err != nil {
		return nil, err
	}
	s := &Store{
		pool: pool, health: health, cfg: c,
		exports: make(chan struct{}, max(1, pool.Config().MaxConns/4)),
	}
	if err := s.checkSessionRole(ctx); err != nil {
		s.Close()
		return nil, &SessionError{err}
	}
	if s.dialect, err = dialectOf(ctx, s.pool, c.CitusForms); err != nil {
		s.Close()
		return nil, &SessionError{err}
	}
	return s, nil
}

// SessionError is Open's refusal of the connection's role, or its failure
// to ask the database who it is connected as.
type SessionError struct{ err error }

func (e *SessionError) Error() string { return e.err.Error() }
func (e *SessionError) Unwrap() error { return e.err }

// Dialect names the database's dialect: "PostgreSQL" or "Citus".
func (s *Store) Dialect() string { return s.dialect.String() }

// Close closes every connection.
func (s *Store) Close() {
	s.pool.Close()
	s.health.Close()
}

// PoolStat returns the request pool's statistics, for metrics.
func (s *Store) PoolStat() *pgxpool.Stat { return s.pool.Stat() }
