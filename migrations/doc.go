// Package migrations holds fieldseal's schema as goose migrations, embedded
// in the binary, and runs them over an admin connection.
//
// What the migrations create (the least-privilege design a DBA audits):
//   - NOLOGIN group roles, cluster-wide and created idempotently:
//     fieldseal_owner owns the schema and its objects; fieldseal_app may do
//     only what the API needs; fieldseal_auditor is reserved for audit work.
//     Login users are granted these roles; serve refuses to run as the owner.
//   - Schema fieldseal, with pgcrypto installed inside it. Nothing goes in
//     public. goose's own version table lives in schema fieldseal_migrations.
//   - subjects (one key verifier per subject) and records (clear public
//     JSON, secret as one pgcrypto OpenPGP message). Both are keyed by
//     subject, so the schema distributes by subject unchanged.
//   - Row-level security, enabled and forced, keyed by the transaction
//     setting fieldseal.subject; with no subject set no row is visible.
//   - fieldseal_app: USAGE on the schema; SELECT, INSERT on subjects and UPDATE of
//     its verifier;
//     SELECT, INSERT, DELETE on records and UPDATE of its mutable columns
//     only; EXECUTE on the four functions it calls. No DDL, no TRUNCATE, no
//     REFERENCES or TRIGGER, nothing granted to PUBLIC.
package migrations
