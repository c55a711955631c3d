package fieldseal

import (
	"context"
	"encoding/base64"
	"log/slog"
)

// KeySize is the size of a client data key in bytes.
const KeySize = 32

// Key is a client's 256-bit data key as sent in Encryption-Key: the padded
// standard base64 of 32 bytes. Those 44 characters are the passphrase given
// to pgcrypto, so stock gpg opens an exported record with the same string.
//
// A Key never prints itself: fmt verbs, slog and JSON all see "[redacted]".
// The passphrase leaves the process only as a bind parameter.
type Key struct {
	passphrase string
}

const redacted = "[redacted]"

// ParseKey validates an Encryption-Key header value. It returns an *Error
// with EINVALIDKEY, whose message never echoes the value.
func ParseKey(header string) (Key, error) {
	if len(header) != base64.StdEncoding.EncodedLen(KeySize) {
		return Key{}, Errorf(EINVALIDKEY, "the key must be the padded standard base64 of exactly %d bytes (44 characters)", KeySize)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(header)
	if err != nil || len(raw) != KeySize {
		return Key{}, Errorf(EINVALIDKEY, "the key must be the padded standard base64 of exactly %d bytes (44 characters)", KeySize)
	}
	clear(raw)
	return Key{passphrase: header}, nil
}

// Passphrase returns the string handed to pgp_sym_encrypt/pgp_sym_decrypt.
func (k Key) Passphrase() string { return k.passphrase }

// IsZero reports whether k holds no key.
func (k Key) IsZero() bool { return k.passphrase == "" }

// Equal reports whether two keys are the same key.
func (k Key) Equal(o Key) bool { return k.passphrase == o.passphrase }

// String implements fmt.Stringer without revealing the key.
func (k Key) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the key.
func (k Key) GoString() string { return redacted }

// LogValue implements slog.LogValuer without revealing the key.
func (k Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler without revealing the key.
func (k Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// KeyService manages a subject's data key.
type KeyService interface {
	// VerifyKey returns nil if key is the subject's current key, EWRONGKEY
	// otherwise (also when the subject has no key yet), ERATELIMITED,
	// EUNAVAILABLE.
	VerifyKey(ctx context.Context, caller Caller, key Key) error
	// RotateKey moves the subject from current to next in one
	// transaction and returns how many records it re-encrypted. It
	// rewraps the subject key under next (no record is re-encrypted);
	// with reencrypt, or for a subject written before keys in layers
	// (which it moves to them), it also replaces the subject's keys and
	// re-encrypts every record and tag. EWRONGKEY (nothing changes),
	// EUNAVAILABLE; with idem, also *Replay, EIDEMPOTENCYREUSED and
	// EIDEMPOTENCYINUSE.
	RotateKey(ctx context.Context, caller Caller, current, next Key, reencrypt bool, idem *Idempotent[int64]) (int64, error)
}
