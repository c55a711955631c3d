package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/handlers/openapi"
)

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// Options are what the API is built from.
type Options struct {
	Records  fieldseal.RecordService
	Keys     fieldseal.KeyService
	Export   fieldseal.ExportService
	Audit    fieldseal.AuditService
	Grants   fieldseal.GrantsService
	Health   HealthChecker
	Verifier TokenVerifier
	// EncJWKS is served at /.well-known/jwks.json: the public half of the
	// token decryption key, for providers that encrypt access tokens.
	EncJWKS []byte
	// Metrics serves /metrics; nil leaves the route out.
	Metrics http.Handler
	// Observe, if not nil, is told of every request: its route template
	// (never the path, which holds ids), method, status, error code and
	// latency. For metrics.
	Observe func(route, method string, status int, code string, latency time.Duration)
	Log     *slog.Logger
	// MaxBody limits request bodies (0: DefaultMaxBodyBytes).
	MaxBody int64
	// SchemaHead is the migration version this binary needs.
	SchemaHead int64
	// RequestTimeout is the deadline of every /v1 request (0: 15 s), and
	// LongRequestTimeout that of rotation and export (0: 15 min).
	RequestTimeout, LongRequestTimeout time.Duration
}

// New returns the HTTP API. Every route is listed here.
func New(o Options) *echo.Echo {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBodyBytes
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 15 * time.Second
	}
	if o.LongRequestTimeout <= 0 {
		o.LongRequestTimeout = 15 * time.Minute
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(o.Log)
	e.Use(requestIDs, accessLog(o.Log, o.Observe), recoverPanics(o.Log))

	(&Health{db: o.Health, schemaHead: o.SchemaHead}).register(e)
	e.GET("/.well-known/jwks.json", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		return c.Blob(http.StatusOK, "application/jwk-set+json", o.EncJWKS)
	})
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapi.Document)
	})
	if o.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(o.Metrics))
	}

	// Middleware is attached per route, not to the group: a group's
	// middleware would also catch unknown paths and methods, hiding 405.
	v1 := e.Group("/v1")
	guard := routeGuard{
		authed: []echo.MiddlewareFunc{bodyLimit(o.MaxBody), authenticate(o.Verifier)}, audit: o.Audit,
		timeout: o.RequestTimeout, longTimeout: o.LongRequestTimeout,
	}
	(&Records{service: o.Records, now: time.Now}).register(v1, guard)
	(&Keys{service: o.Keys}).register(v1, guard)
	(&Export{service: o.Export, log: o.Log, writeTimeout: o.RequestTimeout}).register(v1, guard)
	(&Audit{service: o.Audit, grants: o.Grants}).register(v1, guard)
	return e
}
