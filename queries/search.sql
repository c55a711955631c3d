-- Collections' searchable fields, blind-index tags, batch writes and
-- import (migration 00016). Same rules as records.sql: every query runs
-- in a transaction that has set fieldseal.subject, and a statement that
-- tries a key requires fieldseal.key_use = 'admitted'.

-- name: GetCollection :one
SELECT searchable, updated_at FROM fieldseal.collections WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection;

-- name: SetCollection :exec
-- now() in VALUES, excluded's in DO UPDATE: Citus wants DO UPDATE's
-- functions immutable.
INSERT INTO fieldseal.collections (collection, searchable, updated_at)
VALUES (@collection, @searchable, now())
ON CONFLICT (subject, collection) DO UPDATE SET searchable = EXCLUDED.searchable, updated_at = EXCLUDED.updated_at;

-- name: DeleteCollectionTags :exec
DELETE FROM fieldseal.search_tags t
USING fieldseal.records r
WHERE t.subject = current_setting('fieldseal.subject', true) AND r.subject = current_setting('fieldseal.subject', true) AND r.id = t.record_id AND r.collection = @collection::text;

-- name: IndexCollection :one
-- Every record of the collection decrypted once, inside PostgreSQL, and
-- its tags written (after DeleteCollectionTags). damaged: the first
-- records that do not open under the verified key; unreadable: the first
-- whose secret jsonb refuses (the caller refuses either).
WITH d AS MATERIALIZED (
    SELECT id, fieldseal.decrypt_or_null(secret, @key::text) AS secret
    FROM fieldseal.records
    WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection::text AND current_setting('fieldseal.key_use', true) = 'admitted'
), j AS MATERIALIZED (
    SELECT id, secret IS NULL AS damaged, fieldseal.jsonb_or_null(secret) AS doc FROM d
), tagged AS (
    INSERT INTO fieldseal.search_tags (record_id, field, tag)
    SELECT j.id, t.field, t.tag
    FROM j
    JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = @collection::text
    CROSS JOIN LATERAL fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable, j.doc) t
)
SELECT count(*)::bigint AS records,
       coalesce((array_agg(id ORDER BY id) FILTER (WHERE damaged))[1:20], '{}')::uuid[] AS damaged,
       coalesce((array_agg(id ORDER BY id) FILTER (WHERE doc IS NULL AND NOT damaged))[1:20], '{}')::uuid[] AS unreadable
FROM j;

-- name: IndexRecords :exec
-- The tags of records just written with their plaintext secrets: nothing
-- for a collection without searchable fields. The EXISTS is a one-time
-- filter: when no collection written to has a searchable field,
-- search_tags_in is not called at all (a statement that calls it plans
-- its body: 0.27 ms of PostgreSQL CPU per create, measured with pgbench,
-- with nothing to tag). sqlc knows unnest of one array only: the arrays
-- are read by subscript. (On Citus: RecordTags and InsertTags.)
INSERT INTO fieldseal.search_tags (record_id, field, tag)
SELECT (@ids::uuid[])[i], t.field, t.tag
FROM generate_series(1, cardinality(@ids::uuid[])) AS i
JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = (@collections::text[])[i] AND c.searchable <> '{}'
CROSS JOIN LATERAL fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable, fieldseal.jsonb_or_null((@secrets::text[])[i])) t
WHERE EXISTS (SELECT 1 FROM fieldseal.collections c WHERE c.subject = current_setting('fieldseal.subject', true) AND c.collection = ANY (@collections::text[]) AND c.searchable <> '{}');

-- name: DeleteRecordTags :exec
DELETE FROM fieldseal.search_tags WHERE subject = current_setting('fieldseal.subject', true) AND record_id = @id;

-- name: ReindexAllTags :exec
-- After a rotation: every tag again, under the new key (DeleteAllTags
-- first). Only records of collections with searchable fields are
-- decrypted.
INSERT INTO fieldseal.search_tags (record_id, field, tag)
SELECT r.id, t.field, t.tag
FROM fieldseal.records r
JOIN fieldseal.collections c ON c.subject = r.subject AND c.collection = r.collection AND c.searchable <> '{}'
CROSS JOIN LATERAL fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable,
                                            fieldseal.jsonb_or_null(fieldseal.pgp_sym_decrypt(r.secret, @key::text))) t
WHERE r.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted';

