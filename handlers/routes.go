package handlers

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/handlers/openapi"
)

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// Options are what the API is built from.
type Options struct {
	Records     fieldseal.RecordService
	Collections fieldseal.CollectionService
	Keys        fieldseal.KeyService
	Export      fieldseal.ExportService
	Audit       fieldseal.AuditService
	Grants      fieldseal.GrantsService
	Health      HealthChecker
	Verifier    TokenVerifier
	// EncJWKS returns what /.well-known/jwks.json serves: the public halves
	// of the token decryption keys, for providers that encrypt access
	// tokens (called per request: the keys reload on SIGHUP).
	EncJWKS func() []byte
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

// router is what registers routes: the echo instance or a group.
type router interface {
	GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	HEAD(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
}

// get registers a GET route and its HEAD twin: the same handler, whose
// body net/http drops (RFC 9110 section 9.3.2).
// only refuses a request with a query parameter h does not read (400
// naming it), so that a typo (colection=) is not silently an unfiltered
// list. A name ending in ".*" allows every name with that prefix.
func only(h echo.HandlerFunc, names ...string) echo.HandlerFunc {
	return func(c echo.Context) error {
		for name := range c.QueryParams() {
			if !allowedParam(name, names) {
				return fieldseal.Errorf(fieldseal.EINVALID, "unknown query parameter %q: this route takes %s", truncate(name, 64), paramList(names))
			}
		}
		return h(c)
	}
}

func allowedParam(name string, names []string) bool {
	for _, n := range names {
		if prefix, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(name, prefix) && len(name) > len(prefix) || n == name {
			return true
		}
	}
	return false
}

func paramList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func get(r router, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	r.GET(path, h, m...)
	r.HEAD(path, h, m...)
}

// New returns the HTTP API. Every route is listed here; each handler
// struct holds only what its routes need.
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

	health := &Health{db: o.Health, schemaHead: o.SchemaHead}
	get(e, "/healthz", health.healthz)
	get(e, "/readyz", health.readyz)
	get(e, "/.well-known/jwks.json", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		return c.Blob(http.StatusOK, "application/jwk-set+json", o.EncJWKS())
	})
	get(e, "/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapi.Document)
	})
	if o.Metrics != nil {
		get(e, "/metrics", echo.WrapHandler(o.Metrics))
	}

	// Middleware is attached per route, not to the group: a group's
	// middleware would also catch unknown paths and methods, hiding 405.
	// need: the request deadline, body limit, token and the route's scope
	// (whose refusal is audited under the route's action); needLong: the
	// same with the long deadline.
	v1 := e.Group("/v1")
	g := routeGuard{
		authenticate: authenticate(o.Verifier), maxBody: o.MaxBody, audit: o.Audit,
		timeout: o.RequestTimeout, longTimeout: o.LongRequestTimeout,
	}
	records := &Records{service: o.Records, now: time.Now}
	v1.POST("/records", only(records.create), g.need(auth.ScopeRecordsWrite, fieldseal.ActionCreate)...)
	get(v1, "/records", only(records.list, "collection", "limit", "after", "secret.*", "public.*"), g.need(auth.ScopeRecordsRead, fieldseal.ActionList)...)
	get(v1, "/records/:id", only(records.get), g.need(auth.ScopeRecordsRead, fieldseal.ActionRead)...)
	v1.PUT("/records/:id", only(records.replace), g.need(auth.ScopeRecordsWrite, fieldseal.ActionReplace)...)
	v1.DELETE("/records/:id", only(records.delete), g.need(auth.ScopeRecordsWrite, fieldseal.ActionDelete)...)
	v1.POST("/records/batch", only(records.batch), g.needBulk(MaxBatchBytes, auth.ScopeRecordsWrite, fieldseal.ActionCreate)...)

	collections := &Collections{service: o.Collections}
	v1.PUT("/collections/:collection", only(collections.put), g.needLong(auth.ScopeRecordsWrite, fieldseal.ActionCollection)...)
	get(v1, "/collections/:collection", only(collections.get), g.need(auth.ScopeRecordsRead, fieldseal.ActionCollectionRead)...)

	keys := &Keys{service: o.Keys}
	v1.POST("/keys/verify", only(keys.verify), g.need(auth.ScopeRecordsRead, fieldseal.ActionVerify)...)
	v1.POST("/keys/rotate", only(keys.rotate), g.needLong(auth.ScopeKeysRotate, fieldseal.ActionRotate)...)

	export := &Export{service: o.Export, log: o.Log, writeTimeout: o.RequestTimeout, maxSecret: o.MaxBody}
	get(v1, "/records/:id/ciphertext", only(export.ciphertext), g.need(auth.ScopeRecordsRead, fieldseal.ActionCiphertext)...)
	get(v1, "/export", only(export.export), g.needLong(auth.ScopeRecordsRead, fieldseal.ActionExport)...)
	v1.POST("/import", only(export.importRecords), g.needBulk(MaxImportBytes, auth.ScopeRecordsWrite, fieldseal.ActionImport)...)

	audit := &Audit{service: o.Audit, grants: o.Grants}
	get(v1, "/audit/events", only(audit.events, "subject", "action", "since", "until", "limit", "after"), g.need(auth.ScopeAuditRead, fieldseal.ActionAuditRead)...)
	get(v1, "/audit/grants", only(audit.grantsReport), g.need(auth.ScopeAuditRead, fieldseal.ActionAuditRead)...)
	return e
}
