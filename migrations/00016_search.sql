-- Search by equality without decrypting everything: blind indexes keyed by
-- the client's own key.
--
-- A subject chooses, per collection, which top-level fields of `secret` are
-- searchable (fieldseal.collections). For each record of such a collection
-- and each searchable field it holds as a string, number or boolean,
-- fieldseal.search_tags keeps one tag:
--
--   field key = HMAC-SHA-256(client key, "fieldseal search v1" | subject | collection | field)
--   tag       = HMAC-SHA-256(field key, canonical value)
--
-- computed here, in PostgreSQL, from the key the request carries: neither
-- key is stored. Whoever holds the database sees which records of one
-- subject's field share a value, and nothing more: without the client's key
-- no guess can be tested. Two subjects' tags never match (the subject is in
-- the derivation), nor two fields' or collections'.
--
-- The canonical value: "s:" and the string in Unicode NFC (lower-cased
-- first when the field is case-insensitive), "n:" and the number with no
-- trailing zeros after its point (1.50 and 1.5 are equal), "b:true" or
-- "b:false". null, arrays and objects are not indexed.
--
-- Records keep their tags current: a create, replace, batch or import
-- writes them in its transaction, a delete removes them (ON DELETE
-- CASCADE), a key rotation recomputes them all, and setting a collection's
-- fields reindexes its records. Each of these holds the subject's key
-- verifier (FOR SHARE, or FOR UPDATE for rotation and reindexing), so a
-- write never slips between a reindex and its commit untagged.
--
-- public filters need no key: a GIN index (jsonb_path_ops) serves
-- `public @@ jsonpath` equality.

-- +goose Up
-- pgcrypto's hmac, granted by its owner (the role that created the
-- extension in 00002).
GRANT EXECUTE ON FUNCTION fieldseal.hmac(bytea, bytea, text) TO fieldseal_app;
SET LOCAL ROLE fieldseal_owner;

CREATE TABLE fieldseal.collections (
    subject    text        NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                           CHECK (subject <> ''),
    collection text        NOT NULL CHECK (length(collection) BETWEEN 1 AND 128),
    searchable jsonb       NOT NULL CHECK (jsonb_typeof(searchable) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, collection)
);
ALTER TABLE fieldseal.collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.collections FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_isolation ON fieldseal.collections
    USING (subject = current_setting('fieldseal.subject', true))
    WITH CHECK (subject = current_setting('fieldseal.subject', true));

CREATE TABLE fieldseal.search_tags (
    subject   text  NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                    CHECK (subject <> ''),
    record_id uuid  NOT NULL,
    field     text  NOT NULL,
    tag       bytea NOT NULL CHECK (length(tag) = 32),
    PRIMARY KEY (subject, record_id, field),
    FOREIGN KEY (subject, record_id) REFERENCES fieldseal.records (subject, id) ON DELETE CASCADE
);
CREATE INDEX search_tags_tag ON fieldseal.search_tags (subject, tag) INCLUDE (record_id, field);
ALTER TABLE fieldseal.search_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.search_tags FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_isolation ON fieldseal.search_tags
    USING (subject = current_setting('fieldseal.subject', true))
    WITH CHECK (subject = current_setting('fieldseal.subject', true));

CREATE INDEX records_public ON fieldseal.records USING gin (public jsonb_path_ops);

-- search_text is a string's canonical form. Lower-casing uses ICU's root
-- locale when the server has it (Debian's PostgreSQL does), so that it
-- folds every script's letters, not only ASCII, whatever the database's
-- own collation.
-- +goose StatementBegin
DO $$
DECLARE
    folding text := CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_collation WHERE collname = 'und-x-icu')
                         THEN 'pg_catalog."und-x-icu"' ELSE 'pg_catalog."default"' END;
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION fieldseal.search_text(value text, case_insensitive boolean) RETURNS text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            SET search_path = pg_catalog, pg_temp
            RETURN CASE WHEN case_insensitive
                        THEN normalize(lower(normalize(value, NFC) COLLATE %s), NFC)
                        ELSE normalize(value, NFC) END
    $f$, folding);
END
$$;
-- +goose StatementEnd

