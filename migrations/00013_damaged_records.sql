-- A damaged record is not a wrong key. pgcrypto says "Wrong key or
-- corrupt data" for both, and until now fieldseal took every such error
-- for a wrong key: one flipped byte in one record answered the right key
-- 403, counted toward the wrong-key throttle (a targeted lock-out, since
-- the app role can write any record) and refused rotation forever.
--
-- Now only the key verifier decides whether a key is wrong. Under a key
-- it has verified, fieldseal decrypts through decrypt_or_null, which
-- turns pgcrypto's error into NULL: a record that does not open under the
-- verified key is damaged, and said to be (500 corrupt_record, naming it).
-- The exception block costs a subtransaction per call.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.decrypt_or_null(message bytea, key text) RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN fieldseal.pgp_sym_decrypt(message, key);
EXCEPTION WHEN external_routine_invocation_exception THEN
    RETURN NULL; -- pgcrypto: "Wrong key or corrupt data"; the key was verified
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.decrypt_or_null(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.decrypt_or_null(bytea, text) TO fieldseal_app;
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.decrypt_or_null(message bytea, key text)', '', 'EXECUTE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.decrypt_or_null(message bytea, key text)';
DROP FUNCTION fieldseal.decrypt_or_null(bytea, text);
RESET ROLE;
