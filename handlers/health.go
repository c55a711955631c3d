package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// HealthChecker reports on the database.
type HealthChecker interface {
	// Ping returns EUNAVAILABLE when the database cannot be reached.
	Ping(ctx context.Context) error
	// SchemaVersion returns the applied migration version.
	SchemaVersion(ctx context.Context) (int64, error)
}

// Health serves /healthz and /readyz.
type Health struct {
	db         HealthChecker
	schemaHead int64
}

// healthz answers while the process serves HTTP at all.
func (h *Health) healthz(c echo.Context) error {
	return writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds /readyz: a probe must get an answer, not wait on a
// database that does not give one.
const readyTimeout = time.Second

// readyz answers 200 when the database is reachable and its schema is the
// version this binary was built for, within readyTimeout (the store checks
// on a connection of its own, so a full request pool does not delay it).
func (h *Health) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := h.db.Ping(ctx); err != nil {
		return err
	}
	v, err := h.db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v != h.schemaHead {
		return fieldseal.Errorf(fieldseal.EUNAVAILABLE, "the database schema is at version %d; this server needs %d (run fieldseal migrate up)", v, h.schemaHead)
	}
	return writeJSON(c, http.StatusOK, map[string]any{"status": "ready", "schema_version": v})
}
