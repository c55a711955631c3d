package handlers

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldseal/fieldseal"
)

// Limits of POST /v1/import: one transaction per request, so a request
// is bounded; a larger export is imported in parts (each line stands
// alone, and lines already imported are skipped).
const (
	MaxImportRecords = 20000
	MaxImportBytes   = 64 << 20
	// MaxBatchBytes bounds a POST /v1/records/batch body.
	MaxBatchBytes = 16 << 20
)

// importLine is one line of an export, as GET /v1/export writes it.
type importLine struct {
	ID         *fieldseal.ID   `json:"id"`
	Collection *string         `json:"collection"`
	Public     json.RawMessage `json:"public"`
	Version    *int64          `json:"version"`
	CreatedAt  *time.Time      `json:"created_at"`
	UpdatedAt  *time.Time      `json:"updated_at"`
	Ciphertext *string         `json:"ciphertext"`
	KeyVersion *int32          `json:"key_version"`
	SubjectKey *string         `json:"subject_key"`
}

// importRecords restores an export (NDJSON) under the request's key.
func (h *Export) importRecords(c echo.Context) error {
	key, err := requiredKey(c)
	if err != nil {
		return err
	}
	idem, err := idempotent(c, key, importAnswer)
	if err != nil {
		return err
	}
	recs, err := h.readImport(c)
	if err != nil {
		return err
	}
	res, err := h.service.Import(c.Request().Context(), caller(c), key, recs, idem)
	if err != nil {
		return err
	}
	return writeAnswer(c, importAnswer(res))
}

func importAnswer(res fieldseal.ImportResult) fieldseal.Answer {
	body, _ := json.Marshal(res)
	return fieldseal.Answer{Status: http.StatusOK, Header: map[string]string{echo.HeaderContentType: echo.MIMEApplicationJSON}, Body: append(body, '\n')}
}

// readImport reads and checks every line; an error names the line
// (1-based) and quotes nothing of it.
func (h *Export) readImport(c echo.Context) ([]fieldseal.ImportedRecord, error) {
	sc := bufio.NewScanner(c.Request().Body)
	sc.Buffer(make([]byte, 0, 64<<10), MaxImportBytes)
	var recs []fieldseal.ImportedRecord
	seen := map[fieldseal.ID]int{}
	maxMessage := maxSecretMessage(h.maxSecret)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if len(recs) == MaxImportRecords {
			return nil, fieldseal.Errorf(fieldseal.ETOOLARGE, "an import holds at most %d records; import the rest in another request (records already imported are skipped)", MaxImportRecords)
		}
		rec, err := importRecord(line, maxMessage)
		if err != nil {
			return nil, placed(err, fmt.Sprintf("line %d", n), "nothing was imported")
		}
		if first, ok := seen[rec.ID]; ok {
			return nil, fieldseal.Errorf(fieldseal.EINVALID, "line %d: id %s is also on line %d; nothing was imported", n, rec.ID, first)
		}
		seen[rec.ID] = n
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, bufio.ErrTooLong) {
			return nil, fieldseal.Errorf(fieldseal.ETOOLARGE, "the import is larger than %d bytes; import it in parts", MaxImportBytes)
		}
		return nil, jsonError(err)
	}
	if len(recs) == 0 {
		return nil, fieldseal.Errorf(fieldseal.EINVALID, "the body holds no records: send the NDJSON that GET /v1/export wrote")
	}
	return recs, nil
}

// MaxVersion is the largest version a record may have: 2^53 - 1, the
// largest integer a JSON reader that holds numbers as doubles keeps
// exactly (RFC 7493), and far enough below PostgreSQL's bigint that a
// replace can always count one more.
const MaxVersion = 1<<53 - 1

// checkTimestamp refuses a time an export could not write back: outside
// years 1 to 9999 in UTC (RFC 3339's four digits; PostgreSQL has no year
// 0), or finer than PostgreSQL's microseconds, which would be rounded.
func checkTimestamp(name string, t time.Time) error {
	u := t.UTC()
	switch {
	case u.Year() < 1 || u.Year() > 9999:
		return fieldseal.Errorf(fieldseal.EINVALID, "%s is outside years 1 to 9999 in UTC, which an export cannot write back", name)
	case u.Nanosecond()%1000 != 0:
		return fieldseal.Errorf(fieldseal.EINVALID, "%s is finer than a microsecond, which PostgreSQL does not keep", name)
	}
	return nil
}

