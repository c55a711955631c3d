-- Statements that name their subject, so that Citus runs each request on
-- one shard (docs/scale.md). On a single PostgreSQL nothing changes but
-- where the work is written.
--
-- Citus routes a statement to one shard only when the subject is a
-- constant in its text (row-level security's current_setting() is not),
-- and it cannot plan a SQL function that reads a distributed table
-- inside a statement it sends to a worker. So:
--
--   * search_tags_of and search_query_tags read the collection's
--     searchable fields themselves; search_tags_in and
--     search_query_tags_in are given them, by a statement that reads the
--     collection with the subject in its text (queries/search.sql). Same
--     tags, same bytes. They are IMMUTABLE, as they are (an HMAC of their
--     arguments): Citus runs an INSERT ... SELECT that calls a volatile
--     function through the coordinator, whose COPY to the shard
--     row-level security refuses.
--   * replace_key_verifier's UPDATE names the transaction's subject as a
--     literal (EXECUTE ... format(%L)), the keys staying parameters: a
--     statement whose subject is a parameter has every parameter written
--     into its text on the worker, where log_statement would log the key.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.search_tags_in(key text, subject text, collection text, searchable jsonb, secret jsonb)
    RETURNS TABLE (field text, tag bytea)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT f.key, fieldseal.search_tag(search_tags_in.key, search_tags_in.subject, search_tags_in.collection, f.key, v.canonical)
          FROM jsonb_each(search_tags_in.searchable) f
         CROSS JOIN LATERAL (SELECT fieldseal.search_canonical(search_tags_in.secret -> f.key,
                                        coalesce((f.value ->> 'case_insensitive')::boolean, false)) AS canonical) v
         WHERE v.canonical IS NOT NULL;
    END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION fieldseal.search_query_tags_in(key text, subject text, collection text, searchable jsonb, field text, value text)
    RETURNS TABLE (tag bytea)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT fieldseal.search_tag(search_query_tags_in.key, search_query_tags_in.subject, search_query_tags_in.collection,
                                    search_query_tags_in.field, f.canonical)
          FROM unnest(fieldseal.search_query_canonical(search_query_tags_in.value,
                        coalesce((search_query_tags_in.searchable -> search_query_tags_in.field ->> 'case_insensitive')::boolean, false))) f(canonical)
         WHERE search_query_tags_in.searchable ? search_query_tags_in.field;
    END;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION fieldseal.search_tags_in(text, text, text, jsonb, jsonb),
    fieldseal.search_query_tags_in(text, text, text, jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.search_tags_in(text, text, text, jsonb, jsonb),
    fieldseal.search_query_tags_in(text, text, text, jsonb, text, text) TO fieldseal_app;
DROP FUNCTION fieldseal.search_query_tags(text, text, text, text);
DROP FUNCTION fieldseal.search_tags_of(text, text, jsonb);
DELETE FROM fieldseal.grants_policy WHERE object_name IN (
    'fieldseal.search_tags_of(key text, collection text, secret jsonb)',
    'fieldseal.search_query_tags(key text, collection text, field text, value text)');
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.search_tags_in(key text, subject text, collection text, searchable jsonb, secret jsonb)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_query_tags_in(key text, subject text, collection text, searchable jsonb, field text, value text)', '', 'EXECUTE');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.replace_key_verifier(old_key text, new_key text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    replaced int;
BEGIN
    -- Row-level security (forced, so it holds for the owner this runs as)
    -- limits this to the transaction's subject; the subject is named too,
    -- as a constant, for Citus (see the top of this migration).
    -- The key is checked in a subquery's output (OFFSET 0 keeps it
    -- there): Citus refuses a volatile function in an UPDATE's WHERE.
    EXECUTE format('UPDATE fieldseal.subjects s SET key_verifier = $2, updated_at = now()'
                   ' FROM (SELECT subject, fieldseal.key_matches(key_verifier, $1) AS matches'
                   '       FROM fieldseal.subjects WHERE subject = %1$L OFFSET 0) m'
                   ' WHERE s.subject = %1$L AND s.subject = m.subject AND m.matches',
                   current_setting('fieldseal.subject', true))
        USING old_key, fieldseal.new_key_verifier(new_key);
    GET DIAGNOSTICS replaced = ROW_COUNT;
    RETURN replaced > 0;
END
$$;
-- +goose StatementEnd
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.replace_key_verifier(old_key text, new_key text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- Row-level security (forced, so it holds for the owner this runs as)
    -- limits this to the transaction's subject.
    UPDATE fieldseal.subjects s
       SET key_verifier = fieldseal.new_key_verifier(new_key), updated_at = now()
     WHERE fieldseal.key_matches(s.key_verifier, old_key);
    RETURN FOUND;
END
$$;
-- +goose StatementEnd

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

REVOKE ALL ON FUNCTION fieldseal.search_tags_of(text, text, jsonb), fieldseal.search_query_tags(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.search_tags_of(text, text, jsonb), fieldseal.search_query_tags(text, text, text, text) TO fieldseal_app;
DROP FUNCTION fieldseal.search_query_tags_in(text, text, text, jsonb, text, text);
DROP FUNCTION fieldseal.search_tags_in(text, text, text, jsonb, jsonb);
DELETE FROM fieldseal.grants_policy WHERE object_name IN (
    'fieldseal.search_tags_in(key text, subject text, collection text, searchable jsonb, secret jsonb)',
    'fieldseal.search_query_tags_in(key text, subject text, collection text, searchable jsonb, field text, value text)');
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.search_tags_of(key text, collection text, secret jsonb)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.search_query_tags(key text, collection text, field text, value text)', '', 'EXECUTE');
RESET ROLE;
