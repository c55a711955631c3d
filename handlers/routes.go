package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// New returns the HTTP API. Every route is listed here.
//
// records, keys and export serve the /v1 endpoints, health the probes, verifier checks
// bearer tokens; maxBody limits request bodies (0: DefaultMaxBodyBytes);
// schemaHead is the migration version this binary needs; encJWKS is the
// JWK Set served at /.well-known/jwks.json: the public half of the token
// decryption key, for identity providers that encrypt access tokens.
func New(records fieldseal.RecordService, keys fieldseal.KeyService, export fieldseal.ExportService,
	health HealthChecker, verifier TokenVerifier, encJWKS []byte, log *slog.Logger, maxBody int64, schemaHead int64) *echo.Echo {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(requestIDs, accessLog(log), recoverPanics(log))

	(&Health{db: health, schemaHead: schemaHead}).register(e)
	e.GET("/.well-known/jwks.json", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		return c.Blob(http.StatusOK, "application/jwk-set+json", encJWKS)
	})

	// Middleware is attached per route, not to the group: a group's
	// middleware would also catch unknown paths and methods, hiding 405.
	v1 := e.Group("/v1")
	authed := []echo.MiddlewareFunc{bodyLimit(maxBody), authenticate(verifier)}
	(&Records{service: records, now: time.Now}).register(v1, authed)
	(&Keys{service: keys}).register(v1, authed)
	(&Export{service: export, log: log}).register(v1, authed)
	return e
}
