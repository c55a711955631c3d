package fieldseal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
)

const validKey = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{validKey, true},
		{"", false},
		{strings.TrimRight(validKey, "="), false},               // unpadded
		{"-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8=", false}, // URL-safe alphabet
		{"+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8=", true},
		{validKey[:40] + "====", false},                                 // 30 bytes
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false}, // 39 bytes, no padding
		{" " + validKey[1:], false},
		{validKey[:42] + "B=", false}, // non-canonical trailing bits
	} {
		_, err := fieldseal.ParseKey(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKey(%q) error = %v; want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil {
			if fieldseal.ErrorCode(err) != fieldseal.EINVALIDKEY {
				t.Errorf("ParseKey(%q) code = %q; want invalid_key", tc.in, fieldseal.ErrorCode(err))
			}
			if tc.in != "" && strings.Contains(err.Error(), tc.in) {
				t.Errorf("the error echoes the key: %v", err)
			}
		}
	}
}

func TestKeyNeverPrintsItself(t *testing.T) {
	k, err := fieldseal.ParseKey(validKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(validKey)
	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).Info("m", "key", k, "wrapped", struct{ K fieldseal.Key }{k})
	js, _ := json.Marshal(map[string]any{"k": k})
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k, k, k),
		fmt.Sprintf("%+v", struct{ K fieldseal.Key }{k}), out.String(), string(js),
		fmt.Errorf("wrapped: %v", k).Error(),
	} {
		if strings.Contains(s, validKey) || strings.Contains(s, validKey[:20]) ||
			strings.Contains(s, hex.EncodeToString([]byte(validKey))[:20]) || strings.Contains(s, hex.EncodeToString(raw)[:20]) {
			t.Errorf("the key shows in %q", s)
		}
	}
	if k.Passphrase() != validKey {
		t.Errorf("Passphrase() = %q; want the header value", k.Passphrase())
	}
}

func TestID(t *testing.T) {
	id := fieldseal.NewID(time.Unix(1700000000, 0))
	s := id.String()
	if s[14] != '7' || !strings.ContainsAny(s[19:20], "89ab") {
		t.Errorf("NewID = %s; want a version 7, variant 10 UUID", s)
	}
	back, err := fieldseal.ParseID(s)
	if err != nil || back != id {
		t.Errorf("ParseID(%s) = %v, %v; want the same id", s, back, err)
	}
	later := fieldseal.NewID(time.Unix(1700000001, 0))
	if later.String() <= s {
		t.Errorf("a later id %s does not sort after %s", later, s)
	}
	for _, bad := range []string{"", "x", s[:35], s + "0", strings.ReplaceAll(s, "-", "_"), "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"} {
		if _, err := fieldseal.ParseID(bad); fieldseal.ErrorCode(err) != fieldseal.EINVALID {
			t.Errorf("ParseID(%q) = %v; want invalid_request", bad, err)
		}
	}
}
