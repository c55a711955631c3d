-- Collections' searchable fields, blind-index tags, batch writes and
-- import (migration 00016). Same rules as records.sql: every query runs
-- in a transaction that has set fieldseal.subject, and a statement that
-- tries a key requires fieldseal.key_use = 'admitted'.

-- name: GetCollection :one
SELECT searchable, updated_at, indexing, reindexing, index_done, index_total, indexed_at
FROM fieldseal.collections WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection;

-- Reindexing a collection online (migration 00022, db/collections.go): the
-- settings change in a short transaction (LockCollection, StartIndexing),
-- then a pass tags the records a batch at a time (LockCollection,
-- LockIndexBatch, BatchTags, DeleteTagsOf, InsertTags, AdvanceIndexing).
-- The same statements on one PostgreSQL and on Citus: tags are computed
-- by a SELECT, whose key stays a parameter on a worker.

-- name: LockCollection :one
-- The collection's settings and its pass, held until the transaction
-- ends: two PUTs of one collection take turns.
SELECT searchable, indexing, dropping, reindexing, index_run, indexed_through, index_done, index_total
FROM fieldseal.collections
WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection
FOR UPDATE;

-- name: CountCollection :one
SELECT count(*)::bigint FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection::text;

-- name: StartIndexing :one
-- New settings, and the pass they owe (if reindexing) from the first
-- record. (now() in VALUES, excluded's in DO UPDATE: Citus wants DO
-- UPDATE's functions immutable.)
INSERT INTO fieldseal.collections (collection, searchable, indexing, dropping, reindexing, index_run, indexed_through, index_done, index_total, updated_at, indexed_at)
VALUES (@collection, @searchable, @indexing::text[], @dropping::text[], @reindexing::boolean, 1, NULL, 0, @total::bigint, now(), now())
ON CONFLICT (subject, collection) DO UPDATE SET
    searchable = EXCLUDED.searchable, indexing = EXCLUDED.indexing, dropping = EXCLUDED.dropping, reindexing = EXCLUDED.reindexing,
    index_run = fieldseal.collections.index_run + 1, indexed_through = NULL, index_done = 0, index_total = EXCLUDED.index_total,
    updated_at = EXCLUDED.updated_at, indexed_at = EXCLUDED.indexed_at
RETURNING index_run;

-- name: LockIndexBatch :many
-- The pass's next records, held FOR SHARE until its batch commits: a
-- replace or delete of one of them waits, then tags it (or drops its
-- tags) itself, after the batch.
SELECT id FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection::text AND id > @after
ORDER BY id
LIMIT @max_rows
FOR SHARE;

-- name: BatchTags :many
-- Records of a collection by id, each with its tags under the
-- collection's settings, or why it has none (damaged: it does not open
-- under the verified key; unreadable: jsonb refuses its secret). A
-- collection with no searchable field decrypts nothing.
WITH k AS MATERIALIZED (
    SELECT s.wrapped_key, fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
SELECT r.id, (d.secret IS NULL AND c.searchable <> '{}')::boolean AS damaged,
       (d.secret IS NOT NULL AND j.doc IS NULL)::boolean AS unreadable,
       coalesce(t.fields, '{}')::text[] AS fields, coalesce(t.tags, '{}')::bytea[] AS tags
FROM unnest(@ids::uuid[]) AS b(id)
CROSS JOIN LATERAL (
    SELECT r.id, r.secret, r.key_version FROM fieldseal.records r
    WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = b.id AND r.collection = @collection::text
    OFFSET 0) r -- a fence: one lookup of the primary key per record
JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = @collection::text
CROSS JOIN k
CROSS JOIN LATERAL (SELECT CASE WHEN c.searchable <> '{}' THEN fieldseal.decrypt_or_null(r.secret, fieldseal.record_key(k.sk, @key::text, @collection::text, r.key_version)) END AS secret) d
CROSS JOIN LATERAL (SELECT fieldseal.jsonb_or_null(d.secret) AS doc) j
CROSS JOIN LATERAL (SELECT array_agg(x.field) AS fields, array_agg(x.tag) AS tags
                    FROM fieldseal.search_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, fieldseal.write_version(k.wrapped_key, c.collection)),
                                                  c.subject, c.collection, c.searchable, j.doc) x) t
WHERE current_setting('fieldseal.key_use', true) = 'admitted' AND k.sk IS NOT NULL
ORDER BY r.id;

