// Package client is a Go client for fieldseal's HTTP API: every endpoint,
// typed requests and responses, and errors that carry the problem's code.
//
// The data key is the padded standard base64 of 32 random bytes, as the
// API takes it; the client never logs or stores it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fieldseal/fieldseal"
)

// Client calls one fieldseal server with one bearer token.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the server at baseURL (e.g. https://fieldseal.internal)
// sending token; httpClient nil means http.DefaultClient.
func New(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, http: httpClient}
}

// Error is a problem+json answer. Code is one of the contract's codes
// (fieldseal.EWRONGKEY, …).
type Error struct {
	Status     int
	Code       string
	Detail     string
	RequestID  string
	RetryAfter time.Duration // for rate_limited
}

func (e *Error) Error() string {
	return fmt.Sprintf("fieldseal: %d %s: %s (request %s)", e.Status, e.Code, e.Detail, e.RequestID)
}

// Code returns the problem code of err, or "" if err is not an *Error.
func Code(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	return ""
}

// RecordInput is what Create and Replace send. Public and Secret must be
// JSON objects (any value that marshals to one).
type RecordInput struct {
	Collection string `json:"collection"`
	Public     any    `json:"public,omitempty"`
	Secret     any    `json:"secret"`
}

// ListOptions selects a page of records.
type ListOptions struct {
	Collection string
	Limit      int    // 0: the server's default (50)
	After      string // a previous page's Next
	// Secret filters searchable fields of the collection's secrets (needs
	// the key and Collection); Public filters top-level fields of public.
	// All must match.
	Secret, Public map[string]string
}

// Page is a page of records.
type Page struct {
	Items []fieldseal.Record `json:"items"`
	Next  string             `json:"next"`
}

// AuditQuery selects audit entries; zero fields match everything.
type AuditQuery struct {
	Subject, Action string
	Since, Until    time.Time
	Limit           int
	After           string
}

// AuditPage is a page of the audit trail.
type AuditPage struct {
	Items []fieldseal.AuditEvent `json:"items"`
	Next  string                 `json:"next"`
}

// call sends one request; out, if not nil, receives the JSON body of a
// 2xx answer.
func (c *Client) call(ctx context.Context, method, path string, header map[string]string, in, out any) (*http.Response, error) {
	var body io.Reader
	if r, ok := in.(io.Reader); ok {
		body = r // sent as it is, with the caller's Content-Type
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json") // header may say otherwise
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return resp, problem(resp)
	}
	if out != nil {
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("fieldseal: decoding the answer: %w", err)
		}
	}
	return resp, nil
}

