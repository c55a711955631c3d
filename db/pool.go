package db

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// NewPool connects to PostgreSQL as the app role, with every session set up
// as fieldseal needs: keys and plaintext are bind parameters, so parameter
// logging is off (log_parameter_max_length and ..._on_error are 0, which
// migration 00003 lets the app role set), whatever a DBA sets log_statement
// or log_min_error_statement to.
func NewPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("not a valid PostgreSQL URL") // its text could hold the password
	}
	// pgxpool's default, max(4, CPUs), leaves requests queueing for a
	// connection while others wait on PostgreSQL: with 8 clients on 2 cores,
	// 16 connections served 15 % more reads (bench/RESULTS.md). The URL's
	// pool_max_conns still wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 4*runtime.NumCPU()))
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "fieldseal"
	cfg.ConnConfig.RuntimeParams["log_parameter_max_length"] = "0"
	cfg.ConnConfig.RuntimeParams["log_parameter_max_length_on_error"] = "0"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}