-- name: DeleteAllTags :exec
DELETE FROM fieldseal.search_tags WHERE subject = current_setting('fieldseal.subject', true);

-- name: SearchRecordsDecrypted :many
-- The records of one collection whose tags match every secret filter
-- (fields[i] = values[i]) and, if given, the public filter; a page of
-- them in id order, and only that page decrypted. Nothing unless key is
-- the subject's (as ListRecordsDecrypted).
SELECT r.id, r.collection, r.public,
       coalesce(d.secret, '')::text AS secret, (d.secret IS NULL)::boolean AS damaged,
       r.version, r.created_at, r.updated_at
FROM (
    SELECT m.id FROM fieldseal.records m
    WHERE m.subject = current_setting('fieldseal.subject', true) AND m.collection = @collection::text AND m.id > @after
      AND m.id IN (
          -- The filters' tags, computed once (an InitPlan), found through
          -- the (subject, tag) index. A tag is bound to its field by its
          -- key, so a record matching every filter has one per field.
          SELECT t.record_id
          FROM fieldseal.search_tags t
          WHERE t.subject = current_setting('fieldseal.subject', true) AND t.tag = ANY (ARRAY(
              SELECT q.tag
              FROM fieldseal.collections c
              CROSS JOIN LATERAL unnest(@fields::text[]) WITH ORDINALITY AS f(field, i)
              CROSS JOIN LATERAL fieldseal.search_query_tags_in(@key::text, c.subject, c.collection, c.searchable,
                                                                f.field, (@values::text[])[f.i]) q
              WHERE c.subject = current_setting('fieldseal.subject', true) AND c.collection = @collection::text))
          GROUP BY t.record_id
          HAVING count(DISTINCT t.field) = cardinality(@fields::text[]))
      AND (sqlc.narg(public_filter)::jsonpath IS NULL OR m.public @@ sqlc.narg(public_filter)::jsonpath)
      AND current_setting('fieldseal.key_use', true) = 'admitted'
      AND (SELECT fieldseal.key_matches(s.key_verifier, @key::text) FROM fieldseal.subjects s WHERE s.subject = current_setting('fieldseal.subject', true))
    ORDER BY m.id
    LIMIT @max_rows
) page
JOIN fieldseal.records r ON r.subject = current_setting('fieldseal.subject', true) AND r.id = page.id
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(r.secret, @key::text) AS secret) d
ORDER BY r.id;

-- name: ListRecordsFiltered :many
-- A page of the records whose public fields match the filter (a
-- jsonpath predicate, served by the records_public GIN index); no key.
SELECT id, collection, public, version, created_at, updated_at
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id > @after AND (@collection::text = '' OR collection = @collection::text)
  AND public @@ @public_filter::jsonpath
ORDER BY id
LIMIT @max_rows;

-- name: ListRecordsFilteredDecrypted :many
-- ListRecordsFiltered with the key: only the page is decrypted.
SELECT r.id, r.collection, r.public,
       coalesce(d.secret, '')::text AS secret, (d.secret IS NULL)::boolean AS damaged,
       r.version, r.created_at, r.updated_at
FROM (
    SELECT m.id FROM fieldseal.records m
    WHERE m.subject = current_setting('fieldseal.subject', true) AND m.id > @after AND (@collection::text = '' OR m.collection = @collection::text)
      AND m.public @@ @public_filter::jsonpath
      AND current_setting('fieldseal.key_use', true) = 'admitted'
      AND (SELECT fieldseal.key_matches(s.key_verifier, @key::text) FROM fieldseal.subjects s WHERE s.subject = current_setting('fieldseal.subject', true))
    ORDER BY m.id
    LIMIT @max_rows
) page
JOIN fieldseal.records r ON r.subject = current_setting('fieldseal.subject', true) AND r.id = page.id
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(r.secret, @key::text) AS secret) d
ORDER BY r.id;

-- name: CreateRecords :many
-- A batch: every record in one statement, in the order given.
-- (On Citus the Store inserts a batch record by record instead:
-- createRecords in db/search.go.)
INSERT INTO fieldseal.records (id, collection, public, secret)
SELECT (@ids::uuid[])[i], (@collections::text[])[i], (@publics::jsonb[])[i],
       fieldseal.pgp_sym_encrypt((@secrets::text[])[i], @key::text, 'cipher-algo=aes256, s2k-mode=1')
