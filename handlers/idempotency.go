package handlers

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Idempotency headers: the client's key (IETF httpapi draft), and the mark
// of an answer sent again (Stripe's name).
const (
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
)

// idempotent reads the request's Idempotency-Key: nil without one. The
// request's fingerprint is an HMAC-SHA-256 under the client's data key of
// its method, path, query, the extra values given (a rotation's new key)
// and its body, so a retry must be the same request under the same keys,
// and the fingerprint stored in PostgreSQL lets nobody without the key
// test a guess of what the body held. The body is read whole (it is
// bounded by the body limit) and put back for the handler.
func idempotent[T any](c echo.Context, key fieldseal.Key, answer func(T) fieldseal.Answer, extra ...string) (*fieldseal.Idempotent[T], error) {
	raw, ok := c.Request().Header[HeaderIdempotencyKey]
	if !ok {
		return nil, nil
	}
	k, err := parseIdempotencyKey(raw)
	if err != nil {
		return nil, err
	}
	r := c.Request()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, jsonError(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	mac := hmac.New(sha256.New, []byte(key.Passphrase()))
	for _, part := range append([]string{r.Method, r.URL.Path, r.URL.RawQuery}, extra...) {
		mac.Write([]byte(strconv.Itoa(len(part)) + ":" + part))
	}
	mac.Write(body)
	idem := &fieldseal.Idempotent[T]{Key: k, Answer: answer}
	mac.Sum(idem.Fingerprint[:0])
	return idem, nil
}

// parseIdempotencyKey accepts one key of 1 to 255 visible ASCII
// characters, bare or as a structured-field string ("…"), as the draft
// writes it.
func parseIdempotencyKey(values []string) (string, error) {
	bad := fieldseal.Errorf(fieldseal.EINVALID, "%s must be one value of 1 to %d visible ASCII characters",
		HeaderIdempotencyKey, fieldseal.IdempotencyKeyMaxLength)
	if len(values) != 1 {
		return "", bad
	}
	v := values[0]
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || len(v) > fieldseal.IdempotencyKeyMaxLength || strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", bad
	}
	return v, nil
}

// writeAnswer sends a, the answer of an idempotent write, first time or
// again: the same bytes both times.
func writeAnswer(c echo.Context, a fieldseal.Answer) error {
	h := c.Response().Header()
	for k, v := range a.Header {
		h.Set(k, v)
	}
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(a.Body)))
	c.Response().WriteHeader(a.Status)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err := c.Response().Write(a.Body)
	return err
}