// maxSecretMessage is the size of the OpenPGP message an import line may
// carry for a secret of up to maxSecret bytes: pgcrypto's packets add
// under 100 bytes, and a length octet per 512 bytes at most.
func maxSecretMessage(maxSecret int64) int {
	return int(maxSecret + maxSecret/512 + 1024)
}

// maxSubjectKey bounds an import line's subject_key: a wrapped subject
// key (32 octets in a symmetrically encrypted OpenPGP message) is 94
// octets.
const maxSubjectKey = 256

// importRecord checks one line; maxMessage bounds its dearmored
// ciphertext (maxSecretMessage).
func importRecord(line []byte, maxMessage int) (fieldseal.ImportedRecord, error) {
	var l importLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return fieldseal.ImportedRecord{}, jsonError(err)
	}
	if dec.More() {
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "a line holds exactly one JSON object")
	}
	missing := ""
	switch {
	case l.ID == nil:
		missing = "id"
	case l.Collection == nil:
		missing = "collection"
	case l.Version == nil:
		missing = "version"
	case l.CreatedAt == nil:
		missing = "created_at"
	case l.UpdatedAt == nil:
		missing = "updated_at"
	case l.Ciphertext == nil:
		missing = "ciphertext"
	}
	if missing != "" {
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "%s is required", missing)
	}
	if err := checkCollection(*l.Collection); err != nil {
		return fieldseal.ImportedRecord{}, err
	}
	public, err := fieldseal.CheckObject("public", l.Public, false)
	if err != nil {
		return fieldseal.ImportedRecord{}, err
	}
	switch {
	case l.ID.IsZero():
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "id is the all-zero UUID, which no record has")
	case *l.Version < 1 || *l.Version > MaxVersion:
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "version must be between 1 and %d (2^53 - 1, the largest integer every JSON reader holds exactly)", MaxVersion)
	}
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"created_at", *l.CreatedAt}, {"updated_at", *l.UpdatedAt}} {
		if err := checkTimestamp(t.name, t.at); err != nil {
			return fieldseal.ImportedRecord{}, err
		}
	}
	message, err := fieldseal.Dearmor(*l.Ciphertext)
	if err != nil {
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "ciphertext is not an ASCII-armored OpenPGP message: %v", err)
	}
	if len(message) > maxMessage {
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.ETOOLARGE, "ciphertext is larger than the message of any secret this server accepts (%d bytes)", maxMessage)
	}
	var keyVersion int32 // absent: an export made before keys in layers
	if l.KeyVersion != nil {
		keyVersion = *l.KeyVersion
	}
	var subjectKey []byte
	if l.SubjectKey != nil {
		if len(*l.SubjectKey) > base64.StdEncoding.EncodedLen(maxSubjectKey) {
			return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "subject_key is larger than any wrapped subject key (%d bytes)", maxSubjectKey)
		}
		if subjectKey, err = base64.StdEncoding.DecodeString(*l.SubjectKey); err != nil {
			return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "subject_key is not padded standard base64")
		}
	}
	switch {
	case keyVersion < 0:
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "key_version must be 0 or more")
	case keyVersion > 0 && len(subjectKey) == 0:
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "subject_key is required for key_version %d: the record opens only under a data key of the subject key the export carries", keyVersion)
	case keyVersion == 0 && l.SubjectKey != nil:
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "subject_key is given for key_version 0, which the client key opens: a line of an export has both or neither")
	case len(subjectKey) > maxSubjectKey:
		return fieldseal.ImportedRecord{}, fieldseal.Errorf(fieldseal.EINVALID, "subject_key is larger than any wrapped subject key (%d bytes)", maxSubjectKey)
	}
	return fieldseal.ImportedRecord{
		ID: *l.ID, Collection: *l.Collection, Public: public, Version: *l.Version,
		CreatedAt: *l.CreatedAt, UpdatedAt: *l.UpdatedAt, Ciphertext: message,
		KeyVersion: keyVersion, SubjectKey: subjectKey,
	}, nil
}
