-- Key rotation and export. Same rules as records.sql: every query runs in
-- a transaction that has set fieldseal.subject; row-level security does
-- the rest. Encryption options: cipher-algo=aes256, s2k-mode=1 (see there).

-- name: LockKeyForRotation :one
-- FOR UPDATE: writes hold the verifier FOR SHARE, so a rotation waits for
-- writes in flight, and writes that come after it wait for it, then find
-- the new verifier and refuse the old key. Reindexing a collection
-- (search.sql) locks it the same way, so that no write commits a record
-- untagged while it runs.
SELECT (fieldseal.open_subject(wrapped_key, key_verifier, @key::text) IS NOT NULL)::boolean AS matches,
       (wrapped_key IS NOT NULL)::boolean AS layered
FROM fieldseal.subjects
WHERE subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted' -- see records.sql
FOR UPDATE;

-- name: ReencryptRecords :execrows
-- Every record of the subject from the keys its row opens with old_key
-- to the data keys of the subject key new_wrapped wraps under new_key
-- (NewSubjectKey), before the row is given it (ReplaceSubjectKey).
-- Decrypted and encrypted again inside PostgreSQL: the plaintext never
-- leaves the database. Versions do not change: the content is the same.
-- A damaged record (it does not open under the verified key) is left
-- out; the caller compares the count with CountRecords and refuses. One
-- scan of the subject's records, no join: the form with a self-join
-- (UPDATE ... FROM (SELECT ... decrypt_or_null ...) d WHERE r.id = d.id)
-- ran as a nested loop over the subject's records when its plan was made
-- on small tables (20,000 records: 33-104 s instead of 3 s). Each record
-- is opened twice, once to choose it and once to encrypt it: one more
-- decrypt_or_null a record (7.8 us each over 10,000 secrets of 500
-- bytes, timed in psql), against a rotation's ~160 us a record. Both
-- subject keys are opened once (k).
WITH k AS MATERIALIZED (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @old_key::text) AS old_sk,
           fieldseal.open_subject(@new_wrapped::bytea, NULL, @new_key::text) AS new_sk
    FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
UPDATE fieldseal.records r
SET secret = fieldseal.pgp_sym_encrypt(fieldseal.pgp_sym_decrypt(r.secret, fieldseal.record_key((SELECT old_sk FROM k), @old_key::text, r.collection, r.key_version)),
                                       fieldseal.record_key((SELECT new_sk FROM k), @new_key::text, r.collection, fieldseal.write_version(@new_wrapped::bytea, r.collection)),
                                       'cipher-algo=aes256, s2k-mode=1'),
    key_version = fieldseal.write_version(@new_wrapped::bytea, r.collection)
WHERE r.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND (SELECT new_sk FROM k) IS NOT NULL
  AND fieldseal.decrypt_or_null(r.secret, fieldseal.record_key((SELECT old_sk FROM k), @old_key::text, r.collection, r.key_version)) IS NOT NULL;

-- name: CountRecords :one
SELECT count(*) FROM fieldseal.records WHERE subject = current_setting('fieldseal.subject', true);

-- name: ListDamagedRecords :many
-- The records that do not open under a verified key: a rotation's refusal
-- names them.
WITH k AS MATERIALIZED (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
SELECT r.id FROM fieldseal.records r
WHERE r.subject = current_setting('fieldseal.subject', true) AND (SELECT sk FROM k) IS NOT NULL
  AND fieldseal.decrypt_or_null(r.secret, fieldseal.record_key((SELECT sk FROM k), @key::text, r.collection, r.key_version)) IS NULL
ORDER BY r.id
LIMIT 20;

-- name: ProveKey :exec
-- The current key, for the trigger that lets a subject's keys change only
-- in a transaction that proves it (migrations 00019, 00023): kept in the transaction
-- as a parameter's value, never in a statement's text, by a statement
-- that reads the subject's row, so that on Citus it is set on the worker
-- that holds the row, where the trigger runs. The trigger clears it.
SELECT set_config('fieldseal.key_proof', @key::text, true) FROM fieldseal.subjects WHERE subject = current_setting('fieldseal.subject', true);

-- name: RewrapSubjectKey :one
-- A rotation that keeps the subject's keys: its subject key wrapped
-- under new_key instead of old_key (checked by LockKeyForRotation; a key
-- that does not open it gives no row, never an error), made by a SELECT,
-- so that on Citus both keys stay parameters on the worker;
-- ReplaceSubjectKey writes it.
SELECT fieldseal.pgp_sym_encrypt_bytea(k.sk, @new_key::text, 'cipher-algo=aes256, s2k-mode=1')::bytea AS wrapped
FROM fieldseal.subjects s
CROSS JOIN LATERAL (SELECT fieldseal.open_subject(s.wrapped_key, NULL, @old_key::text) AS sk) k
WHERE s.subject = current_setting('fieldseal.subject', true) AND s.wrapped_key IS NOT NULL
  AND current_setting('fieldseal.key_use', true) = 'admitted' AND k.sk IS NOT NULL;

-- name: NewSubjectKey :one
-- A new subject key wrapped under key, for a rotation that replaces the
-- subject's keys (ReencryptRecords, then ReplaceSubjectKey). A SELECT
-- of the subject's row, so that on Citus it is made on the worker.
SELECT fieldseal.new_subject_key(@key::text)::bytea AS wrapped
FROM fieldseal.subjects
WHERE subject = current_setting('fieldseal.subject', true);

-- name: ReplaceSubjectKey :execrows
-- After ProveKey: the subject's row holds wrapped (a subject of the old
-- form loses its verifier). wrapped is a ciphertext: a Citus worker's
-- statement may hold it, as its table does.
UPDATE fieldseal.subjects
SET wrapped_key = @wrapped::bytea, key_verifier = NULL, updated_at = now()
WHERE subject = current_setting('fieldseal.subject', true);