func problem(resp *http.Response) error {
	var p struct {
		Code, Detail string
		RequestID    string `json:"request_id"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&p)
	e := &Error{Status: resp.StatusCode, Code: p.Code, Detail: p.Detail, RequestID: p.RequestID}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

func ifMatch(version int64) string {
	if version <= 0 {
		return ""
	}
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// CreateRecord stores a record; its secret is encrypted under key.
func (c *Client) CreateRecord(ctx context.Context, key string, in RecordInput) (fieldseal.Record, error) {
	var r fieldseal.Record
	_, err := c.call(ctx, http.MethodPost, "/v1/records", map[string]string{"Encryption-Key": key}, in, &r)
	return r, err
}

// GetRecord reads a record: decrypted with key, metadata and public only
// with key "".
func (c *Client) GetRecord(ctx context.Context, id, key string) (fieldseal.Record, error) {
	var r fieldseal.Record
	_, err := c.call(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(id), map[string]string{"Encryption-Key": key}, nil, &r)
	return r, err
}

// ListRecords reads one page, decrypted with key ("" for metadata only).
func (c *Client) ListRecords(ctx context.Context, key string, o ListOptions) (Page, error) {
	q := url.Values{}
	if o.Collection != "" {
		q.Set("collection", o.Collection)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	for f, v := range o.Secret {
		q.Set("secret."+f, v)
	}
	for f, v := range o.Public {
		q.Set("public."+f, v)
	}
	var p Page
	_, err := c.call(ctx, http.MethodGet, "/v1/records?"+q.Encode(), map[string]string{"Encryption-Key": key}, nil, &p)
	return p, err
}

// CreateRecords stores up to 1,000 records in one transaction, all or
// none, and returns them (without secrets) in the order given.
func (c *Client) CreateRecords(ctx context.Context, key string, in []RecordInput) ([]fieldseal.Record, error) {
	var r struct {
		Items []fieldseal.Record `json:"items"`
	}
	_, err := c.call(ctx, http.MethodPost, "/v1/records/batch", map[string]string{"Encryption-Key": key}, map[string]any{"records": in}, &r)
	return r.Items, err
}

// SetCollection makes fields of the collection's secrets searchable (and
// no others), indexing its records; it returns how many were indexed.
func (c *Client) SetCollection(ctx context.Context, key, collection string, searchable map[string]fieldseal.SearchableField) (int64, error) {
	var r struct {
		Indexed int64 `json:"indexed"`
	}
	_, err := c.call(ctx, http.MethodPut, "/v1/collections/"+url.PathEscape(collection), map[string]string{"Encryption-Key": key},
		map[string]any{"searchable": searchable}, &r)
	return r.Indexed, err
}

// GetCollection returns the collection's settings.
func (c *Client) GetCollection(ctx context.Context, collection string) (fieldseal.Collection, error) {
	var r fieldseal.Collection
	_, err := c.call(ctx, http.MethodGet, "/v1/collections/"+url.PathEscape(collection), nil, nil, &r)
	return r, err
}

// Import restores an export (the NDJSON GET /v1/export wrote) under key.
func (c *Client) Import(ctx context.Context, key string, ndjson io.Reader) (fieldseal.ImportResult, error) {
	var r fieldseal.ImportResult
	_, err := c.call(ctx, http.MethodPost, "/v1/import", map[string]string{"Encryption-Key": key, "Content-Type": "application/x-ndjson"}, ndjson, &r)
	return r, err
}

// ReplaceRecord replaces a record; with version > 0 only that version
// (a stale one fails with code version_conflict).
func (c *Client) ReplaceRecord(ctx context.Context, id, key string, version int64, in RecordInput) (fieldseal.Record, error) {
	var r fieldseal.Record
	_, err := c.call(ctx, http.MethodPut, "/v1/records/"+url.PathEscape(id),
		map[string]string{"Encryption-Key": key, "If-Match": ifMatch(version)}, in, &r)
	return r, err
}

// DeleteRecord deletes a record; with version > 0 only that version.
func (c *Client) DeleteRecord(ctx context.Context, id string, version int64) error {
	_, err := c.call(ctx, http.MethodDelete, "/v1/records/"+url.PathEscape(id), map[string]string{"If-Match": ifMatch(version)}, nil, nil)
	return err
}

// Ciphertext returns a record's stored OpenPGP message, ASCII-armored.
func (c *Client) Ciphertext(ctx context.Context, id string) (string, error) {
	resp, err := c.call(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(id)+"/ciphertext", nil, nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Export calls fn with every record of the subject, as the server streams
// them. A cut connection is an error: an export is whole or it failed.
func (c *Client) Export(ctx context.Context, fn func(fieldseal.ExportedRecord) error) error {
	resp, err := c.call(ctx, http.MethodGet, "/v1/export", nil, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var r fieldseal.ExportedRecord
		if err := dec.Decode(&r); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("fieldseal: export cut short: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// VerifyKey returns nil if key is the subject's current key (an error
// with code wrong_key otherwise).
func (c *Client) VerifyKey(ctx context.Context, key string) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/keys/verify", map[string]string{"Encryption-Key": key}, nil, nil)
	return err
}

// RotateKey moves the subject from current to next, all or nothing, and
// returns how many records it re-encrypted: it rewraps the subject key
// (no record is re-encrypted); with reencrypt, for a key believed leaked,
// it also replaces the subject's keys and re-encrypts every record.
func (c *Client) RotateKey(ctx context.Context, current, next string, reencrypt bool) (int64, error) {
	var r struct {
		Rotated int64 `json:"rotated"`
	}
	var body any
	if reencrypt {
		body = map[string]bool{"reencrypt": true}
	}
	_, err := c.call(ctx, http.MethodPost, "/v1/keys/rotate",
		map[string]string{"Encryption-Key": current, "New-Encryption-Key": next}, body, &r)
	return r.Rotated, err
}

// AuditEvents reads one page of the audit trail (scope audit:read).
func (c *Client) AuditEvents(ctx context.Context, aq AuditQuery) (AuditPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"subject": aq.Subject, "action": aq.Action, "after": aq.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !aq.Since.IsZero() {
		q.Set("since", aq.Since.Format(time.RFC3339Nano))
	}
	if !aq.Until.IsZero() {
		q.Set("until", aq.Until.Format(time.RFC3339Nano))
	}
	if aq.Limit > 0 {
		q.Set("limit", strconv.Itoa(aq.Limit))
	}
	var p AuditPage
	_, err := c.call(ctx, http.MethodGet, "/v1/audit/events?"+q.Encode(), nil, nil, &p)
	return p, err
}

// Grants reads the grants report (scope audit:read).
func (c *Client) Grants(ctx context.Context) (fieldseal.GrantsReport, error) {
	var r fieldseal.GrantsReport
	_, err := c.call(ctx, http.MethodGet, "/v1/audit/grants", nil, nil, &r)
	return r, err
}
