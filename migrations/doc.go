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
//   - fieldseal_auditor: reads the audit trail, the grants report and
//     record metadata (subject, id, collection, version, times); never
//     public, secret or key verifiers.
//
// Audit trail (00007). One entry per decrypt, write, delete, rotation, key
// check and refused request of a known subject, appended in the same
// transaction as the work (no work without its entry; refusals, whose
// work was rolled back, get a transaction of their own). Entries form a
// hash chain per subject: entry n stores sha256(hash(n-1) || its fields)
// and its predecessor's hash. A BEFORE INSERT trigger (SECURITY DEFINER,
// owned by fieldseal_owner) locks the subject's head row in
// fieldseal.audit_heads (00009: the chain's newest seq and hash), fills
// seq, time, prev_hash and hash, and moves the head; the app role may
// insert only the descriptive columns (and, since 00018, the subject,
// which row-level security holds to the transaction's), so it cannot choose where an entry
// goes or what it hashes to, and it has no UPDATE, DELETE or TRUNCATE, nor
// any privilege on the heads. The head row makes an append cost the same
// however long the trail grows, whatever plan a connection has cached,
// and in any snapshot a READ COMMITTED transaction sees (00007 searched
// the trail for the last entry; see 00009 for what went wrong). Chains per
// subject rather than one global chain: two subjects never wait for each
// other, and the trail distributes by subject like every other table.
// Cost, measured with 8 concurrent clients on 2 cores (go test -run '^$'
// -bench AuditAppend ./db/): 238 µs per append across many subjects,
// 469 µs when all hit one subject's chain (its appends serialise on the
// head row). `fieldseal audit verify` recomputes the chains and compares
// each chain's end with its head. 00010 lets the planner inline
// audit_hash into the trigger (same bytes hashed; see there why it was
// re-planned on every call before).
//
// Grants policy (00008). The privileges above are also rows of
// fieldseal.grants_policy and fieldseal.rls_policy; the views
// fieldseal.privileges, fieldseal.bypassers, fieldseal.tables and
// fieldseal.grants_drift compare them with the catalogs. A migration that
// grants something must add its rows: a fresh install with any drift
// fails the tests.
package migrations
