-- Keys in layers (issue "Keys in layers"; DESIGN.md, "Keys in layers and
-- sharing"). The client's key wraps a subject key made inside PostgreSQL
-- (32 random octets, gen_random_bytes), kept only as
-- pgp_sym_encrypt_bytea(subject_key, client_key): subjects.wrapped_key.
-- Records are encrypted under data keys that follow from the subject key,
-- one per collection and key version:
--
--   data key = base64(HMAC-SHA-256(subject_key,
--                     'fieldseal data key v1' || LF || collection || LF || key_version))
--
-- used as the passphrase of the record's OpenPGP message (AES-256,
-- s2k-mode=1, as before), and as the key of its search tags. No subject
-- key or data key leaves PostgreSQL: each statement that needs one
-- unwraps the subject key from its row with the client key (a bind
-- parameter) and derives what it needs, and returns only plaintexts the
-- caller may read, ciphertexts and tags. Unwrapping is the key check: a
-- wrong key does not open wrapped_key.
--
-- Rotating the client key rewraps the subject key: one row, whatever the
-- subject holds. Records and tags keep their keys.
--
-- Subjects written before this migration keep their form: key_verifier
-- (an encrypted constant), records under the client key itself
-- (records.key_version 0), until their next rotation moves them to the
-- new form (db/keys.go). Exactly one of key_verifier and wrapped_key is
-- set. A record's key_version says which key opens it: 0 the client key
-- (the old form), v >= 1 its collection's data key of version v.

-- +goose Up
-- pgcrypto's functions the new ones call, granted by their owner (the
-- role that created the extension in 00002), as 00016 and 00021 did.
GRANT EXECUTE ON FUNCTION fieldseal.gen_random_bytes(integer), fieldseal.pgp_sym_encrypt_bytea(bytea, text, text),
    fieldseal.pgp_sym_decrypt_bytea(bytea, text) TO fieldseal_app;
SET LOCAL ROLE fieldseal_owner;
ALTER TABLE fieldseal.subjects ADD COLUMN wrapped_key bytea;
ALTER TABLE fieldseal.subjects ALTER COLUMN key_verifier DROP NOT NULL;
ALTER TABLE fieldseal.subjects ADD CONSTRAINT subjects_one_key_form CHECK ((wrapped_key IS NULL) <> (key_verifier IS NULL));
ALTER TABLE fieldseal.records ADD COLUMN key_version integer NOT NULL DEFAULT 0;

-- open_subject is what key opens in a subject's row: its subject key;
-- an empty bytea for a subject of the old form whose verifier key opens;
-- NULL when key is not the subject's. It never raises: a wrong key is an
-- expected answer (403 wrong_key), not an error in the server log.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.open_subject(wrapped bytea, verifier bytea, key text) RETURNS bytea
    LANGUAGE plpgsql VOLATILE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k bytea;
BEGIN
    IF key IS NULL THEN
        RETURN NULL;
    ELSIF wrapped IS NOT NULL THEN
        k := fieldseal.pgp_sym_decrypt_bytea(wrapped, key);
        IF octet_length(k) = 32 THEN
            RETURN k;
        END IF;
        RETURN NULL;
    ELSIF fieldseal.key_matches(verifier, key) THEN
        RETURN ''::bytea;
    END IF;
    RETURN NULL;
EXCEPTION WHEN external_routine_invocation_exception THEN
    RETURN NULL; -- pgcrypto: "Wrong key or corrupt data"
END
$$;
-- +goose StatementEnd

