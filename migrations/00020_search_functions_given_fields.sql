-- Tag functions that are given the collection's searchable fields rather
-- than read them: on Citus a SQL function that reads a distributed table
-- cannot be planned inside a statement sent to a worker ("parameters in
-- SQL functions"), so the statements that call these read the collection
-- themselves, with the subject in their text (queries/search.sql). Same
-- tags, same bytes as search_tags_of and search_query_tags, which they
-- replace.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.search_tags_in(key text, subject text, collection text, searchable jsonb, secret jsonb)
    RETURNS TABLE (field text, tag bytea)
    LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
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
    LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
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
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
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
