-- Key rotation and export. Same rules as records.sql: every query runs in
-- a transaction that has set fieldseal.subject; row-level security does
-- the rest. Encryption options: cipher-algo=aes256, s2k-mode=1 (see there).

-- name: LockKeyForRotation :one
-- FOR UPDATE: writes hold the verifier FOR SHARE, so a rotation waits for
-- writes in flight, and writes that come after it wait for it, then find
-- the new verifier and refuse the old key. Reindexing a collection
-- (search.sql) locks it the same way, so that no write commits a record
-- untagged while it runs.
SELECT fieldseal.key_matches(key_verifier, @key::text)::boolean AS matches
FROM fieldseal.subjects
WHERE subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted' -- see records.sql
FOR UPDATE;

-- name: ReencryptRecords :execrows
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
-- bytes, timed in psql), against a rotation's ~160 us a record.
UPDATE fieldseal.records r
SET secret = fieldseal.pgp_sym_encrypt(fieldseal.pgp_sym_decrypt(r.secret, @old_key::text), @new_key::text, 'cipher-algo=aes256, s2k-mode=1')
WHERE r.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND fieldseal.decrypt_or_null(r.secret, @old_key::text) IS NOT NULL;

-- name: CountRecords :one
SELECT count(*) FROM fieldseal.records WHERE subject = current_setting('fieldseal.subject', true);

-- name: ListDamagedRecords :many
-- The records that do not open under a verified key: a rotation's refusal
-- names them.
SELECT id FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND fieldseal.decrypt_or_null(secret, @key::text) IS NULL
ORDER BY id
LIMIT 20;

-- name: ProveKey :exec
-- The current key, for the trigger that lets a verifier change only in a
-- transaction that proves it (migration 00019): kept in the transaction
-- as a parameter's value, never in a statement's text, by a statement
-- that reads the subject's row, so that on Citus it is set on the worker
-- that holds the row, where the trigger runs. The trigger clears it.
SELECT set_config('fieldseal.key_proof', @key::text, true) FROM fieldseal.subjects WHERE subject = current_setting('fieldseal.subject', true);

-- name: ReplaceKeyVerifier :execrows
-- After ProveKey. The new verifier is made in a subquery: Citus refuses a
-- volatile function in an UPDATE's SET (it makes it on the coordinator,
-- the key a parameter there, and sends the verifier).
UPDATE fieldseal.subjects s
SET key_verifier = v.verifier, updated_at = now()
FROM (SELECT fieldseal.new_key_verifier(@new_key::text) AS verifier) v
WHERE s.subject = current_setting('fieldseal.subject', true);

-- name: ReencryptPage :many
-- Rotation on Citus, a page at a time (db/keys.go): each record's secret
-- decrypted and encrypted again inside PostgreSQL, by a SELECT, whose
-- parameters (both keys) Citus keeps parameters on the worker; only the
-- new ciphertexts come back, for ReplaceSecrets. NULL: the record does
-- not open under the verified key (damaged).
SELECT id, fieldseal.pgp_sym_encrypt(fieldseal.decrypt_or_null(secret, @old_key::text), @new_key::text,
                                     'cipher-algo=aes256, s2k-mode=1')::bytea AS secret
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id > @after
ORDER BY id
LIMIT @max_rows;

-- name: ReplaceSecrets :execrows
-- ReencryptPage's ciphertexts written back. Citus writes an UPDATE's
-- parameters into the worker's statement: ciphertexts and ids only.
UPDATE fieldseal.records r
SET secret = v.secret
FROM (SELECT (@ids::uuid[])[i] AS id, (@secrets::bytea[])[i] AS secret
      FROM generate_series(1, cardinality(@ids::uuid[])) AS i) v
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = v.id;

-- name: GetRecordCiphertext :one
SELECT fieldseal.armor(secret)::text AS armored
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id = @id;

-- name: ExportRecords :many
-- Every record of the subject, in id order, in one statement: one
-- snapshot however long the export streams, while the transaction stays
-- READ COMMITTED so that its audit entry joins the chain as it is at the
-- end. Store.Export reads the rows as they arrive; the generated method,
-- which collects them all in memory, is not used.
SELECT id, collection, public, version, created_at, updated_at,
       fieldseal.armor(secret)::text AS armored
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true)
ORDER BY id;
