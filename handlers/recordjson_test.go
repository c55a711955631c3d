package handlers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal"
)

// encodingJSON is what the handlers wrote before records were written by
// hand: encoding/json with HTML escaping off.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var trickyStrings = []string{
	"", "notes", `say "hi"`, `back\slash`, "tab\there", "new\nline", "cr\r", "bell\a", "\b\f", "\x00\x01\x1f",
	"<script>&amp;</script>", "é ü ß 東京 🔐", "line\u2028sep\u2029para", "bad \xff utf-8 \xc3", "del\x7f",
	strings.Repeat("x", 300),
}

func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 33, 51, 123456000, time.UTC)
	for _, collection := range trickyStrings {
		for _, secret := range []json.RawMessage{nil, json.RawMessage(`{"note":"x","n":[1,2,{"é":"\u2028"}]}`)} {
			rec := fieldseal.Record{
				ID: fieldseal.NewID(at), Collection: collection, Secret: secret,
				// As PostgreSQL writes jsonb: a space after each colon and comma.
				Public:  json.RawMessage(`{"tags": ["a b", "c\\\" : d, \\\\"], "ward": "3B", "n": {"x": null}}`),
				Version: 42, CreatedAt: at, UpdatedAt: at.Add(time.Second).In(time.FixedZone("x", 3600)),
			}
			if got, want := append(appendRecord(nil, rec), '\n'), encodingJSON(t, rec); !bytes.Equal(got, want) {
				t.Errorf("collection %q:\ngot  %s\nwant %s", collection, got, want)
			}
		}
	}
	// A record without public (never stored so, but still well-formed).
	rec := fieldseal.Record{ID: fieldseal.NewID(at), Collection: "c", CreatedAt: at, UpdatedAt: at}
	if got, want := append(appendRecord(nil, rec), '\n'), encodingJSON(t, rec); !bytes.Equal(got, want) {
		t.Errorf("no public:\ngot  %s\nwant %s", got, want)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := encodingJSON(t, s)
		if got := append(appendString(nil, s), '\n'); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s; want %s", s, got, want)
		}
	})
}

func FuzzAppendCompactValid(f *testing.F) {
	for _, s := range []string{`{}`, `{"a": 1, "b": [1, 2, {"c": "d e"}]}`, `{"s": "\\\" , : \\\\"}`, "{\n\t\"a\" :\r\n true }", `[]`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return // only PostgreSQL's (valid) output is ever given to it
		}
		var want bytes.Buffer
		if err := json.Compact(&want, in); err != nil {
			t.Fatal(err)
		}
		if got := appendCompactValid(nil, in); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%q: got %s; want %s", in, got, want.Bytes())
		}
	})
}
