-- A verifier is no longer replaced through replace_key_verifier, a
-- SECURITY DEFINER function (migration 00014): on Citus its UPDATE would
-- run on the worker as fieldseal_owner, over a connection of its own,
-- which the owner (NOLOGIN) cannot open and which Citus refuses beside
-- the app's in one transaction anyway (docs/scale.md). The app may now
-- update key_verifier, and a trigger holds it to what the function did:
-- the verifier changes only in a transaction that proves the key the old
-- verifier opens with. The proof is fieldseal.key_proof, set from a
-- parameter by queries/keys.sql's ProveKey (never in a statement's text),
-- on the node that holds the subject's row, and cleared by the trigger
-- once read. session_replication_role, which would skip the trigger, is
-- a superuser's setting.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.check_key_change() RETURNS trigger
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
REVOKE ALL ON FUNCTION fieldseal.check_key_change() FROM PUBLIC;
CREATE TRIGGER key_change_proven BEFORE UPDATE OF key_verifier ON fieldseal.subjects
    FOR EACH ROW EXECUTE FUNCTION fieldseal.check_key_change();
GRANT UPDATE (key_verifier) ON fieldseal.subjects TO fieldseal_app;
DROP FUNCTION fieldseal.replace_key_verifier(text, text);
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.replace_key_verifier(old_key text, new_key text)'
    OR (grantee = 'fieldseal_owner' AND object_name IN ('fieldseal.pgp_sym_encrypt(text, text, text)', 'fieldseal.pgp_sym_decrypt(bytea, text)'));
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'column', 'fieldseal.subjects', 'key_verifier', 'UPDATE');
RESET ROLE;
-- The owner called these for replace_key_verifier only.
REVOKE EXECUTE ON FUNCTION fieldseal.pgp_sym_encrypt(text, text, text), fieldseal.pgp_sym_decrypt(bytea, text) FROM fieldseal_owner;

-- +goose Down
GRANT EXECUTE ON FUNCTION fieldseal.pgp_sym_encrypt(text, text, text), fieldseal.pgp_sym_decrypt(bytea, text) TO fieldseal_owner;
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.replace_key_verifier(old_key text, new_key text) RETURNS boolean
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
REVOKE ALL ON FUNCTION fieldseal.replace_key_verifier(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.replace_key_verifier(text, text) TO fieldseal_app;
REVOKE UPDATE (key_verifier) ON fieldseal.subjects FROM fieldseal_app;
DROP TRIGGER key_change_proven ON fieldseal.subjects;
DROP FUNCTION fieldseal.check_key_change();
DELETE FROM fieldseal.grants_policy
 WHERE grantee = 'fieldseal_app' AND object_name = 'fieldseal.subjects' AND column_name = 'key_verifier' AND privilege = 'UPDATE';
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.replace_key_verifier(old_key text, new_key text)', '', 'EXECUTE'),
    ('fieldseal_owner', 'function', 'fieldseal.pgp_sym_encrypt(text, text, text)', '', 'EXECUTE'),
    ('fieldseal_owner', 'function', 'fieldseal.pgp_sym_decrypt(bytea, text)', '', 'EXECUTE');
RESET ROLE;
