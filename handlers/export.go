package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Export serves the portable forms of a subject's records: what a user
// needs to recover their data with stock gpg and no fieldseal.
type Export struct {
	service fieldseal.ExportService
	log     *slog.Logger
	// writeTimeout bounds each write of an export: a client that does not
	// take the next bytes within it is cut off, so it cannot hold the
	// export's database connection for as long as it likes.
	writeTimeout time.Duration
	// maxSecret is the largest secret a create accepts (the body limit):
	// an import line's ciphertext may hold no larger.
	maxSecret int64
}

// The headers of GET /v1/records/{id}/ciphertext that say what opens the
// message: its key version, and for version 1 and above the subject key
// wrapped under the client key (standard base64 of the binary OpenPGP
// message).
const (
	HeaderKeyVersion = "Fieldseal-Key-Version"
	HeaderSubjectKey = "Fieldseal-Subject-Key"
)

// ciphertext returns the stored OpenPGP message, ASCII-armored.
func (h *Export) ciphertext(c echo.Context) error {
	id, err := fieldseal.ParseID(c.Param("id"))
	if err != nil {
		return err
	}
	ct, err := h.service.Ciphertext(c.Request().Context(), caller(c), id)
	if err != nil {
		return err
	}
	h2 := c.Response().Header()
	h2.Set("Cache-Control", "no-store")
	// What opens the message with the client key alone (docs/security.md).
	h2.Set(HeaderKeyVersion, strconv.Itoa(int(ct.KeyVersion)))
	if ct.SubjectKey != nil {
		h2.Set(HeaderSubjectKey, base64.StdEncoding.EncodeToString(ct.SubjectKey))
	}
	return c.Blob(http.StatusOK, "application/pgp-encrypted", []byte(ct.Armored))
}

// export streams every record as NDJSON, one record a line. An error
// before the first line is a problem response; after it, the connection
// is cut so the client cannot mistake a partial export for a whole one.
// Every write must go through within writeTimeout.
func (h *Export) export(c echo.Context) error {
	w := c.Response()
	rc := http.NewResponseController(w)
	started := false
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	err := h.service.Export(c.Request().Context(), caller(c), func(r fieldseal.ExportedRecord) error {
		line.Reset()
		if err := enc.Encode(r); err != nil {
			// The server's fault, not the client's: a value stored that
			// JSON cannot carry (a record imported before imports were
			// checked). Loud: an ERROR line naming the record, and a 500
			// or, once lines have gone, the connection cut.
			return fmt.Errorf("export record %s: %w", r.ID, err)
		}
		if err := rc.SetWriteDeadline(time.Now().Add(h.writeTimeout)); err != nil {
			return err
		}
		if !started {
			w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if _, err := w.Write(line.Bytes()); err != nil {
			return &clientWriteError{err}
		}
		return nil
	})
	var cw *clientWriteError
	switch {
	case err != nil && started && (errors.As(err, &cw) || c.Request().Context().Err() != nil):
		h.log.InfoContext(c.Request().Context(), "export cut: the client stopped reading or hung up",
			"request_id", requestID(c), "error", err.Error())
		panic(http.ErrAbortHandler)
	case err != nil && started:
		h.log.ErrorContext(c.Request().Context(), "export failed mid-stream; cutting the connection",
			"request_id", requestID(c), "error", err.Error())
		panic(http.ErrAbortHandler)
	case err != nil:
		return err
	case !started:
		w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
		return c.NoContent(http.StatusOK)
	}
	return nil
}

// clientWriteError is a write to the client that failed: its fault (gone,
// or too slow), not the server's.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "write to the client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }
