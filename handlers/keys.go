package handlers

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// HeaderNewEncryptionKey carries the key a rotation moves to.
const HeaderNewEncryptionKey = "New-Encryption-Key"

// Keys serves /v1/keys.
type Keys struct {
	service fieldseal.KeyService
}

// verify answers 204 when Encryption-Key is the subject's current key.
func (h *Keys) verify(c echo.Context) error {
	key, err := requiredKey(c)
	if err != nil {
		return err
	}
	if err := h.service.VerifyKey(c.Request().Context(), caller(c), key); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// rotateResponse is the body of a successful rotation.
type rotateResponse struct {
	Rotated int64 `json:"rotated"`
}

// rotateRequest is the optional body of a rotation.
type rotateRequest struct {
	// Reencrypt also replaces the subject's keys and re-encrypts every
	// record and tag (for a key believed leaked).
	Reencrypt bool `json:"reencrypt"`
}

// rotate moves the subject from Encryption-Key to New-Encryption-Key, all
// or nothing: it rewraps the subject key, and with {"reencrypt":true}
// also replaces the subject's keys and re-encrypts every record.
func (h *Keys) rotate(c echo.Context) error {
	current, err := requiredKey(c)
	if err != nil {
		return err
	}
	raw := c.Request().Header.Get(HeaderNewEncryptionKey)
	if raw == "" {
		return fieldseal.Errorf(fieldseal.EKEYREQUIRED, "a rotation needs the %s header", HeaderNewEncryptionKey)
	}
	next, err := fieldseal.ParseKey(raw)
	if err != nil {
		return fieldseal.Errorf(fieldseal.EINVALIDKEY, "%s must be the padded standard base64 of exactly %d bytes (44 characters)", HeaderNewEncryptionKey, fieldseal.KeySize)
	}
	idem, err := idempotent(c, current, rotatedAnswer, next.Passphrase())
	if err != nil {
		return err
	}
	var req rotateRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	if next.Equal(current) && !req.Reencrypt {
		return fieldseal.Errorf(fieldseal.EINVALID, "%s is the current key: nothing to rotate (to replace the subject's keys under the same key, send {\"reencrypt\": true})", HeaderNewEncryptionKey)
	}
	n, err := h.service.RotateKey(c.Request().Context(), caller(c), current, next, req.Reencrypt, idem)
	if err != nil {
		return err
	}
	return writeAnswer(c, rotatedAnswer(n))
}

// rotatedAnswer is the answer to a rotation of n records.
func rotatedAnswer(n int64) fieldseal.Answer {
	body, _ := json.Marshal(rotateResponse{Rotated: n}) // cannot fail
	return fieldseal.Answer{
		Status: http.StatusOK,
		Header: map[string]string{echo.HeaderContentType: echo.MIMEApplicationJSON},
		Body:   append(body, '\n'),
	}
}
