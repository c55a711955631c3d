package db_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/internal/testkit/gpgtest"
)

// wrappedKey is alice's subject key as her row holds it (wrapped under
// her client key: a ciphertext), in base64.
func wrappedKey(t *testing.T, adminURL string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var wrapped []byte
	if err := conn.QueryRow(ctx, `SELECT wrapped_key FROM fieldseal.subjects WHERE subject = 'alice'`).Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	if len(wrapped) == 0 {
		t.Fatal("alice has no wrapped subject key")
	}
	return base64.StdEncoding.EncodeToString(wrapped)
}

// openWrapped opens a wrapped subject key (base64) with stock gpg, as a
// user recovering without fieldseal would: the 32 octets of the key.
func openWrapped(t *testing.T, wrapped, passphrase string) []byte {
	t.Helper()
	message, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	key := gpgtest.Decrypt(t, message, passphrase)
	if len(key) != 32 {
		t.Fatalf("the subject key is %d octets; want 32", len(key))
	}
	return key
}