-- name: DropTagsOf :exec
-- The tags of fields no longer searchable, of a batch of records (first
-- to last in id order). The range bounds the primary key's scan: with
-- the ids alone (record_id = ANY), a plan made on small subjects read
-- every tag of the subject for each batch. (Only when settings drop a
-- field: new and changed fields' tags are replaced by InsertTags.)
DELETE FROM fieldseal.search_tags
WHERE subject = current_setting('fieldseal.subject', true) AND record_id >= @first AND record_id <= @last
  AND record_id = ANY (@ids::uuid[]) AND field = ANY (@fields::text[]);

-- name: AdvanceIndexing :execrows
-- A batch of the pass is tagged: through is its last record. The last
-- batch (finished) makes the fields searchable.
UPDATE fieldseal.collections
SET indexed_through = @through, index_done = index_done + @done::bigint, indexed_at = now(),
    reindexing = NOT @finished::boolean, indexing = CASE WHEN @finished::boolean THEN '{}'::text[] ELSE indexing END,
    dropping = CASE WHEN @finished::boolean THEN '{}'::text[] ELSE dropping END
WHERE subject = current_setting('fieldseal.subject', true) AND collection = @collection AND index_run = @run AND reindexing;

-- name: EndIndexing :exec
-- A key rotation has tagged every record again, under every collection's
-- settings: no pass is owed, and one still running stops (a new run).
UPDATE fieldseal.collections
SET indexing = '{}', dropping = '{}', reindexing = false, index_run = index_run + 1, indexed_at = now()
WHERE subject = current_setting('fieldseal.subject', true) AND reindexing;

-- name: CollectionFieldTags :many
-- What a collection's tags show of each searchable field: how many of
-- its records hold it, how many distinct values, how many records share
-- the most common (a PUT's warnings: handlers/collections.go). The
-- subject's tags are read once, each kept if its record is in the
-- collection: a lookup of the record by (subject, id), which every index
-- of records that can serve it serves as one probe. (Read the other way,
-- each record's tags looked up by record, a plan made on other
-- statistics scanned every tag of the subject per record: minutes.)
SELECT g.field::text AS field, sum(g.n)::bigint AS tagged, count(*)::bigint AS distinct_values, max(g.n)::bigint AS most_common
FROM (SELECT t.field, t.tag, count(*) AS n
      FROM fieldseal.search_tags t
      CROSS JOIN LATERAL (
          SELECT 1 FROM fieldseal.records r
          WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = t.record_id AND r.collection = @collection::text
          OFFSET 0) r -- a fence: one probe per tag
      WHERE t.subject = current_setting('fieldseal.subject', true)
      GROUP BY t.field, t.tag) g
GROUP BY g.field
ORDER BY g.field;

-- name: IndexRecords :exec
-- The tags of records just written with their plaintext secrets: nothing
-- for a collection without searchable fields. The EXISTS is a one-time
-- filter: when no collection written to has a searchable field,
-- search_tags_in is not called at all (a statement that calls it plans
-- its body: 0.27 ms of PostgreSQL CPU per create, measured with pgbench,
-- with nothing to tag). sqlc knows unnest of one array only: the arrays
-- are read by subscript. Tags are keyed by the collection's data key (of
-- the version it writes). (On Citus: RecordTags and InsertTags.)
WITH k AS MATERIALIZED (
    SELECT s.wrapped_key, fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
INSERT INTO fieldseal.search_tags (record_id, field, tag)
SELECT (@ids::uuid[])[i], t.field, t.tag
FROM generate_series(1, cardinality(@ids::uuid[])) AS i
JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = (@collections::text[])[i] AND c.searchable <> '{}'
JOIN k ON k.sk IS NOT NULL
CROSS JOIN LATERAL fieldseal.search_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, fieldseal.write_version(k.wrapped_key, c.collection)),
                                            c.subject, c.collection, c.searchable, fieldseal.jsonb_or_null((@secrets::text[])[i])) t
WHERE EXISTS (SELECT 1 FROM fieldseal.collections c WHERE c.subject = current_setting('fieldseal.subject', true) AND c.collection = ANY (@collections::text[]) AND c.searchable <> '{}');

-- name: DeleteRecordTags :exec
DELETE FROM fieldseal.search_tags WHERE subject = current_setting('fieldseal.subject', true) AND record_id = @id;

