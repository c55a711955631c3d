package db

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is how a Store connects to PostgreSQL and bounds its work there.
type Config struct {
	// URL is the app's login role, a member of fieldseal_app.
	URL string
	// TransactionPooler says URL goes through a transaction-mode pooler
	// (PgBouncer): no prepared statements and no startup parameters, since
	// consecutive transactions may run on different server sessions.
	TransactionPooler bool
	// DirectURL, if set, is a session connection straight to PostgreSQL
	// for LISTEN (revocations). Without it, the Store LISTENs on URL, or
	// behind a transaction pooler polls instead (a pooler hands LISTEN's
	// session to other clients between transactions).
	DirectURL string
	Throttle  Throttle
	Timeouts  Timeouts
	// CitusForms runs a Citus coordinator's forms of every write on one
	// PostgreSQL (dialect.go): for tests, so that a break in them shows
	// without a cluster. On Citus they are used whatever it says.
	CitusForms bool
}

// Timeouts bound what a request may cost the database, so a lock held by
// someone else, a slow statement or a full pool answers EUNAVAILABLE in
// bounded time instead of holding the request and its connection.
type Timeouts struct {
	// Statement is every statement's statement_timeout.
	Statement time.Duration
	// Long is the statement_timeout of work that reads or rewrites all of
	// a subject's records (rotation, export).
	Long time.Duration
	// Lock is every transaction's lock_timeout.
	Lock time.Duration
	// PoolWait is how long a request waits for a free connection.
	PoolWait time.Duration
}

// DefaultTimeouts are the bounds when none are configured.
var DefaultTimeouts = Timeouts{Statement: 15 * time.Second, Long: 15 * time.Minute, Lock: 5 * time.Second, PoolWait: 2 * time.Second}

// Validate checks that every bound is set.
func (t Timeouts) Validate() error {
	switch {
	case t.Statement < time.Millisecond, t.Long < time.Millisecond, t.Lock < time.Millisecond, t.PoolWait < time.Millisecond:
		return errors.New("every database timeout must be at least 1ms")
	case t.Long < t.Statement:
		return fmt.Errorf("the long-operation timeout (%s) must be at least the statement timeout (%s)", t.Long, t.Statement)
	}
	return nil
}

// connConfig parses url into the settings every app session gets: keys
// and plaintext are bind parameters, so parameter logging is off
// (log_parameter_max_length and ..._on_error are 0, which migration 00003
// lets the app role set), whatever a DBA sets log_statement or
// log_min_error_statement to, and statements and lock waits are bounded.
// Each transaction sets the same again for itself (SetSubject), which is
// all a transaction pooler leaves.
func connConfig(url string, pooler bool, t Timeouts) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("not a valid PostgreSQL URL") // its text could hold the password
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "fieldseal"
	if pooler {
		// PgBouncer 1.18 keeps no prepared statement across transactions
		// and refuses startup parameters it does not know. This mode sends
		// each statement unnamed, with its parameters bound (never
		// interpolated into the SQL text, as simple protocol would), and
		// keeps only the statement's description (its parameter types)
		// on the client.
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		return cfg, nil
	}
	cfg.ConnConfig.RuntimeParams["log_parameter_max_length"] = "0"
	cfg.ConnConfig.RuntimeParams["log_parameter_max_length_on_error"] = "0"
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = milliseconds(t.Statement)
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = milliseconds(t.Lock)
	return cfg, nil
}

func milliseconds(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// newPools returns the request pool and the health pool: one connection
// of its own, so /readyz answers whatever the request pool is doing.
func newPools(ctx context.Context, c Config) (pool, health *pgxpool.Pool, err error) {
	cfg, err := connConfig(c.URL, c.TransactionPooler, c.Timeouts)
	if err != nil {
		return nil, nil, err
	}
	hcfg := cfg.Copy()
	// pgxpool's default, max(4, CPUs), leaves requests queueing for a
	// connection while others wait on PostgreSQL: with 8 clients on 2 cores,
	// 16 connections served 15 % more reads (bench/RESULTS.md). The URL's
	// pool_max_conns still wins.
	if !strings.Contains(c.URL, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 4*runtime.NumCPU()))
	}
	hcfg.MaxConns, hcfg.MinConns = 1, 0
	if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if health, err = pgxpool.NewWithConfig(ctx, hcfg); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, health, nil
}

// acquire takes a connection for a request, waiting at most PoolWait for
// one to be free: then EUNAVAILABLE with Retry-After, rather than a
// request that waits as long as the others hold theirs.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeouts.PoolWait)
	defer cancel()
	conn, err := s.pool.Acquire(actx)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return nil, &unavailableError{fmt.Errorf("no free database connection within %s: %w", s.cfg.Timeouts.PoolWait, err)}
	}
	return conn, err
}
