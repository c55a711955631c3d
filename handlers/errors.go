package handlers

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// statusOf maps each error code to its HTTP status: the only such mapping.
var statusOf = map[string]int{
	fieldseal.EINVALID:      http.StatusBadRequest,
	fieldseal.EKEYREQUIRED:  http.StatusBadRequest,
	fieldseal.EINVALIDKEY:   http.StatusBadRequest,
	fieldseal.EUNAUTHORIZED: http.StatusUnauthorized,
	fieldseal.EFORBIDDEN:    http.StatusForbidden,
	fieldseal.EWRONGKEY:     http.StatusForbidden,
	fieldseal.ENOTFOUND:     http.StatusNotFound,
	fieldseal.ECONFLICT:     http.StatusPreconditionFailed,
	fieldseal.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	fieldseal.ERATELIMITED:  http.StatusTooManyRequests,
	fieldseal.EUNAVAILABLE:  http.StatusServiceUnavailable,
	fieldseal.EINTERNAL:     http.StatusInternalServerError,
	fieldseal.ECORRUPT:      http.StatusInternalServerError,

	fieldseal.EIDEMPOTENCYINUSE:  http.StatusConflict,
	fieldseal.EINDEXING:          http.StatusConflict,
	fieldseal.ESUPERSEDED:        http.StatusConflict,
	fieldseal.EIDEMPOTENCYREUSED: http.StatusUnprocessableEntity,
}

// statusClientClosed is logged (never sent: nobody is listening) for a
// request whose client hung up before its answer: nginx's 499. It is not
// a server error, so it stays out of the 5xx counts.
const (
	statusClientClosed = 499
	codeClientClosed   = "client_closed_request"
)

// Problem is an RFC 9457 problem details body with fieldseal's stable code.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
}

// errorHandler writes every error as problem+json. Internal errors are
// logged with the request id and shown to the client as a bare 500.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var replay *fieldseal.Replay
		if errors.As(err, &replay) {
			// Not an error: the answer given the first time, sent again.
			c.Response().Header().Set(HeaderIdempotentReplayed, "true")
			_ = writeAnswer(c, replay.Answer)
			return
		}
		if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
			c.Set(ctxErrorCode, codeClientClosed)
			c.Response().WriteHeader(statusClientClosed)
			return
		}
		code, status, detail := classify(err)
		switch {
		case status == http.StatusServiceUnavailable:
			// The database is down or busy: worth a look, not a bug.
			log.WarnContext(c.Request().Context(), "request failed",
				"request_id", requestID(c), "route", c.Path(), "error", err.Error())
		case status >= 500:
			log.ErrorContext(c.Request().Context(), "request failed",
				"request_id", requestID(c), "route", c.Path(), "error", err.Error())
		}
		c.Set(ctxErrorCode, code)
		h := c.Response().Header()
		switch code {
		case fieldseal.EUNAUTHORIZED:
			h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+detail+`"`)
		case fieldseal.EFORBIDDEN:
			h.Set("WWW-Authenticate", `Bearer error="insufficient_scope", error_description="`+detail+`"`)
		case fieldseal.ERATELIMITED, fieldseal.EUNAVAILABLE:
			d := max(fieldseal.ErrorRetryAfter(err), time.Second)
			h.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		}
		h.Set(echo.HeaderContentType, "application/problem+json")
		c.Response().WriteHeader(status)
		if c.Request().Method == http.MethodHead {
			return
		}
		_ = writeJSONBody(c, Problem{
			Type: "about:blank", Title: http.StatusText(status), Status: status,
			Detail: detail, Code: code, RequestID: requestID(c),
		})
	}
}

// classify finds the code, status and client-safe detail of err.
func classify(err error) (code string, status int, detail string) {
	var he *echo.HTTPError
	if errors.As(err, &he) && fieldseal.ErrorCode(err) == fieldseal.EINTERNAL {
		// echo's own errors: unknown route, wrong method.
		switch he.Code {
		case http.StatusNotFound:
			return fieldseal.ENOTFOUND, http.StatusNotFound, "no such endpoint"
		case http.StatusMethodNotAllowed:
			return fieldseal.EINVALID, http.StatusMethodNotAllowed, "method not allowed on this endpoint"
		case http.StatusRequestEntityTooLarge:
			return fieldseal.ETOOLARGE, http.StatusRequestEntityTooLarge, "the request body is too large"
		}
	}
	code = fieldseal.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = fieldseal.EINTERNAL, http.StatusInternalServerError
	}
	// A 5xx says no more than its status, except a damaged record (its
	// ids are the owner's to know) and an unavailability fieldseal itself
	// explains (a *fieldseal.Error: exports all busy, not on Citus yet);
	// one from the database may quote it.
	var fe *fieldseal.Error
	explained := code == fieldseal.EUNAVAILABLE && errors.As(err, &fe) && fe.Code == code
	if status >= 500 && code != fieldseal.ECORRUPT && !explained {
		return code, status, http.StatusText(status)
	}
	return code, status, fieldseal.ErrorMessage(err)
}
