package fieldseal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"
)

// ID identifies a record: a UUIDv7 (RFC 9562), so ids sort in creation
// order and keyset pagination by id follows it.
type ID [16]byte

// NewID returns a new UUIDv7 for time now.
func NewID(now time.Time) ID {
	var id ID
	if _, err := rand.Read(id[6:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint16(id[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(id[2:6], uint32(ms))
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // variant 10
	return id
}

// NewIDs returns n new UUIDv7s for time now, in ascending order: records
// created together list in the order given.
func NewIDs(now time.Time, n int) []ID {
	ids := make([]ID, n)
	for i := range ids {
		ids[i] = NewID(now)
	}
	slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// ParseID parses the canonical 36-character form. It returns an *Error with
// EINVALID for anything else.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, Errorf(EINVALID, "an id is a UUID such as 0192f3a4-5b6c-7d8e-9f01-23456789abcd")
	}
	hexDigits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(id[:], []byte(hexDigits)); err != nil {
		return ID{}, Errorf(EINVALID, "an id is a UUID such as 0192f3a4-5b6c-7d8e-9f01-23456789abcd")
	}
	return id, nil
}

// IsZero reports whether id is the all-zero UUID.
func (id ID) IsZero() bool { return id == ID{} }

// String returns the canonical lower-case form.
func (id ID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], id[10:16])
	return string(b[:])
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
