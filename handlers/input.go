package handlers

import (
	"strconv"
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

// Limits of PostgreSQL's numeric, which jsonb stores numbers as.
const (
	numericMaxExponent       = 1000   // |e| in 1e<e>
	numericMaxIntegerDigits  = 131072 // before the decimal point
	numericMaxFractionDigits = 16383  // after it
)

// checkJSONB refuses, in compact valid JSON, what jsonb cannot store: the
// escape \u0000, a UTF-16 surrogate escape not in a high-low pair, and a
// number outside numeric's range. One pass over the value.
func checkJSONB(field string, b []byte) error {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] != '\\' {
					continue
				}
				i++
				if i >= len(b) || b[i] != 'u' || i+4 >= len(b) {
					continue
				}
				r := hex4(b[i+1 : i+5])
				switch {
				case r == 0:
					return fieldseal.Errorf(fieldseal.EINVALID, `%s may not contain the character \u0000`, field)
				case r >= 0xDC00 && r <= 0xDFFF:
					return fieldseal.Errorf(fieldseal.EINVALID, `%s holds a lone low surrogate escape (\u%04x): not valid Unicode`, field, r)
				case r >= 0xD800 && r <= 0xDBFF:
					if i+10 >= len(b) || b[i+5] != '\\' || b[i+6] != 'u' || hex4(b[i+7:i+11]) < 0xDC00 || hex4(b[i+7:i+11]) > 0xDFFF {
						return fieldseal.Errorf(fieldseal.EINVALID, `%s holds a lone high surrogate escape (\u%04x): not valid Unicode`, field, r)
					}
					i += 6 // the pair's low half
				}
				i += 4
			}
		case c == '-' || c >= '0' && c <= '9':
			j := i
			for j < len(b) && strings.IndexByte("+-.eE0123456789", b[j]) >= 0 {
				j++
			}
			if err := checkNumeric(field, string(b[i:j])); err != nil {
				return err
			}
			i = j - 1
		}
	}
	return nil
}

// checkNumeric refuses a JSON number that PostgreSQL's numeric cannot hold.
func checkNumeric(field, n string) error {
	mantissa, exp, hasExp := strings.Cut(strings.ToLower(strings.TrimPrefix(n, "-")), "e")
	e := 0
	if hasExp {
		v, err := strconv.Atoi(strings.TrimPrefix(exp, "+"))
		if err != nil || v > numericMaxExponent || v < -numericMaxExponent {
			return fieldseal.Errorf(fieldseal.EINVALID, "%s holds a number whose exponent is beyond ±%d", field, numericMaxExponent)
		}
		e = v
	}
	intPart, fracPart, _ := strings.Cut(mantissa, ".")
	intDigits := len(strings.TrimLeft(intPart, "0"))
	if intDigits+e > numericMaxIntegerDigits || len(fracPart)-e > numericMaxFractionDigits {
		return fieldseal.Errorf(fieldseal.EINVALID, "%s holds a number with more digits than PostgreSQL stores (%d before the point, %d after)",
			field, numericMaxIntegerDigits, numericMaxFractionDigits)
	}
	return nil
}

// hex4 reads four hex digits; -1 if they are not.
func hex4(b []byte) int {
	v, err := strconv.ParseUint(string(b), 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}