-- search_canonical is a stored value's canonical form; NULL for what is
-- not indexed.
CREATE FUNCTION fieldseal.search_canonical(value jsonb, case_insensitive boolean) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE jsonb_typeof(value)
        WHEN 'string' THEN 's:' || fieldseal.search_text(value #>> '{}', case_insensitive)
        WHEN 'number' THEN 'n:' || trim_scale((value #>> '{}')::numeric)::text
        WHEN 'boolean' THEN 'b:' || (value #>> '{}')
    END;

-- search_query_canonical is what a query value, always text in a URL,
-- may equal: the string, and the number or boolean it spells if it does.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.search_query_canonical(value text, case_insensitive boolean) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    forms text[] := ARRAY['s:' || fieldseal.search_text(value, case_insensitive)];
BEGIN
    IF value IN ('true', 'false') THEN
        forms := forms || ('b:' || value);
    ELSIF value ~ '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$' AND length(value) <= 1000 THEN
        BEGIN
            forms := forms || ('n:' || trim_scale(value::numeric)::text);
        EXCEPTION WHEN numeric_value_out_of_range THEN
            NULL; -- beyond numeric's range: no stored number equals it
        END;
    END IF;
    RETURN forms;
END
$$;
-- +goose StatementEnd

-- search_tag is one tag (see the top of this file). The key is a
-- parameter, never a constant a plan could show.
CREATE FUNCTION fieldseal.search_tag(key text, subject text, collection text, field text, canonical text) RETURNS bytea
    LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN fieldseal.hmac(
        convert_to(canonical, 'UTF8'),
        fieldseal.hmac(
            convert_to(format('fieldseal search v1|%s|%s|%s|%s|%s|%s',
                              length(subject), subject, length(collection), collection, length(field), field), 'UTF8'),
            convert_to(key, 'UTF8'), 'sha256'),
        'sha256');

-- jsonb_or_null reads a decrypted secret as jsonb; NULL if jsonb refuses
-- it (\u0000, a lone surrogate escape, a number beyond numeric: only
-- records written before fieldseal checked secrets hold one). The error
-- is caught here because PostgreSQL would log it with the JSON text
-- around the fault: plaintext in the server log. It costs a
-- subtransaction per call, as decrypt_or_null does.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.jsonb_or_null(secret text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN secret::jsonb;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- search_tags_of is the tags of one record of the transaction's subject:
-- (field, tag) for each searchable field of the collection that the
-- secret (read by jsonb_or_null) holds as a string, number or boolean.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.search_tags_of(key text, collection text, secret jsonb)
    RETURNS TABLE (field text, tag bytea)
    LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT f.key, fieldseal.search_tag(search_tags_of.key, c.subject, c.collection, f.key, v.canonical)
          FROM fieldseal.collections c
         CROSS JOIN LATERAL jsonb_each(c.searchable) f
         CROSS JOIN LATERAL (SELECT fieldseal.search_canonical(search_tags_of.secret -> f.key,
                                        coalesce((f.value ->> 'case_insensitive')::boolean, false)) AS canonical) v
         WHERE c.collection = search_tags_of.collection AND v.canonical IS NOT NULL;
    END;
-- +goose StatementEnd

-- search_query_tags is the tags a filter secret.<field>=<value> looks
-- for: one per form of the value (see search_query_canonical). Nothing
-- for a field that is not searchable.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.search_query_tags(key text, collection text, field text, value text)
    RETURNS TABLE (tag bytea)
    LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT fieldseal.search_tag(search_query_tags.key, c.subject, c.collection, search_query_tags.field, f.canonical)
          FROM fieldseal.collections c
         CROSS JOIN LATERAL unnest(fieldseal.search_query_canonical(search_query_tags.value,
                                coalesce((c.searchable -> search_query_tags.field ->> 'case_insensitive')::boolean, false))) f(canonical)
         WHERE c.collection = search_query_tags.collection AND c.searchable ? search_query_tags.field;
    END;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION fieldseal.jsonb_or_null(text), fieldseal.search_text(text, boolean), fieldseal.search_canonical(jsonb, boolean),
    fieldseal.search_query_canonical(text, boolean), fieldseal.search_tag(text, text, text, text, text),
    fieldseal.search_tags_of(text, text, jsonb), fieldseal.search_query_tags(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.jsonb_or_null(text), fieldseal.search_text(text, boolean), fieldseal.search_canonical(jsonb, boolean),
    fieldseal.search_query_canonical(text, boolean), fieldseal.search_tag(text, text, text, text, text),
    fieldseal.search_tags_of(text, text, jsonb), fieldseal.search_query_tags(text, text, text, text) TO fieldseal_app;

GRANT SELECT, INSERT ON fieldseal.collections TO fieldseal_app;
GRANT UPDATE (searchable, updated_at) ON fieldseal.collections TO fieldseal_app;
GRANT SELECT, INSERT, DELETE ON fieldseal.search_tags TO fieldseal_app;
-- The auditor reads which fields are searchable (no values live there).
GRANT SELECT ON fieldseal.collections TO fieldseal_auditor;

INSERT INTO fieldseal.rls_policy VALUES ('fieldseal.collections', true), ('fieldseal.search_tags', true);
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'table', 'fieldseal.collections', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.collections', '', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'searchable', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.collections', 'updated_at', 'UPDATE'),
    ('fieldseal_auditor', 'table', 'fieldseal.collections', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.search_tags', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.search_tags', '', 'INSERT'),
    ('fieldseal_app', 'table', 'fieldseal.search_tags', '', 'DELETE'),
    ('fieldseal_app', 'function', 'fieldseal.jsonb_or_null(secret text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_text(value text, case_insensitive boolean)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_canonical(value jsonb, case_insensitive boolean)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_query_canonical(value text, case_insensitive boolean)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_tag(key text, subject text, collection text, field text, canonical text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_tags_of(key text, collection text, secret jsonb)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_query_tags(key text, collection text, field text, value text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.hmac(bytea, bytea, text)', '', 'EXECUTE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy
 WHERE object_name IN ('fieldseal.collections', 'fieldseal.search_tags')
    OR object_name LIKE 'fieldseal.search\_%(%' OR object_name = 'fieldseal.jsonb_or_null(secret text)';
DELETE FROM fieldseal.rls_policy WHERE table_name IN ('fieldseal.collections', 'fieldseal.search_tags');
DROP FUNCTION fieldseal.search_query_tags(text, text, text, text);
DROP FUNCTION fieldseal.search_tags_of(text, text, jsonb);
DROP FUNCTION fieldseal.search_tag(text, text, text, text, text);
DROP FUNCTION fieldseal.search_query_canonical(text, boolean);
DROP FUNCTION fieldseal.search_canonical(jsonb, boolean);
DROP FUNCTION fieldseal.search_text(text, boolean);
DROP FUNCTION fieldseal.jsonb_or_null(text);
DROP INDEX fieldseal.records_public;
DROP TABLE fieldseal.search_tags;
DROP TABLE fieldseal.collections;
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.hmac(bytea, bytea, text)';
RESET ROLE;
REVOKE EXECUTE ON FUNCTION fieldseal.hmac(bytea, bytea, text) FROM fieldseal_app;
