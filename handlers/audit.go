package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Audit serves /v1/audit: the trail, for tokens with audit:read.
type Audit struct {
	service fieldseal.AuditService
	grants  fieldseal.GrantsService
}

// grantsReport is `fieldseal audit grants --format json` over HTTP: 200
// whether or not something drifted (the body's drift list says).
func (h *Audit) grantsReport(c echo.Context) error {
	rep, err := h.grants.Grants(c.Request().Context())
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeJSON(c, http.StatusOK, rep)
}

// auditPage is the body of GET /v1/audit/events.
type auditPage struct {
	Items []fieldseal.AuditEvent `json:"items"`
	Next  string                 `json:"next,omitempty"`
}

// events lists the trail in time order: ?subject=&action=&since=&until=
// (RFC 3339) &limit= (1–500, default 100) &after= (a previous page's next).
func (h *Audit) events(c echo.Context) error {
	subject, err := textParam(c, "subject")
	if err != nil {
		return err
	}
	action, err := textParam(c, "action")
	if err != nil {
		return err
	}
	f := fieldseal.AuditFilter{Subject: subject, Action: action, Limit: 100}
	if f.Since, err = queryTime(c, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return err
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return fieldseal.Errorf(fieldseal.EINVALID, "limit must be a whole number from 1 to %d", MaxPageSize)
		}
		f.Limit = n
	}
	if v := c.QueryParam("after"); v != "" {
		if f.After, err = decodeAuditCursor(v); err != nil {
			return err
		}
	}
	page, err := h.service.AuditEvents(c.Request().Context(), caller(c), f)
	if err != nil {
		return err
	}
	resp := auditPage{Items: page.Items}
	if !page.Next.At.IsZero() {
		resp.Next = encodeAuditCursor(page.Next)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeJSON(c, http.StatusOK, resp)
}

func queryTime(c echo.Context, name string) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fieldseal.Errorf(fieldseal.EINVALID, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

// The cursor is opaque to clients: base64url of a small JSON object.
type auditCursorJSON struct {
	At      time.Time `json:"t"`
	Subject string    `json:"s"`
	Lane    int16     `json:"l,omitempty"`
	Seq     int64     `json:"q"`
}

func encodeAuditCursor(c fieldseal.AuditCursor) string {
	b, _ := json.Marshal(auditCursorJSON{At: c.At, Subject: c.Subject, Lane: c.Lane, Seq: c.Seq})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAuditCursor(s string) (fieldseal.AuditCursor, error) {
	bad := fieldseal.Errorf(fieldseal.EINVALID, "after must be the next value of a previous page")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return fieldseal.AuditCursor{}, bad
	}
	var j auditCursorJSON
	if err := json.Unmarshal(b, &j); err != nil || j.At.IsZero() {
		return fieldseal.AuditCursor{}, bad
	}
	return fieldseal.AuditCursor{At: j.At, Subject: j.Subject, Lane: j.Lane, Seq: j.Seq}, nil
}
