package handlers

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Records are written by hand rather than by encoding/json, which checks
// and compacts every json.RawMessage it writes with a full JSON scanner:
// on a list page of 50 that was 16 % of the server's CPU (perf under make
// bench). Neither value needs checking again. public is PostgreSQL's jsonb
// output, valid JSON by construction, so only jsonb's spacing is dropped.
// secret was checked and compacted by readRecord before it was encrypted,
// and OpenPGP's integrity check (MDC, on in pgcrypto by default) refuses
// any ciphertext altered without the key, so what decrypts is what
// fieldseal wrote: it is copied as it is. The bytes are those encoding/json
// writes (TestRecordJSONMatchesEncodingJSON).

// writeRecord writes rec as the response body with status.
func writeRecord(c echo.Context, status int, rec fieldseal.Record) error {
	return writeRaw(c, status, append(appendRecord(make([]byte, 0, recordSize(rec)), rec), '\n'))
}

// writePage writes a list page: {"items":[…],"next":"…"}.
func writePage(c echo.Context, page fieldseal.Page) error {
	n := 32
	for _, r := range page.Items {
		n += recordSize(r)
	}
	b := append(make([]byte, 0, n), `{"items":[`...)
	for i, r := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecord(b, r)
	}
	b = append(b, ']')
	if !page.Next.IsZero() {
		b = append(b, `,"next":"`...)
		b = append(b, page.Next.String()...)
		b = append(b, '"')
	}
	return writeRaw(c, http.StatusOK, append(b, "}\n"...))
}

// writeRaw sends a whole JSON body with its length: one write, no chunked
// encoding for pages larger than net/http's buffer.
func writeRaw(c echo.Context, status int, body []byte) error {
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	startJSON(c, status)
	_, err := c.Response().Write(body)
	return err
}

// recordSize is at least the length of rec's JSON (keys, id, two times
// and a version take at most 208 bytes; collection escapes add a little),
// so that a buffer is allocated once.
func recordSize(rec fieldseal.Record) int {
	return 208 + 2*len(rec.Collection) + len(rec.Public) + len(rec.Secret)
}

// appendRecord appends rec as the JSON object fieldseal.Record describes.
func appendRecord(b []byte, rec fieldseal.Record) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, rec.ID.String()...)
	b = append(b, `","collection":`...)
	b = appendString(b, rec.Collection)
	b = append(b, `,"public":`...)
	b = appendCompactValid(b, rec.Public)
	if len(rec.Secret) > 0 {
		b = append(b, `,"secret":`...)
		b = append(b, rec.Secret...)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, rec.Version, 10)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, rec.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, rec.UpdatedAt)
	if rec.Damaged {
		b = append(b, `,"damaged":true`...)
	}
	return append(b, '}')
}

// appendCompactValid appends valid JSON without the white space outside
// its strings, as json.Compact would; empty is null. It does not check
// validity: only PostgreSQL's output is given to it.
func appendCompactValid(b, valid []byte) []byte {
	if len(valid) == 0 {
		return append(b, "null"...)
	}
	inString, escaped := false, false
	for _, c := range valid {
		switch {
		case inString:
			inString = escaped || c != '"'
			escaped = !escaped && c == '\\'
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		b = append(b, c)
	}
	return b
}

// appendTime writes t as time.Time's MarshalJSON does.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes s as a JSON string as encoding/json does with HTML
// escaping off: quote, backslash and control characters escaped, U+2028
// and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
