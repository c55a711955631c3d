-- Every query runs inside a transaction that has set fieldseal.subject
-- (SetSubject, tx.sql); row-level security adds "subject = <that subject>" to each
-- of them, and new rows take their subject from it by default. Each
-- statement also says so itself, for every table it reads:
-- "x.subject = current_setting('fieldseal.subject', true)", which on
-- Citus the Store writes as the subject's literal (Store.bind), so that
-- Citus runs the statement on that subject's shard alone (docs/scale.md).
--
-- A statement that tries a key (key_matches, pgp_sym_decrypt) requires
-- current_setting('fieldseal.key_use', true) = 'admitted': AdmitKeyUse (tx.sql) says so
-- only for a caller under the wrong-key limits. Without it the statement
-- returns nothing, so a throttled caller's key is never tried, even by a
-- statement pipelined behind the throttle check.
--
-- Keys in layers (migration 00023): the client key (@key) opens the
-- subject's row (open_subject: its subject key, or for a subject of the
-- old form its verifier), and a record's passphrase is record_key of
-- what it opened, its collection and its key_version. A statement that
-- reads records opens the subject's row once, in a MATERIALIZED CTE (k)
-- read by InitPlans, and derives each record's key from it: no subject
-- key or data key ever leaves the statement.
--
-- Encryption options, everywhere: cipher-algo=aes256, s2k-mode=1. The key
-- is 256 random bits (44 characters of base64), so iterated S2K would add
-- no guessing resistance while costing about 22 times the CPU of s2k-mode=1
-- per encrypt+decrypt: 662 µs against 30 µs (go test -run '^$' -bench S2K ./db/).
-- A data key is 256 bits from HMAC-SHA-256, as random to an attacker.

-- name: RegisterSubjectKey :execrows
-- The subject's first write makes its subject key, wrapped under the
-- client key; later ones change nothing. Two first writes at once: one
-- inserts, the other waits for it and does nothing. Each makes a wrapped
-- key (one pgp_sym_encrypt_bytea) before the conflict is seen: the form
-- that makes none (INSERT ... SELECT ... WHERE NOT EXISTS) cost no less
-- within the noise of make bench, and Citus cannot plan it with the key a
-- parameter. (On Citus new_subject_key runs on the coordinator, which
-- sends the worker only the wrapped key.)
INSERT INTO fieldseal.subjects (wrapped_key)
VALUES (fieldseal.new_subject_key(@key::text))
ON CONFLICT (subject) DO NOTHING;

-- name: CheckKey :one
-- FOR SHARE: a write that checked the key holds the verifier row, so a
-- concurrent key change waits for it (and vice versa).
SELECT (fieldseal.open_subject(wrapped_key, key_verifier, @key::text) IS NOT NULL)::boolean AS matches
FROM fieldseal.subjects
WHERE subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
FOR SHARE;

-- name: CreateRecord :one
-- Encrypted under the collection's data key (record_key of what the key
-- opens): no row when the key opens nothing (a wrong key, or key use not
-- admitted), which CheckKey, in the same round trip, tells. (On Citus an
-- INSERT ... SELECT would carry the key and the plaintext into the
-- worker's statement: EncryptSecrets and InsertRecords instead.)
INSERT INTO fieldseal.records (id, collection, public, secret, key_version)
SELECT @id, @collection, @public,
       fieldseal.pgp_sym_encrypt(@secret::text, fieldseal.record_key(k.sk, @key::text, @collection, v.v), 'cipher-algo=aes256, s2k-mode=1'),
       v.v
FROM fieldseal.subjects s
CROSS JOIN LATERAL (SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk) k
CROSS JOIN LATERAL (SELECT fieldseal.write_version(s.wrapped_key, @collection) AS v) v
WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND k.sk IS NOT NULL
RETURNING id, collection, public, version, created_at, updated_at;

-- name: GetRecord :one
SELECT id, collection, public, version, created_at, updated_at
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id = @id;

-- name: GetRecordDecrypted :one
-- No row: no such record (404), whatever the key (or key use not
-- admitted). key_matches false: the record exists but the key is not the
-- subject's (403), and nothing is decrypted. The subject's row is opened
-- once, in the lateral subquery. damaged: the key is verified but the
-- record does not open (migration 00013).
SELECT r.id, r.collection, r.public,
       coalesce(d.secret, '')::text AS secret,
       (k.sk IS NOT NULL)::boolean AS key_matches,
       (k.sk IS NOT NULL AND d.secret IS NULL)::boolean AS damaged,
       r.version, r.created_at, r.updated_at,
       -- For AppendAuditEvent's if_decrypted, later in the transaction.
       set_config('fieldseal.decrypted', CASE WHEN d.secret IS NOT NULL THEN 'yes' ELSE 'no' END, true)::text AS decrypted
FROM fieldseal.records r
CROSS JOIN LATERAL (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true)
) k
CROSS JOIN LATERAL (
    SELECT CASE WHEN k.sk IS NOT NULL THEN fieldseal.decrypt_or_null(r.secret, fieldseal.record_key(k.sk, @key::text, r.collection, r.key_version)) END AS secret
) d
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = @id AND current_setting('fieldseal.key_use', true) = 'admitted';

