-- Idempotency keys (IETF httpapi "The Idempotency-Key HTTP Header Field",
-- with Stripe's semantics). A write that carries Idempotency-Key claims the
-- key in its own transaction and stores the answer it gives there, so the
-- answer commits with the work or not at all: an answer lost to a crash or
-- a cut connection cannot hide a committed write, and the client's retry
-- gets that answer again instead of a duplicate. A concurrent retry waits
-- on the claim's row lock until the first commits (then it replays) or
-- rolls back (then it runs).
--
-- The request is kept only as a fingerprint: an HMAC-SHA-256 under the
-- client's own data key (never stored), so whoever holds the database
-- cannot test a guess of what the request held. The answer's body holds
-- no secret value: writes answer with metadata and public fields only.
-- Keys are per subject, like everything else, and last 24 hours.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE TABLE fieldseal.idempotency_keys (
    subject     text        NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                            CHECK (subject <> ''),
    key         text        NOT NULL CHECK (key <> '' AND length(key) <= 255),
    fingerprint bytea       NOT NULL CHECK (length(fingerprint) = 32),
    status      integer     NOT NULL,
    header      jsonb       NOT NULL DEFAULT '{}',
    body        bytea       NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, key)
);
CREATE INDEX idempotency_keys_created ON fieldseal.idempotency_keys (subject, created_at);
ALTER TABLE fieldseal.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_isolation ON fieldseal.idempotency_keys
    USING (subject = current_setting('fieldseal.subject', true))
    WITH CHECK (subject = current_setting('fieldseal.subject', true));
GRANT SELECT, INSERT, DELETE ON fieldseal.idempotency_keys TO fieldseal_app;
GRANT UPDATE (fingerprint, status, header, body, created_at) ON fieldseal.idempotency_keys TO fieldseal_app;

INSERT INTO fieldseal.rls_policy VALUES ('fieldseal.idempotency_keys', true);
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'table', 'fieldseal.idempotency_keys', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.idempotency_keys', '', 'INSERT'),
    ('fieldseal_app', 'table', 'fieldseal.idempotency_keys', '', 'DELETE'),
    ('fieldseal_app', 'column', 'fieldseal.idempotency_keys', 'fingerprint', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.idempotency_keys', 'status', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.idempotency_keys', 'header', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.idempotency_keys', 'body', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.idempotency_keys', 'created_at', 'UPDATE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.idempotency_keys';
DELETE FROM fieldseal.rls_policy WHERE table_name = 'fieldseal.idempotency_keys';
DROP TABLE fieldseal.idempotency_keys;
RESET ROLE;
