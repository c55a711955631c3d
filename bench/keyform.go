package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// keyForm is how the bench's seeding writes a subject's key and records,
// as the service measured writes them: with keys in layers (a subject key
// wrapped under the client key, records under data keys: migration
// 00023) when the database's schema has them, else in the form before
// (a verifier, records under the client key), so that an A/B run against
// an older binary (-bin) compares each with its own form.
type keyForm struct{ layered bool }

// formOf reads the form of the database conn is connected to.
func formOf(ctx context.Context, conn *pgx.Conn) keyForm {
	var layered bool
	check(conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = 'fieldseal' AND table_name = 'subjects' AND column_name = 'wrapped_key')`).Scan(&layered))
	return keyForm{layered}
}

// subject is the column and the value of a new subject row's key under
// key (an SQL expression: a parameter).
func (f keyForm) subject(key string) (column, value string) {
	if f.layered {
		return "wrapped_key", "fieldseal.new_subject_key(" + key + ")"
	}
	return "key_verifier", "fieldseal.new_key_verifier(" + key + ")"
}

// records is what an INSERT INTO fieldseal.records needs beside its own
// columns: the key version column (", key_version" or nothing), and the
// SQL of a secret (plaintext, an SQL expression) encrypted for the record
// of subject in collection (SQL expressions) under key, with its version.
func (f keyForm) records() (versionColumn string, encrypt func(plaintext, subject, collection, key string) string) {
	if !f.layered {
		return "", func(plaintext, _, _, key string) string {
			return fmt.Sprintf("fieldseal.pgp_sym_encrypt(%s, %s, 'cipher-algo=aes256, s2k-mode=1')", plaintext, key)
		}
	}
	return ", key_version", func(plaintext, subject, collection, key string) string {
		// The subject's row is opened once per statement when subject is
		// a constant (an InitPlan), once per row otherwise.
		return fmt.Sprintf(`fieldseal.pgp_sym_encrypt(%s, fieldseal.record_key((SELECT fieldseal.open_subject(s.wrapped_key, NULL, %s)
			FROM fieldseal.subjects s WHERE s.subject = %s), %s, %s, 1), 'cipher-algo=aes256, s2k-mode=1'), 1`, plaintext, key, subject, key, collection)
	}
}