-- name: UseGenericPlans :exec
-- For the rest of the transaction, prepared statements run their cached
-- generic plan. A list page needs it: its generic estimate for LIMIT
-- @max_rows is a tenth of the subject's rows, so PostgreSQL judged a
-- custom plan cheaper and planned every page anew (110 µs each,
-- pg_stat_statements with track_planning during make bench).
SELECT set_config('plan_cache_mode', 'force_generic_plan', true);

-- name: ListRecords :many
-- Keyset pagination by id (UUIDv7, creation order); after is the all-zero
-- UUID for the first page and collection '' means every collection.
SELECT id, collection, public, version, created_at, updated_at
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id > @after AND (@collection::text = '' OR collection = @collection::text)
ORDER BY id
LIMIT @max_rows;

-- name: ListRecordsDecrypted :many
-- Nothing unless key is the subject's: it can be sent in the same round
-- trip as CheckKey, whose answer tells a wrong key (403) from an empty
-- page. The subject's row is opened once (k), the page found (page), and
-- each data key it needs derived once (keys: one HMAC a collection and
-- version, not one a record). A record that does not open under the
-- verified key is damaged: listed without its secret. Every collection;
-- ListCollectionDecrypted is one collection's (key-bearing statements run
-- generic plans: each has a plan of its own).
WITH k AS MATERIALIZED (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
), page AS MATERIALIZED (
    SELECT r.id, r.collection, r.public, r.secret, r.key_version, r.version, r.created_at, r.updated_at
    FROM fieldseal.records r
    WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id > @after
      AND (SELECT sk FROM k) IS NOT NULL
    ORDER BY r.id
    LIMIT @max_rows
), keys AS MATERIALIZED (
    SELECT p.collection, p.key_version, fieldseal.record_key((SELECT sk FROM k), @key::text, p.collection, p.key_version) AS key
    FROM (SELECT DISTINCT collection, key_version FROM page) p
)
SELECT page.id, page.collection, page.public,
       coalesce(d.secret, '')::text AS secret, (d.secret IS NULL)::boolean AS damaged,
       page.version, page.created_at, page.updated_at
FROM page
JOIN keys ON keys.collection = page.collection AND keys.key_version = page.key_version
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(page.secret, keys.key) AS secret) d
ORDER BY page.id;

-- name: ListCollectionDecrypted :many
-- ListRecordsDecrypted for one collection: its generic plan uses the
-- (subject, collection, id) index.
WITH k AS MATERIALIZED (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
), page AS MATERIALIZED (
    SELECT r.id, r.collection, r.public, r.secret, r.key_version, r.version, r.created_at, r.updated_at
    FROM fieldseal.records r
    WHERE r.subject = current_setting('fieldseal.subject', true) AND r.collection = @collection::text AND r.id > @after
      AND (SELECT sk FROM k) IS NOT NULL
    ORDER BY r.id
    LIMIT @max_rows
), keys AS MATERIALIZED (
    SELECT p.key_version, fieldseal.record_key((SELECT sk FROM k), @key::text, @collection::text, p.key_version) AS key
    FROM (SELECT DISTINCT key_version FROM page) p
)
SELECT page.id, page.collection, page.public,
       coalesce(d.secret, '')::text AS secret, (d.secret IS NULL)::boolean AS damaged,
       page.version, page.created_at, page.updated_at
FROM page
JOIN keys ON keys.key_version = page.key_version
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(page.secret, keys.key) AS secret) d
ORDER BY page.id;

