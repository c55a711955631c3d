package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/auth"
)

// Keys of values kept on the echo.Context for one request.
const (
	ctxRequestID = "fieldseal.request_id"
	ctxClaims    = "fieldseal.claims"
	ctxErrorCode = "fieldseal.error_code"
)

// TokenVerifier verifies bearer tokens; errors are EUNAUTHORIZED.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// requestIDs gives each request an id, echoed in X-Request-Id, in problem
// bodies and in the log. A client-sent id is kept if it is short and plain.
func requestIDs(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !plainID(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func plainID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// accessLog writes one line per request: id, method, route template,
// status, latency and error code. Never headers, query strings or bodies.
func accessLog(log *slog.Logger, observe func(route, method string, status int, code string, latency time.Duration)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // write the problem now, so the status is known
			}
			code, _ := c.Get(ctxErrorCode).(string)
			latency := time.Since(start)
			if observe != nil {
				route := c.Path() // the template; echo leaves it empty for unknown paths
				if route == "" {
					route = "unmatched"
				}
				observe(route, c.Request().Method, c.Response().Status, code, latency)
			}
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("request_id", requestID(c)),
				slog.String("method", c.Request().Method),
				slog.String("route", c.Path()),
				slog.Int("status", c.Response().Status),
				slog.Duration("latency", latency),
				slog.String("code", code),
			)
			return nil
		}
	}
}

// recoverPanics turns a panic into a 500. The log gets the stack (which
// holds addresses, never argument values) and the panic value's type only.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.ErrorContext(c.Request().Context(), "panic", "request_id", requestID(c),
						"value_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
					err = fmt.Errorf("panic in handler")
				}
			}()
			return next(c)
		}
	}
}

// authenticate verifies the bearer token and keeps its claims.
func authenticate(v TokenVerifier) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scheme, token, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return fieldseal.Errorf(fieldseal.EUNAUTHORIZED, "missing bearer token")
			}
			claims, err := v.Verify(c.Request().Context(), strings.TrimSpace(token))
			if err != nil {
				return err
			}
			c.Set(ctxClaims, claims)
			return next(c)
		}
	}
}

// routeGuard builds each /v1 route's middleware: the request's deadline,
// the body limit, the token check, then the route's scope, whose refusal
// is recorded in the audit trail under the route's action.
type routeGuard struct {
	authenticate         echo.MiddlewareFunc
	maxBody              int64
	audit                fieldseal.AuditService
	timeout, longTimeout time.Duration
}

// need returns the middleware of a route requiring scope.
func (g routeGuard) need(scope, action string) []echo.MiddlewareFunc {
	return g.chain(g.timeout, g.maxBody, scope, action)
}

// needLong is need for a route over all of a subject's records (rotation,
// export, reindexing), whose deadline is the long one.
func (g routeGuard) needLong(scope, action string) []echo.MiddlewareFunc {
	return g.chain(g.longTimeout, g.maxBody, scope, action)
}

// needBulk is needLong for a route that takes many records at once (a
// batch, an import), whose body may be up to maxBody, or the server's
// limit if that is larger.
func (g routeGuard) needBulk(maxBody int64, scope, action string) []echo.MiddlewareFunc {
	return g.chain(g.longTimeout, max(maxBody, g.maxBody), scope, action)
}

func (g routeGuard) chain(timeout time.Duration, maxBody int64, scope, action string) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{deadline(timeout), bodyLimit(maxBody), g.authenticate, g.requireScope(scope, action)}
}

// deadline bounds the request's work: past d its database work is
// abandoned and the answer is 503 unavailable.
func deadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), d)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

func (g routeGuard) requireScope(scope, action string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if claims(c).HasScope(scope) {
				return next(c)
			}
			if err := g.audit.RecordRefusal(c.Request().Context(), caller(c), action, fieldseal.EFORBIDDEN); err != nil {
				return err // no refusal without its audit entry
			}
			return fieldseal.Errorf(fieldseal.EFORBIDDEN, "this token lacks the scope %s", scope)
		}
	}
}

// caller is who the request's token speaks for, with what the audit trail
// records of the request. The client address is the connection's peer:
// forwarding headers are not trusted.
func caller(c echo.Context) fieldseal.Caller {
	cl := claims(c)
	addr, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		addr = c.Request().RemoteAddr
	}
	return fieldseal.Caller{Subject: cl.Subject, TokenID: cl.TokenID, JTI: cl.ID, ClientID: cl.ClientID,
		RequestID: requestID(c), ClientAddr: addr}
}

func claims(c echo.Context) auth.Claims {
	cl, _ := c.Get(ctxClaims).(auth.Claims)
	return cl
}

// bodyLimit refuses bodies over limit: at once when Content-Length says
// so, else when the decoder reads past it.
func bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > limit {
				return fieldseal.Errorf(fieldseal.ETOOLARGE, "the request body is larger than %d bytes", limit)
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			return next(c)
		}
	}
}
