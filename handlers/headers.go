package handlers

import (
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// HeaderEncryptionKey carries the client's data key.
const HeaderEncryptionKey = "Encryption-Key"

// optionalKey returns the request's key, or the zero Key when the header is
// absent. A malformed key is EINVALIDKEY.
func optionalKey(c echo.Context) (fieldseal.Key, error) {
	v := c.Request().Header.Get(HeaderEncryptionKey)
	if v == "" {
		return fieldseal.Key{}, nil
	}
	return fieldseal.ParseKey(v)
}

// requiredKey is optionalKey for operations that need a key: EKEYREQUIRED
// when it is absent.
func requiredKey(c echo.Context) (fieldseal.Key, error) {
	k, err := optionalKey(c)
	if err == nil && k.IsZero() {
		return k, fieldseal.Errorf(fieldseal.EKEYREQUIRED, "this operation needs the %s header", HeaderEncryptionKey)
	}
	return k, err
}

// etag is a record version as a strong entity tag.
func etag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// ifMatch reads If-Match: nil when absent or "*" (any current version),
// else the versions it names. Entity tags that are weak or not ours match
// nothing (RFC 9110 section 13.1.1 uses strong comparison), so a header
// naming none of ours yields an empty, never-matching list.
func ifMatch(c echo.Context) []int64 {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return nil
	}
	versions := []int64{}
	for _, tag := range strings.Split(h, ",") {
		tag = strings.TrimSpace(tag)
		if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
			continue
		}
		if v, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64); err == nil && v > 0 {
			versions = append(versions, v)
		}
	}
	return versions
}
