package handlers

import (
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// What PostgreSQL refuses must be refused here first, as a 400 that says
// what is wrong: text cannot hold invalid UTF-8 or NUL (22021), and jsonb
// cannot hold a lone UTF-16 surrogate escape (22P02) or a number outside
// numeric's range (22003). Passed through, each was a 500.

// textParam returns the query parameter name, refusing invalid UTF-8 and
// NUL.
func textParam(c echo.Context, name string) (string, error) {
	v := c.QueryParam(name)
	if err := checkText(name, v); err != nil {
		return "", err
	}
	return v, nil
}

// checkText refuses a value PostgreSQL's text type cannot hold.
func checkText(name, v string) error {
	switch {
	case !utf8.ValidString(v):
		return fieldseal.Errorf(fieldseal.EINVALID, "%s is not valid UTF-8", name)
	case strings.IndexByte(v, 0) >= 0:
		return fieldseal.Errorf(fieldseal.EINVALID, "%s may not contain the NUL character", name)
	}
	return nil
}
