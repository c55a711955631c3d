package handlers

import (
	"encoding/json"
	"io"
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

func BenchmarkRecordEncoding(b *testing.B) {
	rec := fieldseal.Record{
		ID: fieldseal.NewID(time.Now()), Collection: "notes", Public: json.RawMessage(`{"title":"hello"}`),
		Secret:  json.RawMessage(`{"note":"` + strings.Repeat("x", 190) + `"}`),
		Version: 3, CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}
	page := pageResponse{Items: make([]fieldseal.Record, 50)}
	for i := range page.Items {
		page.Items[i] = rec
	}
	for _, tc := range []struct {
		name string
		v    any
	}{{"one", rec}, {"page of 50", page}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				enc := json.NewEncoder(io.Discard)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(tc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
