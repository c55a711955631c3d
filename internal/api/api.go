// Package api builds fieldseal's HTTP API from its settings: the one
// wiring of store, token verifier, revocation watcher and handlers, shared
// by `fieldseal serve` and the tests, so the tests run serve's wiring.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/handlers"
	"github.com/fieldseal/fieldseal/migrations"
)

// Config is what the API is built from.
type Config struct {
	Database db.Config
	// Tokens are the token rules and key source. Revocations is set by New.
	Tokens  auth.Options
	Log     *slog.Logger
	MaxBody int64 // 0: handlers.DefaultMaxBodyBytes
	// Metrics serves /metrics (nil: no route); Observe and OnAudit feed
	// it (each may be nil).
	Metrics http.Handler
	Observe func(route, method string, status int, code string, latency time.Duration)
	OnAudit func(action, outcome string)
	// OnAuditFailure is db.Store.OnAuditFailure.
	OnAuditFailure func(action string)
}

// RevocationReread is how often the revocation list is read again even
// without a notification.
const RevocationReread = 30 * time.Second

// API is a built API: its handler, and the store behind it.
type API struct {
	Handler http.Handler
	Store   *db.Store
}

// New connects as the app role, refuses a role that could bypass
// row-level security, starts watching revocations until ctx ends, and
// builds the handlers. Errors name the setting at fault.
func New(ctx context.Context, c Config) (*API, error) {
	store, err := db.Open(ctx, c.Database)
	var refused *db.SessionError
	switch {
	case errors.As(err, &refused):
		if !c.Database.TransactionPooler && strings.Contains(err.Error(), "unsupported startup parameter") {
			return nil, fmt.Errorf("FIELDSEAL_DATABASE_URL: %w: a transaction pooler (PgBouncer) refuses the settings fieldseal sends when it connects; "+
				"set FIELDSEAL_TRANSACTION_POOLER=true (--transaction-pooler) to connect through one", err)
		}
		return nil, fmt.Errorf("refusing to start: %w", err)
	case err != nil:
		return nil, fmt.Errorf("FIELDSEAL_DATABASE_URL: %w", err)
	}
	store.OnAudit = c.OnAudit
	store.OnAuditFailure = c.OnAuditFailure
	revocations := auth.NewRevocations()
	c.Tokens.Revocations = revocations
	c.Tokens.Log = c.Log
	verifier, err := auth.NewVerifier(ctx, c.Tokens)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("token verification: %w", err)
	}
	go store.WatchRevocations(ctx, RevocationReread, revocations.Replace, c.Log)
	t := c.Database.Timeouts
	if t == (db.Timeouts{}) {
		t = db.DefaultTimeouts
	}
	h := handlers.New(handlers.Options{
		Records: store, Collections: store, Keys: store, Export: store, Audit: store, Grants: store, Health: store, Verifier: verifier,
		EncJWKS: c.Tokens.Decrypter.PublicJWKS, Metrics: c.Metrics, Observe: c.Observe, Log: c.Log,
		MaxBody: c.MaxBody, SchemaHead: migrations.Head(),
		RequestTimeout: t.Statement, LongRequestTimeout: t.Long,
	})
	return &API{Handler: h, Store: store}, nil
}

// Close closes the store's connections.
func (a *API) Close() { a.Store.Close() }
