package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Records serves /v1/records.
type Records struct {
	service fieldseal.RecordService
	now     func() time.Time
}

// Paging limits of GET /v1/records.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// recordRequest is the body of POST and PUT.
type recordRequest struct {
	Collection *string         `json:"collection"`
	Public     json.RawMessage `json:"public"`
	Secret     json.RawMessage `json:"secret"`
}

func (h *Records) create(c echo.Context) error {
	key, err := requiredKey(c)
	if err != nil {
		return err
	}
	idem, err := idempotent(c, key, createdAnswer)
	if err != nil {
		return err
	}
	in, err := readRecord(c)
	if err != nil {
		return err
	}
	rec, err := h.service.CreateRecord(c.Request().Context(), caller(c), key, fieldseal.NewID(h.now()), in, idem)
	if err != nil {
		return err
	}
	return writeAnswer(c, createdAnswer(rec))
}

// createdAnswer is the answer to a create: the record without its secret.
func createdAnswer(rec fieldseal.Record) fieldseal.Answer {
	rec.Secret = nil
	return fieldseal.Answer{
		Status: http.StatusCreated,
		Header: map[string]string{
			echo.HeaderContentType: echo.MIMEApplicationJSON,
			echo.HeaderLocation:    "/v1/records/" + rec.ID.String(),
			"ETag":                 etag(rec.Version),
		},
		Body: append(appendRecord(make([]byte, 0, recordSize(rec)), rec), '\n'),
	}
}

func (h *Records) get(c echo.Context) error {
	id, err := fieldseal.ParseID(c.Param("id"))
	if err != nil {
		return err
	}
	key, err := optionalKey(c)
	if err != nil {
		return err
	}
	rec, err := h.service.GetRecord(c.Request().Context(), caller(c), id, key)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(rec.Version))
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeRecord(c, http.StatusOK, rec)
}

func (h *Records) list(c echo.Context) error {
	collection, err := textParam(c, "collection")
	if err != nil {
		return err
	}
	opts := fieldseal.ListOptions{Collection: collection, Limit: DefaultPageSize}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return fieldseal.Errorf(fieldseal.EINVALID, "limit must be a whole number from 1 to %d", MaxPageSize)
		}
		opts.Limit = n
	}
	if v := c.QueryParam("after"); v != "" {
		after, err := fieldseal.ParseID(v)
		if err != nil {
			return fieldseal.Errorf(fieldseal.EINVALID, "after must be the next value of a previous page")
		}
		opts.After = after
	}
	key, err := optionalKey(c)
	if err != nil {
		return err
	}
	page, err := h.service.ListRecords(c.Request().Context(), caller(c), key, opts)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writePage(c, page)
}

func (h *Records) replace(c echo.Context) error {
	id, err := fieldseal.ParseID(c.Param("id"))
	if err != nil {
		return err
	}
	key, err := requiredKey(c)
	if err != nil {
		return err
	}
	in, err := readRecord(c)
	if err != nil {
		return err
	}
	rec, err := h.service.ReplaceRecord(c.Request().Context(), caller(c), key, id, ifMatch(c), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(rec.Version))
	return writeRecord(c, http.StatusOK, rec)
}

func (h *Records) delete(c echo.Context) error {
	id, err := fieldseal.ParseID(c.Param("id"))
	if err != nil {
		return err
	}
	if err := h.service.DeleteRecord(c.Request().Context(), caller(c), id, ifMatch(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// readRecord decodes and validates a record body. public defaults to {};
// collection and secret are required; both JSON values must be objects.
func readRecord(c echo.Context) (fieldseal.RecordInput, error) {
	var req recordRequest
	if err := decodeJSON(c, &req); err != nil {
		return fieldseal.RecordInput{}, err
	}
	if req.Collection == nil {
		return fieldseal.RecordInput{}, fieldseal.Errorf(fieldseal.EINVALID, "collection is required")
	}
	if err := checkCollection(*req.Collection); err != nil {
		return fieldseal.RecordInput{}, err
	}
	public, err := jsonObject("public", req.Public, true)
	if err != nil {
		return fieldseal.RecordInput{}, err
	}
	if err := checkJSONB("public", public); err != nil {
		return fieldseal.RecordInput{}, err
	}
	secret, err := jsonObject("secret", req.Secret, false)
	if err != nil {
		return fieldseal.RecordInput{}, err
	}
	return fieldseal.RecordInput{Collection: *req.Collection, Public: public, Secret: secret}, nil
}

// MaxCollectionLength is the longest collection name, in characters.
const MaxCollectionLength = 128

func checkCollection(s string) error {
	if s == "" || utf8.RuneCountInString(s) > MaxCollectionLength {
		return fieldseal.Errorf(fieldseal.EINVALID, "collection must be 1 to %d characters", MaxCollectionLength)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fieldseal.Errorf(fieldseal.EINVALID, "collection may not contain control characters")
		}
	}
	return nil
}

// jsonObject checks that raw is a JSON object and returns it compacted.
// An absent or null value is {} when optional, else an error.
func jsonObject(field string, raw json.RawMessage, optional bool) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		if optional {
			return json.RawMessage(`{}`), nil
		}
		return nil, fieldseal.Errorf(fieldseal.EINVALID, "%s is required and must be a JSON object", field)
	}
	if raw[0] != '{' {
		return nil, fieldseal.Errorf(fieldseal.EINVALID, "%s must be a JSON object", field)
	}
	if !utf8.Valid(raw) {
		return nil, fieldseal.Errorf(fieldseal.EINVALID, "%s is not valid UTF-8", field)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fieldseal.Errorf(fieldseal.EINVALID, "%s is not valid JSON", field)
	}
	return buf.Bytes(), nil
}