-- name: ReplaceRecord :one
-- check_version false replaces unconditionally (no If-Match, or "*");
-- else the version must be one of versions (the entity tags of If-Match).
-- Encrypted under the new collection's data key, after CheckKey. (On
-- Citus the UPDATE would carry the key and plaintext into the worker's
-- statement: EncryptSecrets, then ReplaceRecordEncrypted.)
UPDATE fieldseal.records r
SET collection = @collection,
    public = @public,
    secret = e.secret,
    key_version = e.v,
    version = r.version + 1,
    updated_at = now()
FROM (SELECT fieldseal.pgp_sym_encrypt(@secret::text, fieldseal.record_key(fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text), @key::text, @collection, v.v),
                                       'cipher-algo=aes256, s2k-mode=1') AS secret, v.v
      FROM fieldseal.subjects s
      CROSS JOIN LATERAL (SELECT fieldseal.write_version(s.wrapped_key, @collection) AS v) v
      WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted') e
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = @id AND (NOT @check_version::boolean OR r.version = ANY(@versions::bigint[]))
  AND e.secret IS NOT NULL
RETURNING r.id, r.collection, r.public, r.version, r.created_at, r.updated_at;

-- name: ReplaceRecordEncrypted :one
-- ReplaceRecord with its secret encrypted already (EncryptSecrets): on
-- Citus, whose worker's statement then holds the ciphertext only.
UPDATE fieldseal.records r
SET collection = @collection,
    public = @public,
    secret = @secret::bytea,
    key_version = @key_version::integer,
    version = r.version + 1,
    updated_at = now()
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = @id AND (NOT @check_version::boolean OR r.version = ANY(@versions::bigint[]))
RETURNING r.id, r.collection, r.public, r.version, r.created_at, r.updated_at;

-- name: EncryptSecrets :many
-- Secrets encrypted under their collections' data keys, returned: on
-- Citus, where a write carries its parameters into the worker's
-- statement, a SELECT (whose parameters stay parameters there) encrypts,
-- and the write sends the ciphertexts (InsertRecords,
-- ReplaceRecordEncrypted). Nothing when the key opens nothing.
SELECT i::bigint AS n,
       fieldseal.pgp_sym_encrypt((@secrets::text[])[i], fieldseal.record_key(k.sk, @key::text, (@collections::text[])[i], v.v),
                                 'cipher-algo=aes256, s2k-mode=1')::bytea AS secret,
       v.v::integer AS key_version
FROM fieldseal.subjects s
CROSS JOIN LATERAL (SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk) k
CROSS JOIN generate_series(1, cardinality(@secrets::text[])) AS i
CROSS JOIN LATERAL (SELECT fieldseal.write_version(s.wrapped_key, (@collections::text[])[i]) AS v) v
WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND k.sk IS NOT NULL
ORDER BY i;

-- name: InsertRecord :one
-- One record whose secret EncryptSecrets encrypted (a create on Citus):
-- INSERT ... VALUES, which Citus routes by its subject with its fast-path
-- planner (INSERT ... SELECT, as InsertRecords, cost the coordinator a
-- millisecond of planning a create).
INSERT INTO fieldseal.records (id, collection, public, secret, key_version)
VALUES (@id, @collection, @public, @secret::bytea, @key_version::integer)
RETURNING id, collection, public, version, created_at, updated_at;

-- name: InsertRecords :many
-- Records whose secrets EncryptSecrets encrypted, in the order given (on
-- Citus). The subject's row is there so that Citus sends the statement
-- whole to the subject's shard. (RETURNING through an alias: without it,
-- Citus 13.2 sent the shard a statement naming a table its FROM lacked.)
INSERT INTO fieldseal.records AS r (subject, id, collection, public, secret, key_version)
SELECT s.subject, (@ids::uuid[])[i], (@collections::text[])[i], (@publics::jsonb[])[i], (@secrets::bytea[])[i], (@key_versions::integer[])[i]
FROM fieldseal.subjects s
CROSS JOIN generate_series(1, cardinality(@ids::uuid[])) AS i
WHERE s.subject = current_setting('fieldseal.subject', true)
ORDER BY i
RETURNING r.id, r.collection, r.public, r.version, r.created_at, r.updated_at;

-- name: DeleteRecord :execrows
-- Versions as in ReplaceRecord.
DELETE FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id = @id AND (NOT @check_version::boolean OR version = ANY(@versions::bigint[]));