-- record_key is the passphrase of a record of collection under key
-- version v: the client key itself for v = 0 (the old form), else the
-- collection's data key of version v, derived from subject_key (what
-- open_subject returned). NULL when subject_key is NULL. write_version is
-- the key version a record of collection is written under: 0 for a
-- subject of the old form, else the collection's current data key version
-- (1 until collections can be re-keyed).
--
-- Both are inlined into the statements that call them (no SET clause, one
-- expression, every name and operator qualified; STABLE, as convert_to
-- is): called as functions,
-- their bodies were planned again in every execution, 29 us a read
-- against 1 for the HMAC itself.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.record_key(subject_key bytea, key text, collection text, v integer) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN subject_key IS NULL THEN NULL
                WHEN v OPERATOR(pg_catalog.=) 0 THEN key
                ELSE pg_catalog.encode(
                         fieldseal.hmac(pg_catalog.convert_to('fieldseal data key v1' OPERATOR(pg_catalog.||) pg_catalog.chr(10) OPERATOR(pg_catalog.||) collection
                                                              OPERATOR(pg_catalog.||) pg_catalog.chr(10) OPERATOR(pg_catalog.||) v::pg_catalog.text, 'UTF8'),
                                        subject_key, 'sha256'),
                         'base64') END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION fieldseal.write_version(wrapped bytea, collection text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN wrapped IS NULL THEN 0 ELSE 1 END;
-- +goose StatementEnd

-- new_subject_key is a new subject key, wrapped under key: inlined as
-- record_key is (a subject's first write calls it, and every create,
-- before its conflict is seen).
-- +goose StatementBegin
CREATE FUNCTION fieldseal.new_subject_key(key text) RETURNS bytea
    LANGUAGE sql VOLATILE PARALLEL SAFE
    RETURN fieldseal.pgp_sym_encrypt_bytea(fieldseal.gen_random_bytes(32), key, 'cipher-algo=aes256, s2k-mode=1');
-- +goose StatementEnd

REVOKE ALL ON FUNCTION fieldseal.open_subject(bytea, bytea, text), fieldseal.record_key(bytea, text, text, integer),
    fieldseal.write_version(bytea, text), fieldseal.new_subject_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.open_subject(bytea, bytea, text), fieldseal.record_key(bytea, text, text, integer),
    fieldseal.write_version(bytea, text), fieldseal.new_subject_key(text) TO fieldseal_app;

-- A subject's keys change only in a transaction that proves the key that
-- opens them (migration 00019's rule, now for wrapped_key too): whoever
-- holds the app role's password cannot swap a subject's keys.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.check_key_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.key_verifier IS DISTINCT FROM OLD.key_verifier OR NEW.wrapped_key IS DISTINCT FROM OLD.wrapped_key THEN
        IF fieldseal.open_subject(OLD.wrapped_key, OLD.key_verifier, current_setting('fieldseal.key_proof', true)) IS NULL THEN
            RAISE EXCEPTION 'a subject''s keys change only in a transaction that proves the key that opens them (fieldseal.key_proof)'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('fieldseal.key_proof', '', true);
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
DROP TRIGGER key_change_proven ON fieldseal.subjects;
CREATE TRIGGER key_change_proven BEFORE UPDATE OF key_verifier, wrapped_key ON fieldseal.subjects
    FOR EACH ROW EXECUTE FUNCTION fieldseal.check_key_change();
GRANT UPDATE (wrapped_key) ON fieldseal.subjects TO fieldseal_app;
GRANT UPDATE (key_version) ON fieldseal.records TO fieldseal_app;
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.gen_random_bytes(integer)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.pgp_sym_encrypt_bytea(bytea, text, text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.pgp_sym_decrypt_bytea(bytea, text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.open_subject(wrapped bytea, verifier bytea, key text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.record_key(subject_key bytea, key text, collection text, v integer)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.write_version(wrapped bytea, collection text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.new_subject_key(key text)', '', 'EXECUTE'),
    ('fieldseal_app', 'column', 'fieldseal.subjects', 'wrapped_key', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.records', 'key_version', 'UPDATE');
RESET ROLE;

-- +goose Down
-- As the migrating role throughout: its check must read past row-level
-- security, and Citus refuses a transaction in which two roles touch the
-- same shards.
REVOKE UPDATE (key_version) ON fieldseal.records FROM fieldseal_app;
REVOKE UPDATE (wrapped_key) ON fieldseal.subjects FROM fieldseal_app;
DROP TRIGGER key_change_proven ON fieldseal.subjects;
-- Only a database whose subjects are all of the old form goes back: a
-- subject key cannot be turned back into a verifier without its client
-- key. (After a DDL of the table: on Citus the check then reads each
-- shard over the connection that DDL used; read first, over several, the
-- DDL after it is refused.)
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM fieldseal.subjects WHERE wrapped_key IS NOT NULL) THEN
        RAISE EXCEPTION 'subjects hold keys in layers (wrapped_key): migration 00023 cannot be undone without their clients'' keys';
    END IF;
END
$$;
-- +goose StatementEnd
DELETE FROM fieldseal.grants_policy WHERE grantee = 'fieldseal_app' AND (object_name IN (
    'fieldseal.gen_random_bytes(integer)', 'fieldseal.pgp_sym_encrypt_bytea(bytea, text, text)', 'fieldseal.pgp_sym_decrypt_bytea(bytea, text)',
    'fieldseal.open_subject(wrapped bytea, verifier bytea, key text)', 'fieldseal.record_key(subject_key bytea, key text, collection text, v integer)',
    'fieldseal.write_version(wrapped bytea, collection text)', 'fieldseal.new_subject_key(key text)')
    OR (object_name = 'fieldseal.subjects' AND column_name = 'wrapped_key') OR (object_name = 'fieldseal.records' AND column_name = 'key_version'));
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.check_key_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.key_verifier IS DISTINCT FROM OLD.key_verifier THEN
        IF NOT coalesce(fieldseal.key_matches(OLD.key_verifier, current_setting('fieldseal.key_proof', true)), false) THEN
            RAISE EXCEPTION 'a key verifier changes only in a transaction that proves the key it verifies (fieldseal.key_proof)'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('fieldseal.key_proof', '', true);
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER key_change_proven BEFORE UPDATE OF key_verifier ON fieldseal.subjects
    FOR EACH ROW EXECUTE FUNCTION fieldseal.check_key_change();
DROP FUNCTION fieldseal.new_subject_key(text), fieldseal.write_version(bytea, text),
    fieldseal.record_key(bytea, text, text, integer), fieldseal.open_subject(bytea, bytea, text);
ALTER TABLE fieldseal.records DROP COLUMN key_version;
ALTER TABLE fieldseal.subjects DROP CONSTRAINT subjects_one_key_form;
ALTER TABLE fieldseal.subjects ALTER COLUMN key_verifier SET NOT NULL;
ALTER TABLE fieldseal.subjects DROP COLUMN wrapped_key;
REVOKE EXECUTE ON FUNCTION fieldseal.gen_random_bytes(integer), fieldseal.pgp_sym_encrypt_bytea(bytea, text, text),
    fieldseal.pgp_sym_decrypt_bytea(bytea, text) FROM fieldseal_app;
