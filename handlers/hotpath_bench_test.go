package handlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Hot paths without the database:
//
//	go test -run '^$' -bench . -benchmem ./handlers/

func BenchmarkParseKeyHeader(b *testing.B) {
	const key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	for b.Loop() {
		if _, err := fieldseal.ParseKey(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProblemRendering(b *testing.B) {
	e := echo.New()
	h := errorHandler(nil)
	err := fieldseal.Errorf(fieldseal.EWRONGKEY, "this key is not the subject's current key")
	for b.Loop() {
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/v1/records", nil), rec)
		c.Set(ctxRequestID, "0123456789abcdef01234567")
		h(err, c)
	}
}

// BenchmarkRecordEncoding compares the hand-written record encoder the
// handlers use with encoding/json, which checks and compacts public and
// secret again.
func BenchmarkRecordEncoding(b *testing.B) {
	rec := fieldseal.Record{
		ID: fieldseal.NewID(time.Now()), Collection: "notes", Public: json.RawMessage(`{"title":"hello"}`),
		Secret:  json.RawMessage(`{"note":"` + strings.Repeat("x", 190) + `"}`),
		Version: 3, CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}
	page := fieldseal.Page{Items: make([]fieldseal.Record, 50), Next: rec.ID}
	for i := range page.Items {
		page.Items[i] = rec
	}
	type pageJSON struct {
		Items []fieldseal.Record `json:"items"`
		Next  string             `json:"next,omitempty"`
	}
	e := echo.New()
	for _, tc := range []struct {
		name  string
		write func(c echo.Context) error
	}{
		{"one", func(c echo.Context) error { return writeRecord(c, http.StatusOK, rec) }},
		{"one/encoding-json", func(c echo.Context) error { return writeJSON(c, http.StatusOK, rec) }},
		{"page of 50", func(c echo.Context) error { return writePage(c, page) }},
		{"page of 50/encoding-json", func(c echo.Context) error {
			return writeJSON(c, http.StatusOK, pageJSON{Items: page.Items, Next: page.Next.String()})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/v1/records", nil)
			for b.Loop() {
				c := e.NewContext(r, discard{})
				if err := tc.write(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

var header = http.Header{}

func (discard) Header() http.Header         { return header }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
