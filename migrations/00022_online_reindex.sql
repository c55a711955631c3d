-- Making a collection searchable without stopping its subject (issue
-- "What comes back in", item 5). A PUT of new settings used to tag every
-- record of the collection in one transaction holding the subject's key
-- verifier FOR UPDATE: 20,000 records took 20-26 s, and the subject's
-- creates, lists and searches waited 5 s and answered 503 meanwhile.
--
-- Now, as CREATE INDEX CONCURRENTLY does, the settings change in a short
-- transaction of their own (still FOR UPDATE of the verifier, so that
-- writes in flight finish first and every later write tags its record
-- under the new settings), and a pass then tags the records that were
-- there, a batch at a time, each batch a transaction of its own that
-- holds its records FOR SHARE (a replace of one of them waits for the
-- batch, then tags it again itself). What the pass has reached is kept
-- here, so that a pass stopped by a hang-up, a crash or a restart is
-- resumed by the next PUT of the same settings; until it ends, a search
-- on a field it is indexing answers 409 still_indexing.
--
--   indexing        the searchable fields whose tags are not complete
--                   (new fields, or fields whose case_insensitive changed)
--   dropping        fields no longer searchable whose tags the pass drops
--   reindexing      a pass over the collection's records is owed
--   index_run       which pass: a PUT of other settings starts a new one,
--                   and a key rotation (which tags everything again)
--                   ends it
--   indexed_through the pass has tagged every record up to this id
--   index_done      records the pass has tagged
--   index_total     records in the collection when the pass started
--   indexed_at      when the pass last wrote a batch

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
ALTER TABLE fieldseal.collections
    ADD COLUMN indexing        text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN dropping        text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN reindexing      boolean     NOT NULL DEFAULT false,
    ADD COLUMN index_run       bigint      NOT NULL DEFAULT 0,
    ADD COLUMN indexed_through uuid,
    ADD COLUMN index_done      bigint      NOT NULL DEFAULT 0,
    ADD COLUMN index_total     bigint      NOT NULL DEFAULT 0,
    ADD COLUMN indexed_at      timestamptz;
-- On its own: Citus refuses ADD CONSTRAINT beside other subcommands.
ALTER TABLE fieldseal.collections
    ADD CONSTRAINT collections_indexing_owes_a_pass CHECK (reindexing OR (indexing = '{}' AND dropping = '{}'));
GRANT UPDATE (indexing, dropping, reindexing, index_run, indexed_through, index_done, index_total, indexed_at)
    ON fieldseal.collections TO fieldseal_app;
-- A batch replaces a record's tag of a field in place (InsertTags' ON
-- CONFLICT): no more than the DELETE and INSERT the app may already do.
GRANT UPDATE (tag) ON fieldseal.search_tags TO fieldseal_app;
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'column', 'fieldseal.collections', 'indexing', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'dropping', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'reindexing', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'index_run', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'indexed_through', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'index_done', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'index_total', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'indexed_at', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.search_tags', 'tag', 'UPDATE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy
 WHERE object_name = 'fieldseal.search_tags' AND object_type = 'column' AND column_name = 'tag';
REVOKE UPDATE (tag) ON fieldseal.search_tags FROM fieldseal_app;
DELETE FROM fieldseal.grants_policy
 WHERE object_name = 'fieldseal.collections' AND object_type = 'column'
   AND column_name IN ('indexing', 'dropping', 'reindexing', 'index_run', 'indexed_through', 'index_done', 'index_total', 'indexed_at');
ALTER TABLE fieldseal.collections DROP CONSTRAINT collections_indexing_owes_a_pass;
ALTER TABLE fieldseal.collections
    DROP COLUMN indexing, DROP COLUMN dropping, DROP COLUMN reindexing, DROP COLUMN index_run, DROP COLUMN indexed_through,
    DROP COLUMN index_done, DROP COLUMN index_total, DROP COLUMN indexed_at;
RESET ROLE;
