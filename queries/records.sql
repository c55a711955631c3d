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
-- Encryption options, everywhere: cipher-algo=aes256, s2k-mode=1. The key
-- is 256 random bits (44 characters of base64), so iterated S2K would add
-- no guessing resistance while costing about 22 times the CPU of s2k-mode=1
-- per encrypt+decrypt: 662 µs against 30 µs (go test -run '^$' -bench S2K ./db/).

-- name: RegisterKeyVerifier :execrows
-- The subject's first write registers its key; later ones change nothing.
-- Two first writes at once: one inserts, the other waits for it and does
-- nothing. Each makes a verifier (one pgp_sym_encrypt) before the
-- conflict is seen: the form that makes none (INSERT ... SELECT ... WHERE
-- NOT EXISTS) cost no less within the noise of make bench, and Citus
-- cannot plan it with the key a parameter.
INSERT INTO fieldseal.subjects (key_verifier)
VALUES (fieldseal.new_key_verifier(@key::text))
ON CONFLICT (subject) DO NOTHING;

-- name: CheckKey :one
-- FOR SHARE: a write that checked the key holds the verifier row, so a
-- concurrent key change waits for it (and vice versa).
SELECT fieldseal.key_matches(key_verifier, @key::text)::boolean AS matches
FROM fieldseal.subjects
WHERE subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
FOR SHARE;

-- name: CreateRecord :one
INSERT INTO fieldseal.records (id, collection, public, secret)
VALUES (
    @id, @collection, @public,
    fieldseal.pgp_sym_encrypt(@secret::text, @key::text, 'cipher-algo=aes256, s2k-mode=1')
)
RETURNING id, collection, public, version, created_at, updated_at;

-- name: GetRecord :one
SELECT id, collection, public, version, created_at, updated_at
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id = @id;

-- name: GetRecordDecrypted :one
-- No row: no such record (404), whatever the key (or key use not
-- admitted). key_matches false: the record exists but the key is not the
-- subject's (403), and nothing is decrypted. The verifier is checked once,
-- in the lateral subquery. damaged: the key is verified but the record
-- does not open (migration 00013).
SELECT r.id, r.collection, r.public,
       coalesce(d.secret, '')::text AS secret,
       k.matches::boolean AS key_matches,
       (k.matches AND d.secret IS NULL)::boolean AS damaged,
       r.version, r.created_at, r.updated_at,
       -- For AppendAuditEvent's if_decrypted, later in the transaction.
       set_config('fieldseal.decrypted', CASE WHEN d.secret IS NOT NULL THEN 'yes' ELSE 'no' END, true)::text AS decrypted
FROM fieldseal.records r
CROSS JOIN LATERAL (
    SELECT fieldseal.key_matches(s.key_verifier, @key::text) AS matches FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true)
) k
CROSS JOIN LATERAL (
    SELECT CASE WHEN k.matches THEN fieldseal.decrypt_or_null(r.secret, @key::text) END AS secret
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
-- page. The verifier is checked once (an InitPlan). A record that does not
-- open under the verified key is damaged: listed without its secret.
-- Every collection; ListCollectionDecrypted is one collection's (key-
-- bearing statements run generic plans: each has a plan of its own).
SELECT r.id, r.collection, r.public,
       coalesce(d.secret, '')::text AS secret, (d.secret IS NULL)::boolean AS damaged,
       r.version, r.created_at, r.updated_at
FROM fieldseal.records r
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(r.secret, @key::text) AS secret) d
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id > @after
  AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND (SELECT fieldseal.key_matches(s.key_verifier, @key::text) FROM fieldseal.subjects s WHERE s.subject = current_setting('fieldseal.subject', true))
ORDER BY r.id
LIMIT @max_rows;

-- name: ListCollectionDecrypted :many
-- ListRecordsDecrypted for one collection: its generic plan uses the
-- (subject, collection, id) index.
SELECT r.id, r.collection, r.public,
       coalesce(d.secret, '')::text AS secret, (d.secret IS NULL)::boolean AS damaged,
       r.version, r.created_at, r.updated_at
FROM fieldseal.records r
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(r.secret, @key::text) AS secret) d
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.collection = @collection::text AND r.id > @after
  AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND (SELECT fieldseal.key_matches(s.key_verifier, @key::text) FROM fieldseal.subjects s WHERE s.subject = current_setting('fieldseal.subject', true))
ORDER BY r.id
LIMIT @max_rows;

-- name: ReplaceRecord :one
-- check_version false replaces unconditionally (no If-Match, or "*");
-- else the version must be one of versions (the entity tags of If-Match).
-- Encrypted in a subquery: Citus refuses a volatile function in an
-- UPDATE's SET.
UPDATE fieldseal.records r
SET collection = @collection,
    public = @public,
    secret = e.secret,
    version = r.version + 1,
    updated_at = now()
FROM (SELECT fieldseal.pgp_sym_encrypt(@secret::text, @key::text, 'cipher-algo=aes256, s2k-mode=1') AS secret) e
WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = @id AND (NOT @check_version::boolean OR r.version = ANY(@versions::bigint[]))
RETURNING r.id, r.collection, r.public, r.version, r.created_at, r.updated_at;

-- name: DeleteRecord :execrows
-- Versions as in ReplaceRecord.
DELETE FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id = @id AND (NOT @check_version::boolean OR version = ANY(@versions::bigint[]));
