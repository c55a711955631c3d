package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// decodeJSON reads exactly one JSON value into v, refusing unknown fields
// and trailing data. A body over the limit is ETOOLARGE.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return jsonError(err)
		}
		return fieldseal.Errorf(fieldseal.EINVALID, "the body must hold exactly one JSON object")
	}
	return nil
}

// jsonError describes a decoding failure without quoting the body, which
// may hold secret values.
func jsonError(err error) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return fieldseal.Errorf(fieldseal.ETOOLARGE, "the request body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return fieldseal.Errorf(fieldseal.EINVALID, "the body is empty; a JSON object is required")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return fieldseal.Errorf(fieldseal.EINVALID, "the body is not valid JSON")
	case errors.As(err, &typeErr):
		return fieldseal.Errorf(fieldseal.EINVALID, "field %q has the wrong type", typeErr.Field)
	default:
		// "json: unknown field \"x\"" names a field, never a value.
		if msg := err.Error(); bytes.HasPrefix([]byte(msg), []byte("json: unknown field ")) {
			return fieldseal.Errorf(fieldseal.EINVALID, "unknown field %s", msg[len("json: unknown field "):])
		}
		return fieldseal.Errorf(fieldseal.EINVALID, "the body is not valid JSON")
	}
}

// writeJSON writes v as the response body with status.
func writeJSON(c echo.Context, status int, v any) error {
	startJSON(c, status)
	return writeJSONBody(c, v)
}

// startJSON sends status and the JSON content type.
func startJSON(c echo.Context, status int) {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(status)
}

func writeJSONBody(c echo.Context, v any) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// placed names where in a request a client's error lies (place) and what
// followed from it (outcome) around its message; other errors pass as
// they are.
func placed(err error, place, outcome string) error {
	var fe *fieldseal.Error
	if errors.As(err, &fe) {
		return fieldseal.Errorf(fe.Code, "%s: %s; %s", place, fe.Message, outcome)
	}
	return err
}

// decodeStrict reads raw, which must be one JSON object, into v, refusing
// unknown fields.
func decodeStrict(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