-- name: ReencryptPage :many
-- ReencryptRecords on Citus, a page at a time (db/dialect.go): each
-- record's secret decrypted and encrypted again inside PostgreSQL, by a
-- SELECT, whose parameters (both keys) Citus keeps parameters on the
-- worker; only the new ciphertexts come back, for ReplaceSecrets. NULL:
-- the record does not open under the verified key (damaged).
WITH k AS MATERIALIZED (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @old_key::text) AS old_sk,
           fieldseal.open_subject(@new_wrapped::bytea, NULL, @new_key::text) AS new_sk
    FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
SELECT r.id,
       fieldseal.pgp_sym_encrypt(fieldseal.decrypt_or_null(r.secret, fieldseal.record_key((SELECT old_sk FROM k), @old_key::text, r.collection, r.key_version)),
                                 fieldseal.record_key((SELECT new_sk FROM k), @new_key::text, r.collection, fieldseal.write_version(@new_wrapped::bytea, r.collection)),
                                 'cipher-algo=aes256, s2k-mode=1')::bytea AS secret,
       fieldseal.write_version(@new_wrapped::bytea, r.collection)::integer AS key_version
FROM fieldseal.records r
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id > @after
ORDER BY r.id
LIMIT @max_rows;

-- name: ReplaceSecrets :execrows
-- ReencryptPage's ciphertexts written back. Citus writes an UPDATE's
-- parameters into the worker's statement: ciphertexts and ids only.
UPDATE fieldseal.records r
SET secret = v.secret, key_version = v.key_version
FROM (SELECT (@ids::uuid[])[i] AS id, (@secrets::bytea[])[i] AS secret, (@key_versions::integer[])[i] AS key_version
      FROM generate_series(1, cardinality(@ids::uuid[])) AS i) v
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = v.id;

-- name: GetRecordCiphertext :one
-- With what opens it, as ExportRecords.
SELECT fieldseal.armor(r.secret)::text AS armored, r.collection, r.key_version, s.wrapped_key
FROM fieldseal.records r
JOIN fieldseal.subjects s ON s.subject = r.subject
WHERE r.subject = current_setting('fieldseal.subject', true) AND s.subject = current_setting('fieldseal.subject', true) AND r.id = @id;

-- name: ExportRecords :many
-- Every record of the subject, in id order, in one statement: one
-- snapshot however long the export streams, while the transaction stays
-- READ COMMITTED so that its audit entry joins the chain as it is at the
-- end. Store.Export reads the rows as they arrive; the generated method,
-- which collects them all in memory, is not used.
-- Each line carries what opens its record with the client key alone:
-- its key version and the subject key wrapped under the client key
-- (NULL for a subject of the old form, whose records the client key
-- opens).
SELECT r.id, r.collection, r.public, r.version, r.created_at, r.updated_at,
       fieldseal.armor(r.secret)::text AS armored, r.key_version, s.wrapped_key
FROM fieldseal.records r
JOIN fieldseal.subjects s ON s.subject = r.subject
WHERE r.subject = current_setting('fieldseal.subject', true) AND s.subject = current_setting('fieldseal.subject', true)
ORDER BY r.id;
