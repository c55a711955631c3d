-- The records schema. What is encrypted with what, and what each role may
-- do, is described in migrations/doc.go.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    installed name;
BEGIN
    SELECT n.nspname INTO installed
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pgcrypto';
    IF installed IS NOT NULL THEN
        RAISE EXCEPTION 'pgcrypto is already installed in schema %; fieldseal keeps its own copy in schema fieldseal', installed
            USING HINT = 'Give fieldseal a database of its own (recommended), or move the extension with ALTER EXTENSION pgcrypto SET SCHEMA fieldseal.';
    END IF;
END
$$;
-- +goose StatementEnd

CREATE SCHEMA fieldseal AUTHORIZATION fieldseal_owner;
REVOKE ALL ON SCHEMA fieldseal FROM PUBLIC;
CREATE EXTENSION pgcrypto WITH SCHEMA fieldseal;
-- PostgreSQL grants EXECUTE on new functions to PUBLIC; fieldseal's roles get
-- exactly the functions they call and nobody else gets any.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA fieldseal FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.pgp_sym_encrypt(text, text, text) TO fieldseal_app;
GRANT EXECUTE ON FUNCTION fieldseal.pgp_sym_decrypt(bytea, text) TO fieldseal_app;

-- Everything below is owned by fieldseal_owner, not by whoever migrates.
SET LOCAL ROLE fieldseal_owner;

-- The key verifier: a constant encrypted under the subject's current key.
-- Options: AES-256 and s2k-mode=1 (a single salted hash of the passphrase).
-- Keys are 256 random bits, so iterated S2K (mode 3, tens of thousands of
-- hash rounds) adds no guessing resistance: nobody brute-forces 2^256. It
-- only costs CPU: 662 µs against 30 µs per encrypt+decrypt, about 22 times
-- more (PostgreSQL 15, 2 cores; go test -run '^$' -bench S2K ./db/).
-- +goose StatementBegin
CREATE FUNCTION fieldseal.new_key_verifier(key text) RETURNS bytea
    LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN fieldseal.pgp_sym_encrypt('fieldseal key verifier v1', key, 'cipher-algo=aes256, s2k-mode=1');
-- +goose StatementEnd

-- key_matches answers whether key opens verifier, without raising: a wrong
-- key is an expected answer (403 wrong_key), not an error in the server log.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.key_matches(verifier bytea, key text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN fieldseal.pgp_sym_decrypt(verifier, key) = 'fieldseal key verifier v1';
EXCEPTION WHEN external_routine_invocation_exception THEN
    RETURN false; -- pgcrypto: "Wrong key or corrupt data"
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.new_key_verifier(text), fieldseal.key_matches(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.new_key_verifier(text), fieldseal.key_matches(bytea, text) TO fieldseal_app;

-- One row per subject that has ever written: its key verifier.
CREATE TABLE fieldseal.subjects (
    subject      text        NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                             CHECK (subject <> ''),
    key_verifier bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject)
);

-- Records: public is clear JSON chosen by the client; secret is one
-- OpenPGP message (pgp_sym_encrypt) of the secret JSON under the subject's key.
-- ids are UUIDv7, so keyset pagination by id follows creation order.
CREATE TABLE fieldseal.records (
    subject    text        NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                           CHECK (subject <> ''),
    id         uuid        NOT NULL,
    collection text        NOT NULL CHECK (length(collection) BETWEEN 1 AND 128),
    public     jsonb       NOT NULL CHECK (jsonb_typeof(public) = 'object'),
    secret     bytea       NOT NULL,
    version    bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, id)
);
CREATE INDEX records_subject_collection_id ON fieldseal.records (subject, collection, id);

-- Row-level security keyed by the transaction's subject, forced so that even
-- the owner obeys it. With no subject set, current_setting is NULL or '' and
-- no row matches.
ALTER TABLE fieldseal.subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_isolation ON fieldseal.subjects
    USING (subject = current_setting('fieldseal.subject', true))
    WITH CHECK (subject = current_setting('fieldseal.subject', true));
ALTER TABLE fieldseal.records ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.records FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_isolation ON fieldseal.records
    USING (subject = current_setting('fieldseal.subject', true))
    WITH CHECK (subject = current_setting('fieldseal.subject', true));

-- The app role: exactly what the API needs. No DDL, no TRUNCATE, no
-- REFERENCES or TRIGGER, and it can change neither a record's subject nor
-- its id.
GRANT USAGE ON SCHEMA fieldseal TO fieldseal_app;
GRANT SELECT, INSERT ON fieldseal.subjects TO fieldseal_app;
-- Locking the verifier row (SELECT ... FOR SHARE) needs an UPDATE privilege;
-- key rotation replaces the verifier.
GRANT UPDATE (key_verifier, updated_at) ON fieldseal.subjects TO fieldseal_app;
GRANT SELECT, INSERT, DELETE ON fieldseal.records TO fieldseal_app;
GRANT UPDATE (collection, public, secret, version, updated_at) ON fieldseal.records TO fieldseal_app;

RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DROP TABLE fieldseal.records;
DROP TABLE fieldseal.subjects;
DROP FUNCTION fieldseal.key_matches(bytea, text);
DROP FUNCTION fieldseal.new_key_verifier(text);
RESET ROLE;
DROP EXTENSION pgcrypto;
DROP SCHEMA fieldseal;
