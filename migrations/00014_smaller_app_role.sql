-- A smaller app role. Logged in as the app role (with its password, in
-- psql), one could delete any unexpired revocation (un-revoking tokens)
-- and replace any subject's key verifier after setting fieldseal.subject
-- (locking that subject out). Now:
--   * revocations: the app reads them all and may delete only expired
--     ones (row-level security); only the owner adds them (`fieldseal
--     token revoke` runs as an admin: a superuser or an owner member);
--   * a verifier is replaced only by fieldseal.replace_key_verifier, a
--     SECURITY DEFINER function that proves the old key inside PostgreSQL
--     first (a rotation does); the app keeps UPDATE on updated_at only,
--     which SELECT ... FOR SHARE/UPDATE needs.

-- +goose Up
-- The function below runs as fieldseal_owner, which needs the two pgcrypto
-- functions the verifier uses (granted by their owner, the role that
-- created the extension in 00002).
GRANT EXECUTE ON FUNCTION fieldseal.pgp_sym_encrypt(text, text, text), fieldseal.pgp_sym_decrypt(bytea, text) TO fieldseal_owner;
SET LOCAL ROLE fieldseal_owner;
ALTER TABLE fieldseal.revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.revocations FORCE ROW LEVEL SECURITY;
CREATE POLICY everyone_reads ON fieldseal.revocations FOR SELECT USING (true);
CREATE POLICY prune_expired ON fieldseal.revocations FOR DELETE USING (expires_at <= now());
CREATE POLICY owner_revokes ON fieldseal.revocations FOR INSERT TO fieldseal_owner WITH CHECK (true);
UPDATE fieldseal.rls_policy SET rls = true WHERE table_name = 'fieldseal.revocations';

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
DELETE FROM fieldseal.grants_policy
 WHERE grantee = 'fieldseal_app' AND object_name = 'fieldseal.subjects' AND column_name = 'key_verifier' AND privilege = 'UPDATE';
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.replace_key_verifier(old_key text, new_key text)', '', 'EXECUTE'),
    ('fieldseal_owner', 'function', 'fieldseal.pgp_sym_encrypt(text, text, text)', '', 'EXECUTE'),
    ('fieldseal_owner', 'function', 'fieldseal.pgp_sym_decrypt(bytea, text)', '', 'EXECUTE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.replace_key_verifier(old_key text, new_key text)'
    OR (grantee = 'fieldseal_owner' AND object_name IN ('fieldseal.pgp_sym_encrypt(text, text, text)', 'fieldseal.pgp_sym_decrypt(bytea, text)'));
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'column', 'fieldseal.subjects', 'key_verifier', 'UPDATE');
GRANT UPDATE (key_verifier) ON fieldseal.subjects TO fieldseal_app;
DROP FUNCTION fieldseal.replace_key_verifier(text, text);
UPDATE fieldseal.rls_policy SET rls = false WHERE table_name = 'fieldseal.revocations';
DROP POLICY owner_revokes ON fieldseal.revocations;
DROP POLICY prune_expired ON fieldseal.revocations;
DROP POLICY everyone_reads ON fieldseal.revocations;
ALTER TABLE fieldseal.revocations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.revocations DISABLE ROW LEVEL SECURITY;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION fieldseal.pgp_sym_encrypt(text, text, text), fieldseal.pgp_sym_decrypt(bytea, text) FROM fieldseal_owner;