FROM generate_series(1, cardinality(@ids::uuid[])) AS i
ORDER BY i
RETURNING id, collection, public, version, created_at, updated_at;

-- name: ImportRecords :one
-- A page of an import (db/search.go: Import): every ciphertext is opened
-- under the verified key first; if any does not open (unopened: the
-- first such lines, 1-based, of the page), or holds a
-- secret jsonb refuses in a collection with searchable fields
-- (unreadable), nothing is written. Else every record whose id the
-- subject does not have yet is inserted as it was exported, and tagged.
WITH given AS MATERIALIZED (
    SELECT i AS n, (@ids::uuid[])[i] AS id, (@collections::text[])[i] AS collection,
           (@publics::jsonb[])[i] AS public, (@secrets::bytea[])[i] AS secret,
           (@versions::bigint[])[i] AS version, (@created::timestamptz[])[i] AS created_at,
           (@updated::timestamptz[])[i] AS updated_at,
           fieldseal.decrypt_or_null((@secrets::bytea[])[i], @key::text) AS plain
    FROM generate_series(1, cardinality(@ids::uuid[])) AS i
    WHERE current_setting('fieldseal.key_use', true) = 'admitted'
), opened AS MATERIALIZED (
    SELECT g.*, s.searchable,
           CASE WHEN g.plain IS NOT NULL AND s.searchable THEN fieldseal.jsonb_or_null(g.plain) END AS doc
    FROM given g
    CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM fieldseal.collections c
                                       WHERE c.subject = current_setting('fieldseal.subject', true) AND c.collection = g.collection
                                         AND c.searchable <> '{}') AS searchable) s
), bad AS (
    SELECT array_agg(n ORDER BY n) FILTER (WHERE plain IS NULL) AS unopened,
           array_agg(n ORDER BY n) FILTER (WHERE plain IS NOT NULL AND searchable AND doc IS NULL) AS unreadable
    FROM opened
), inserted AS (
    INSERT INTO fieldseal.records (id, collection, public, secret, version, created_at, updated_at)
    SELECT o.id, o.collection, o.public, o.secret, o.version, o.created_at, o.updated_at
    FROM opened o, bad
    WHERE bad.unopened IS NULL AND bad.unreadable IS NULL
    ORDER BY o.n
    ON CONFLICT (subject, id) DO NOTHING
    RETURNING id
), tagged AS (
    INSERT INTO fieldseal.search_tags (record_id, field, tag)
    SELECT o.id, t.field, t.tag
    FROM opened o JOIN inserted i ON i.id = o.id
    JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = o.collection
    CROSS JOIN LATERAL fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable, o.doc) t
)
SELECT (SELECT count(*) FROM opened)::bigint AS opened_count,
       (SELECT count(*) FROM inserted)::bigint AS imported,
       coalesce((SELECT unopened FROM bad)[1:20], '{}')::bigint[] AS unopened,
       coalesce((SELECT unreadable FROM bad)[1:20], '{}')::bigint[] AS unreadable;

-- Import on Citus (db/search.go), a page of lines at a time: ImportRecords'
-- data-modifying CTEs would have Citus write the key into the statement
-- it sends to the worker, or insert through the coordinator's COPY, which
-- row-level security refuses. ImportLines opens the lines and computes
-- their tags in a SELECT (key and ciphertexts stay parameters on the
-- worker); InsertImported writes the records (ciphertexts, which the
-- worker's log may hold, as its table does), then InsertTags their tags.

-- name: ImportLines :many
-- A row per line (n, 1-based): whether its ciphertext opens under the
-- key, whether its secret is unreadable to jsonb in a collection with
-- searchable fields, and its tags there.
SELECT i::bigint AS n, (d.plain IS NOT NULL)::boolean AS opened,
       (d.plain IS NOT NULL AND c.collection IS NOT NULL AND j.doc IS NULL)::boolean AS unreadable,
       coalesce(t.fields, '{}')::text[] AS fields, coalesce(t.tags, '{}')::bytea[] AS tags
FROM fieldseal.subjects s
CROSS JOIN generate_series(1, cardinality(@secrets::bytea[])) AS i
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null((@secrets::bytea[])[i], @key::text) AS plain) d
LEFT JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true)
                                 AND c.collection = (@collections::text[])[i] AND c.searchable <> '{}'
