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

// rotate re-encrypts every record of the subject from Encryption-Key to
// New-Encryption-Key, all or nothing.
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
	if next.Equal(current) {
		return fieldseal.Errorf(fieldseal.EINVALID, "%s is the current key: nothing to rotate", HeaderNewEncryptionKey)
	}
	idem, err := idempotent(c, current, rotatedAnswer, next.Passphrase())
	if err != nil {
		return err
	}
	n, err := h.service.RotateKey(c.Request().Context(), caller(c), current, next, idem)
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
