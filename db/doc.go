// Package db is fieldseal's PostgreSQL layer: the hand-written Store that
// the rest of the code calls (and Admin, the DBA's commands' connection),
// over sqlc's generated queries in package db/sqlc (never edited;
// regenerate with `make generate`), which only db uses. Queries
// (queries.go) is those queries on a transaction's connection.
//
// The Store speaks one of two dialects (dialect.go), found once by Open:
// one PostgreSQL, or a Citus coordinator, whose forms of the key-using
// writes, settings and round trips differ (citus.go says why). Nothing
// else asks which database it is; Config.CitusForms runs Citus's forms on
// one PostgreSQL, which make test does (TestCitusFormsOnOnePostgreSQL).
// Open also refuses a role that could step around row-level security.
//
// Invariants:
//   - Every request's work runs in one transaction (but for a collection's
//     reindex, collections.go: a transaction for the settings, then one per
//     batch of records, each held FOR SHARE while it is tagged), declared
//     as a tx and run by run (tx.go), pipelined: BEGIN, the subject, the
//     throttle check and usually the work itself in one round trip, the
//     audit entry and COMMIT in another; a read sends them all in one, its
//     entry appended only if it decrypted. A Store method queues its
//     statements, says how their results make its answer, and returns what
//     run returns: the request reads top to bottom, from the Store method
//     (records.go, search.go, ...) through the runner (tx.go, with the
//     dialect's settings) to the generated queries (db/sqlc: tx.sql.go for
//     what the runner sends, one file per queries/*.sql) and back.
//   - A transaction's first statement after BEGIN sets
//     fieldseal.subject with set_config(..., true) (SET LOCAL on Citus). Row-level
//     security, forced on every table, turns that into "subject = X" on each
//     query, and new rows take their subject from it: a query that forgets a
//     WHERE still cannot reach another subject's rows.
//   - A statement that tries a key requires the throttle check's "yes"
//     (AdmitKeyUse, kept in the transaction as fieldseal.key_use); without
//     it, it returns nothing. So it can be pipelined behind the check.
//   - A client key reaches PostgreSQL only as a bind parameter of
//     pgcrypto's functions and the key functions of migration 00023
//     (open_subject, record_key, new_subject_key). It is
//     never stored, never part of SQL text, never in an error from here.
//   - secret is one OpenPGP message (AES-256, s2k-mode=1) of the record's
//     secret JSON, under its collection's data key (keys in layers,
//     migration 00023: the client key opens the subject key, kept wrapped
//     in the subject's row, from which the data keys follow); a subject's
//     records and subject key are always under one
//     key: a write with any other key is refused before anything is written.
//   - Every transaction bounds itself (statement_timeout, lock_timeout,
//     parameter logging off, set with the subject), so the bounds hold
//     behind a transaction pooler too; a request waits for a connection
//     at most Timeouts.PoolWait.
//   - A statement's cost follows what it touches, whatever the statistics
//     were when its plan was made: transactions plan with enable_seqscan
//     off and force_generic_plan when they carry a key (a plan made once
//     per connection, kept until an ANALYZE), and subject-wide statements
//     take forms that cannot go quadratic (no self-join of a subject's
//     rows; a lookup per candidate behind an OFFSET 0 fence, only by an
//     index the lookup's whole key leads; a page found with its rows whole).
//     TestPlansMadeOnTinyTables plans them on tiny tables and runs them
//     on a grown one.
//   - What an import brings back in is what a create would have written:
//     its ciphertexts opened (never a compressed one: literal_message,
//     migration 00021) and each plaintext checked by fieldseal.CheckObject
//     before anything is written (import.go).
//   - An Idempotency-Key is claimed and its answer stored in the
//     transaction of the work it names (tx.go): both commit, or
//     neither does.
//   - Errors leave this package as *fieldseal.Error for what the client may
//     know (not found, wrong key, unavailable) and wrapped errors otherwise.
package db