CROSS JOIN LATERAL (SELECT CASE WHEN c.collection IS NOT NULL THEN fieldseal.jsonb_or_null(d.plain) END AS doc) j
CROSS JOIN LATERAL (SELECT array_agg(x.field) AS fields, array_agg(x.tag) AS tags
                    FROM fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable, j.doc) x) t
WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
ORDER BY i;

-- name: InsertImported :many
-- Lines ImportLines opened, inserted as exported unless the subject has
-- the id already; the ids inserted. The subject's row is there so that
-- Citus sends the statement whole to the subject's shard.
INSERT INTO fieldseal.records (subject, id, collection, public, secret, version, created_at, updated_at)
SELECT s.subject, (@ids::uuid[])[i], (@collections::text[])[i], (@publics::jsonb[])[i], (@secrets::bytea[])[i],
       (@versions::bigint[])[i], (@created::timestamptz[])[i], (@updated::timestamptz[])[i]
FROM fieldseal.subjects s
CROSS JOIN generate_series(1, cardinality(@ids::uuid[])) AS i
WHERE s.subject = current_setting('fieldseal.subject', true)
ORDER BY i
ON CONFLICT (subject, id) DO NOTHING
RETURNING id;

-- Tags on Citus (db/search.go). Citus writes an INSERT's parameters into
-- the statement it sends to the worker, so tags are computed by SELECTs,
-- whose parameters (the key, the plaintext) stay parameters there, and
-- written by InsertTags, whose values (ids, fields, tags) the worker's
-- log may hold, as its table does.

-- name: RecordTags :many
-- IndexRecords' tags, returned instead of inserted.
SELECT (@ids::uuid[])[i]::uuid AS record_id, t.field::text AS field, t.tag::bytea AS tag
FROM generate_series(1, cardinality(@ids::uuid[])) AS i
JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = (@collections::text[])[i] AND c.searchable <> '{}'
CROSS JOIN LATERAL fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable, fieldseal.jsonb_or_null((@secrets::text[])[i])) t;

-- name: CollectionTags :many
-- IndexCollection's work, returned instead of inserted: a row per record
-- of the collection (its tags, or why it has none: damaged, unreadable).
SELECT r.id, (d.secret IS NULL)::boolean AS damaged, (d.secret IS NOT NULL AND j.doc IS NULL)::boolean AS unreadable,
       coalesce(t.fields, '{}')::text[] AS fields, coalesce(t.tags, '{}')::bytea[] AS tags
FROM fieldseal.records r
JOIN fieldseal.collections c ON c.subject = r.subject AND c.collection = r.collection
CROSS JOIN LATERAL (SELECT fieldseal.decrypt_or_null(r.secret, @key::text) AS secret) d
CROSS JOIN LATERAL (SELECT fieldseal.jsonb_or_null(d.secret) AS doc) j
CROSS JOIN LATERAL (SELECT array_agg(x.field) AS fields, array_agg(x.tag) AS tags
                    FROM fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable, j.doc) x) t
WHERE r.subject = current_setting('fieldseal.subject', true) AND c.subject = current_setting('fieldseal.subject', true) AND r.collection = @collection::text
  AND current_setting('fieldseal.key_use', true) = 'admitted'
ORDER BY r.id;

-- name: AllTags :many
-- ReindexAllTags' tags, returned instead of inserted.
SELECT r.id AS record_id, t.field::text AS field, t.tag::bytea AS tag
FROM fieldseal.records r
JOIN fieldseal.collections c ON c.subject = r.subject AND c.collection = r.collection AND c.searchable <> '{}'
CROSS JOIN LATERAL fieldseal.search_tags_in(@key::text, c.subject, c.collection, c.searchable,
                                            fieldseal.jsonb_or_null(fieldseal.pgp_sym_decrypt(r.secret, @key::text))) t
WHERE r.subject = current_setting('fieldseal.subject', true) AND c.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted';

-- name: InsertTags :exec
-- Tags computed by the statements above. The subject's row is there so
-- that Citus sends the statement whole to the subject's shard.
INSERT INTO fieldseal.search_tags (subject, record_id, field, tag)
SELECT s.subject, (@record_ids::uuid[])[i], (@fields::text[])[i], (@tags::bytea[])[i]
FROM fieldseal.subjects s
CROSS JOIN generate_series(1, cardinality(@record_ids::uuid[])) AS i
WHERE s.subject = current_setting('fieldseal.subject', true);