-- name: ReindexAllTags :exec
-- After a rotation that replaced the subject's keys: every tag again,
-- under the new data keys (DeleteAllTags first, and the subject's row
-- holding its new key). Only records of collections with searchable
-- fields are decrypted.
WITH k AS MATERIALIZED (
    SELECT s.wrapped_key, fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
INSERT INTO fieldseal.search_tags (record_id, field, tag)
SELECT r.id, t.field, t.tag
FROM fieldseal.records r
JOIN fieldseal.collections c ON c.subject = r.subject AND c.collection = r.collection AND c.searchable <> '{}'
JOIN k ON k.sk IS NOT NULL
CROSS JOIN LATERAL fieldseal.search_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, fieldseal.write_version(k.wrapped_key, c.collection)),
                                            c.subject, c.collection, c.searchable,
                                            fieldseal.jsonb_or_null(fieldseal.pgp_sym_decrypt(r.secret, fieldseal.record_key(k.sk, @key::text, r.collection, r.key_version)))) t
WHERE r.subject = current_setting('fieldseal.subject', true);

-- name: DeleteAllTags :exec
DELETE FROM fieldseal.search_tags WHERE subject = current_setting('fieldseal.subject', true);

-- name: SearchRecordsDecrypted :many
-- The records of one collection whose tags match every secret filter
-- (fields[i] = values[i]) and, if given, the public filter; a page of
-- them in id order, and only that page decrypted. Nothing unless key is
-- the subject's (as ListRecordsDecrypted). Its cost follows what it
-- touches whatever the statistics were when its plan was made: the
-- matching ids are found once, through the (subject, tag) index, and
-- kept (MATERIALIZED); each candidate, in id order, is one lookup of the
-- primary key (LATERAL) until the page is full. (A plan made on other
-- statistics once re-aggregated every tag of the subject for each
-- candidate: 3 s and timeouts after a bulk import.)
WITH k AS MATERIALIZED (
    SELECT s.wrapped_key, fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
), matched AS MATERIALIZED (
    -- The filters' tags, computed once (an InitPlan), each looked up on
    -- its own in the (subject, tag) index: with the subject alone, the
    -- primary key would read every tag of the subject. A tag is bound to
    -- its collection and field by its key, so a record matching every
    -- filter has one per field.
    SELECT t.record_id AS id
    FROM unnest(ARRAY(
              SELECT q.tag
              FROM fieldseal.collections c
              CROSS JOIN LATERAL unnest(@fields::text[]) WITH ORDINALITY AS f(field, i)
              CROSS JOIN k
              CROSS JOIN LATERAL fieldseal.search_query_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, fieldseal.write_version(k.wrapped_key, c.collection)),
                                                                c.subject, c.collection, c.searchable, f.field, (@values::text[])[f.i]) q
              WHERE c.subject = current_setting('fieldseal.subject', true) AND c.collection = @collection::text AND k.sk IS NOT NULL)) AS w(tag)
    CROSS JOIN LATERAL (
        SELECT t.record_id, t.field FROM fieldseal.search_tags t
        WHERE t.subject = current_setting('fieldseal.subject', true) AND t.tag = w.tag
        OFFSET 0) t -- a fence: planned alone, as a lookup of one tag (else a join over every tag of the subject)
    WHERE current_setting('fieldseal.key_use', true) = 'admitted'
      AND (SELECT sk FROM k) IS NOT NULL
    GROUP BY t.record_id
    HAVING count(DISTINCT t.field) = cardinality(@fields::text[])
), page AS MATERIALIZED (
    SELECT r.id, r.collection, r.public, r.secret, r.key_version, r.version, r.created_at, r.updated_at
    FROM (SELECT id FROM matched WHERE id > @after ORDER BY id) m
    CROSS JOIN LATERAL (
        SELECT r.id, r.collection, r.public, r.secret, r.key_version, r.version, r.created_at, r.updated_at
        FROM fieldseal.records r
        WHERE r.subject = current_setting('fieldseal.subject', true) AND r.id = m.id AND r.collection = @collection::text
          AND (sqlc.narg(public_filter)::jsonpath IS NULL OR r.public @@ sqlc.narg(public_filter)::jsonpath)
        OFFSET 0 -- a fence: one lookup by id per candidate (else a scan of the collection per candidate)
    ) r
    ORDER BY m.id
    LIMIT @max_rows
), keys AS MATERIALIZED ( -- each data key the page needs, derived once (as ListRecordsDecrypted)
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

-- name: ListRecordsFiltered :many
-- A page of the records whose public fields match the filter (a
-- jsonpath predicate); no key. The subject's records are tested in id
-- order until the page is full: every plan seen, made on any statistics,
-- takes that walk (records_public spans every subject, and a (subject,
-- public) GIN index measured was not chosen by a generic plan either), so
-- a value few records hold costs a walk of the subject.
SELECT id, collection, public, version, created_at, updated_at
FROM fieldseal.records
WHERE subject = current_setting('fieldseal.subject', true) AND id > @after AND (@collection::text = '' OR collection = @collection::text)
  AND public @@ @public_filter::jsonpath
ORDER BY id
LIMIT @max_rows;

-- name: ListRecordsFilteredDecrypted :many
-- ListRecordsFiltered with the key: the page is found with its rows
-- whole (a subquery with its own LIMIT, so planned apart) and only it is
-- decrypted. No second lookup of the page's ids: as a join, a plan made
-- on never-analysed small subjects read the subject's records from its
-- first for each row of the page (ids compared as a join filter), and as
-- a fenced LATERAL lookup one chose the (subject, collection, id) index
-- with the id as a non-leading key, reading every index entry of the
-- subject per row (make bench's skewed page: 17 and 358 ms, against 3).
WITH k AS MATERIALIZED (
    SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
), page AS MATERIALIZED (
    SELECT m.id, m.collection, m.public, m.secret, m.key_version, m.version, m.created_at, m.updated_at
    FROM fieldseal.records m
    WHERE m.subject = current_setting('fieldseal.subject', true) AND m.id > @after AND (@collection::text = '' OR m.collection = @collection::text)
      AND m.public @@ @public_filter::jsonpath
      AND current_setting('fieldseal.key_use', true) = 'admitted'
      AND (SELECT sk FROM k) IS NOT NULL
    ORDER BY m.id
    LIMIT @max_rows
), keys AS MATERIALIZED ( -- each data key the page needs, derived once (as ListRecordsDecrypted)
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

-- name: CreateRecords :many
-- A batch: every record in one statement, in the order given, each under
-- its collection's data key; nothing when the key opens nothing. (On
-- Citus: EncryptSecrets and InsertRecords, db/dialect.go.)
INSERT INTO fieldseal.records (id, collection, public, secret, key_version)
SELECT (@ids::uuid[])[i], (@collections::text[])[i], (@publics::jsonb[])[i],
       fieldseal.pgp_sym_encrypt((@secrets::text[])[i], fieldseal.record_key(k.sk, @key::text, (@collections::text[])[i], v.v), 'cipher-algo=aes256, s2k-mode=1'),
       v.v
FROM fieldseal.subjects s
CROSS JOIN LATERAL (SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk) k
CROSS JOIN generate_series(1, cardinality(@ids::uuid[])) AS i
CROSS JOIN LATERAL (SELECT fieldseal.write_version(s.wrapped_key, (@collections::text[])[i]) AS v) v
WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND k.sk IS NOT NULL
ORDER BY i
RETURNING id, collection, public, version, created_at, updated_at;

-- Import (db/import.go), a page of lines at a time, in the same three
-- statements on one PostgreSQL and on Citus. ImportLines opens the lines
-- and computes their tags in a SELECT (on Citus key and ciphertexts stay
-- parameters on the worker); fieldseal checks each plaintext as a
-- create checks a secret; then InsertImported writes the records
-- (ciphertexts, which a Citus worker's log may hold, as its table does)
-- and InsertTags their tags.

-- name: ImportLines :many
-- A row per line (n, 1-based): its plaintext, NULL if it does not open
-- under the key of its key version (0: the client key; v: its
-- collection's data key v of the subject key on the line) or is not in
-- the form fieldseal writes
-- (literal_message, migration 00021: a compressed message is never
-- opened); the same plaintext encrypted under the key the subject writes
-- its collection with now (an export of the old form comes back in the
-- new one), that key version, and its tags in a collection with
-- searchable fields.
SELECT m.n::bigint AS n, (d.plain IS NOT NULL)::boolean AS opened, coalesce(d.plain, '')::text AS plain,
       CASE WHEN d.plain IS NOT NULL
            THEN fieldseal.pgp_sym_encrypt(d.plain, fieldseal.record_key(k.sk, @key::text, (@collections::text[])[m.n], w.v), 'cipher-algo=aes256, s2k-mode=1')
            ELSE ''::bytea END::bytea AS secret,
       w.v::integer AS key_version,
       coalesce(t.fields, '{}')::text[] AS fields, coalesce(t.tags, '{}')::bytea[] AS tags
FROM fieldseal.subjects s
CROSS JOIN LATERAL (SELECT fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk) k
CROSS JOIN unnest(@secrets::bytea[]) WITH ORDINALITY AS m(message, n)
-- The key the line was written under: for key version 0 the client key;
-- else its collection's data key under the subject key the line carries
-- (the export's, which a restore into another database needs), opened
-- only if it is a message in the form fieldseal writes.
CROSS JOIN LATERAL (SELECT CASE WHEN (@key_versions::integer[])[m.n] = 0 THEN ''::bytea
                                WHEN fieldseal.literal_message((@subject_keys::bytea[])[m.n], @key::text)
                                THEN fieldseal.open_subject((@subject_keys::bytea[])[m.n], NULL, @key::text) END AS sk) e
CROSS JOIN LATERAL (SELECT fieldseal.record_key(e.sk, @key::text, (@collections::text[])[m.n], (@key_versions::integer[])[m.n]) AS key) l
CROSS JOIN LATERAL (SELECT CASE WHEN fieldseal.literal_message(m.message, l.key)
                                THEN fieldseal.decrypt_or_null(m.message, l.key) END AS plain) d
CROSS JOIN LATERAL (SELECT fieldseal.write_version(s.wrapped_key, (@collections::text[])[m.n]) AS v) w
LEFT JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true)
                                 AND c.collection = (@collections::text[])[m.n] AND c.searchable <> '{}'
CROSS JOIN LATERAL (SELECT array_agg(x.field) AS fields, array_agg(x.tag) AS tags
                    FROM fieldseal.search_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, w.v),
                                                  c.subject, c.collection, c.searchable, fieldseal.jsonb_or_null(d.plain)) x) t
WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
  AND k.sk IS NOT NULL
ORDER BY m.n;

-- name: InsertImported :many
-- Lines ImportLines opened, inserted as exported (their secrets as
-- ImportLines encrypted them again) unless the subject has the id
-- already; the ids inserted. The subject's row is there so that Citus
-- sends the statement whole to the subject's shard.
INSERT INTO fieldseal.records (subject, id, collection, public, secret, key_version, version, created_at, updated_at)
SELECT s.subject, (@ids::uuid[])[i], (@collections::text[])[i], (@publics::jsonb[])[i], (@secrets::bytea[])[i],
       (@key_versions::integer[])[i], (@versions::bigint[])[i], (@created::timestamptz[])[i], (@updated::timestamptz[])[i]
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
WITH k AS MATERIALIZED (
    SELECT s.wrapped_key, fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
SELECT (@ids::uuid[])[i]::uuid AS record_id, t.field::text AS field, t.tag::bytea AS tag
FROM generate_series(1, cardinality(@ids::uuid[])) AS i
JOIN fieldseal.collections c ON c.subject = current_setting('fieldseal.subject', true) AND c.collection = (@collections::text[])[i] AND c.searchable <> '{}'
JOIN k ON k.sk IS NOT NULL
CROSS JOIN LATERAL fieldseal.search_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, fieldseal.write_version(k.wrapped_key, c.collection)),
                                            c.subject, c.collection, c.searchable, fieldseal.jsonb_or_null((@secrets::text[])[i])) t;

-- name: AllTags :many
-- ReindexAllTags' tags, returned instead of inserted.
WITH k AS MATERIALIZED (
    SELECT s.wrapped_key, fieldseal.open_subject(s.wrapped_key, s.key_verifier, @key::text) AS sk FROM fieldseal.subjects s
    WHERE s.subject = current_setting('fieldseal.subject', true) AND current_setting('fieldseal.key_use', true) = 'admitted'
)
SELECT r.id AS record_id, t.field::text AS field, t.tag::bytea AS tag
FROM fieldseal.records r
JOIN fieldseal.collections c ON c.subject = r.subject AND c.collection = r.collection AND c.searchable <> '{}'
JOIN k ON k.sk IS NOT NULL
CROSS JOIN LATERAL fieldseal.search_tags_in(fieldseal.record_key(k.sk, @key::text, c.collection, fieldseal.write_version(k.wrapped_key, c.collection)),
                                            c.subject, c.collection, c.searchable,
                                            fieldseal.jsonb_or_null(fieldseal.pgp_sym_decrypt(r.secret, fieldseal.record_key(k.sk, @key::text, r.collection, r.key_version)))) t
WHERE r.subject = current_setting('fieldseal.subject', true) AND c.subject = current_setting('fieldseal.subject', true);

-- name: InsertTags :exec
-- Tags computed by the statements above, replacing a record's tag of the
-- same field (a reindex's: the primary key finds it, whatever the plan).
-- The subject's row is there so that Citus sends the statement whole to
-- the subject's shard.
INSERT INTO fieldseal.search_tags AS t (subject, record_id, field, tag)
SELECT s.subject, (@record_ids::uuid[])[i], (@fields::text[])[i], (@tags::bytea[])[i]
FROM fieldseal.subjects s
CROSS JOIN generate_series(1, cardinality(@record_ids::uuid[])) AS i
WHERE s.subject = current_setting('fieldseal.subject', true)
ON CONFLICT (subject, record_id, field) DO UPDATE SET tag = EXCLUDED.tag;
