package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	if opts.Secret, opts.Public, err = listFilters(c); err != nil {
		return err
	}
	getKey := optionalKey
	if len(opts.Secret) > 0 {
		if opts.Collection == "" {
			return fieldseal.Errorf(fieldseal.EINVALID, "secret. filters search one collection's searchable fields: give collection")
		}
		getKey = requiredKey
	}
	key, err := getKey(c)
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

// MaxFilters is the most secret. and public. filters one list may have.
const MaxFilters = 16

// listFilters reads the secret.F=V and public.F=V parameters of a list.
// Each field may be given once (two values of one field match nothing).
func listFilters(c echo.Context) (secret, public []fieldseal.Filter, err error) {
	for name, values := range c.QueryParams() {
		prefix, field, ok := strings.Cut(name, ".")
		if !ok || prefix != "secret" && prefix != "public" {
			continue
		}
		switch {
		case field == "":
			return nil, nil, fieldseal.Errorf(fieldseal.EINVALID, "%s. must be followed by a field name, as in %s.email=…", prefix, prefix)
		case utf8.RuneCountInString(field) > fieldseal.MaxFieldNameLength:
			return nil, nil, fieldseal.Errorf(fieldseal.EINVALID, "a filtered field name is at most %d characters", fieldseal.MaxFieldNameLength)
		case len(values) > 1:
			return nil, nil, fieldseal.Errorf(fieldseal.EINVALID, "%s is given %d times; give each filter once", name, len(values))
		}
		if err := checkText("the filter's field name", field); err != nil {
			return nil, nil, err
		}
		if err := checkText(name, values[0]); err != nil {
			return nil, nil, err
		}
		f := fieldseal.Filter{Field: field, Value: values[0]}
		if prefix == "secret" {
			secret = append(secret, f)
		} else {
			public = append(public, f)
		}
	}
	if len(secret)+len(public) > MaxFilters {
		return nil, nil, fieldseal.Errorf(fieldseal.EINVALID, "at most %d filters", MaxFilters)
	}
	// Map order is random: sort, so that equal requests send equal statements.
	byField := func(a, b fieldseal.Filter) int { return strings.Compare(a.Field, b.Field) }
	slices.SortFunc(secret, byField)
	slices.SortFunc(public, byField)
	return secret, public, nil
}

// MaxBatchRecords is the most records of one POST /v1/records/batch.
const MaxBatchRecords = 1000

// batch creates up to MaxBatchRecords records in one transaction.
func (h *Records) batch(c echo.Context) error {
	key, err := requiredKey(c)
	if err != nil {
		return err
	}
	idem, err := idempotent(c, key, batchAnswer)
	if err != nil {
		return err
	}
	var req struct {
		Records []recordRequest `json:"records"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if len(req.Records) == 0 || len(req.Records) > MaxBatchRecords {
		return fieldseal.Errorf(fieldseal.EINVALID, "records must hold 1 to %d records", MaxBatchRecords)
	}
	in := make([]fieldseal.RecordInput, len(req.Records))
	for i, r := range req.Records {
		if in[i], err = r.input(); err != nil {
			return placed(err, fmt.Sprintf("records[%d]", i), "nothing was written")
		}
	}
	recs, err := h.service.CreateRecords(c.Request().Context(), caller(c), key, fieldseal.NewIDs(h.now(), len(in)), in, idem)
	if err != nil {
		return err
	}
	return writeAnswer(c, batchAnswer(recs))
}

// batchAnswer is the answer to a batch: its records without secrets.
func batchAnswer(recs []fieldseal.Record) fieldseal.Answer {
	b := []byte(`{"items":[`)
	for i, rec := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		rec.Secret = nil
		b = appendRecord(b, rec)
	}
	return fieldseal.Answer{
		Status: http.StatusCreated,
		Header: map[string]string{echo.HeaderContentType: echo.MIMEApplicationJSON},
		Body:   append(b, "]}\n"...),
	}
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

// readRecord decodes and validates a record body.
func readRecord(c echo.Context) (fieldseal.RecordInput, error) {
	var req recordRequest
	if err := decodeJSON(c, &req); err != nil {
		return fieldseal.RecordInput{}, err
	}
	return req.input()
}

// input validates a record as a client wrote it. public defaults to {};
// collection and secret are required; both JSON values must be objects
// that jsonb can hold (secret too: searchable fields are read as jsonb).
func (req recordRequest) input() (fieldseal.RecordInput, error) {
	if req.Collection == nil {
		return fieldseal.RecordInput{}, fieldseal.Errorf(fieldseal.EINVALID, "collection is required")
	}
	if err := checkCollection(*req.Collection); err != nil {
		return fieldseal.RecordInput{}, err
	}
	public, err := fieldseal.CheckObject("public", req.Public, true)
	if err != nil {
		return fieldseal.RecordInput{}, err
	}
	secret, err := fieldseal.CheckObject("secret", req.Secret, false)
	if err != nil {
		return fieldseal.RecordInput{}, err
	}
	return fieldseal.RecordInput{Collection: *req.Collection, Public: public, Secret: secret}, nil
}

// MaxCollectionLength is the longest collection name, in characters.
const MaxCollectionLength = 128

func checkCollection(s string) error { return checkName("collection", s, MaxCollectionLength) }

// checkName refuses a name (what) that is empty, longer than max
// characters, or holds control characters or invalid UTF-8.
func checkName(what, s string, max int) error {
	if s == "" || utf8.RuneCountInString(s) > max {
		return fieldseal.Errorf(fieldseal.EINVALID, "%s must be 1 to %d characters", what, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fieldseal.Errorf(fieldseal.EINVALID, "%s may not contain control characters", what)
		}
	}
	return nil
}
