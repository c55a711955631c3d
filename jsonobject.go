package fieldseal

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// What a record's public and secret may be, wherever they come from: a
// create, a replace, a batch, or the plaintext an import's ciphertext
// opens to. One set of rules, so that an imported record is exactly what
// a create with the same secret would have made. Messages name the rule
// broken and quote nothing of the value.

// Limits of PostgreSQL's numeric, which jsonb stores numbers as.
const (
	numericMaxExponent       = 1000   // |e| in 1e<e>
	numericMaxIntegerDigits  = 131072 // before the decimal point
	numericMaxFractionDigits = 16383  // after it
)

// CheckObject returns raw compacted if it is a JSON object that jsonb can
// store as it is: valid UTF-8, valid JSON, an object, no \u0000 escape, no
// lone UTF-16 surrogate escape, no number outside numeric's range, and no
// key twice in one object (jsonb would keep only the last, so the value
// stored and the value searched would differ). Empty or null is {} when
// optional. field names the value in the error (EINVALID).
func CheckObject(field string, raw []byte, optional bool) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		if optional {
			return []byte(`{}`), nil
		}
		return nil, Errorf(EINVALID, "%s is required and must be a JSON object", field)
	}
	if raw[0] != '{' {
		return nil, Errorf(EINVALID, "%s must be a JSON object", field)
	}
	if !utf8.Valid(raw) {
		return nil, Errorf(EINVALID, "%s is not valid UTF-8", field)
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, Errorf(EINVALID, "%s is not valid JSON", field)
	}
	b := buf.Bytes()
	if err := checkJSONB(field, b); err != nil {
		return nil, err
	}
	if repeatedKey(b) {
		return nil, Errorf(EINVALID, "%s holds the same key twice in one object", field)
	}
	return b, nil
}

// IsObject reports whether b is one valid JSON object: what a stored
// secret must be before it is written into a response as it is.
func IsObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

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
					return Errorf(EINVALID, `%s may not contain the character \u0000`, field)
				case r >= 0xDC00 && r <= 0xDFFF:
					return Errorf(EINVALID, `%s holds a lone low surrogate escape: not valid Unicode`, field)
				case r >= 0xD800 && r <= 0xDBFF:
					if i+10 >= len(b) || b[i+5] != '\\' || b[i+6] != 'u' || hex4(b[i+7:i+11]) < 0xDC00 || hex4(b[i+7:i+11]) > 0xDFFF {
						return Errorf(EINVALID, `%s holds a lone high surrogate escape: not valid Unicode`, field)
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
			return Errorf(EINVALID, "%s holds a number whose exponent is beyond ±%d", field, numericMaxExponent)
		}
		e = v
	}
	intPart, fracPart, _ := strings.Cut(mantissa, ".")
	intDigits := len(strings.TrimLeft(intPart, "0"))
	if intDigits+e > numericMaxIntegerDigits || len(fracPart)-e > numericMaxFractionDigits {
		return Errorf(EINVALID, "%s holds a number with more digits than PostgreSQL stores (%d before the point, %d after)",
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

// repeatedKey reports whether compact valid JSON b has an object with the
// same key twice, keys compared as jsonb compares them: unescaped ("a"
// and "\u0061" are one key). One pass; a set of keys per open object.
func repeatedKey(b []byte) bool {
	type level struct {
		object bool
		keys   map[string]struct{}
	}
	var stack []level
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			stack = append(stack, level{object: true})
		case '[':
			stack = append(stack, level{})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case '"':
			start, escaped := i, false
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					escaped = true
					i++
				}
			}
			top := len(stack) - 1
			if top < 0 || !stack[top].object || i+1 >= len(b) || b[i+1] != ':' {
				continue // a value, not a key
			}
			key := string(b[start+1 : i])
			if escaped {
				var s string
				if json.Unmarshal(b[start:i+1], &s) != nil {
					return true // cannot happen in valid JSON; refuse rather than guess
				}
				key = s
			}
			if stack[top].keys == nil {
				stack[top].keys = map[string]struct{}{}
			}
			if _, dup := stack[top].keys[key]; dup {
				return true
			}
			stack[top].keys[key] = struct{}{}
		}
	}
	return false
}
