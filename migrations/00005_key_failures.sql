-- Wrong-key throttling. Every 403 wrong_key is counted here, per token and
-- so per subject, in fixed windows; fieldseal refuses key-bearing requests
-- (429) once a token, or all of a subject's tokens together, reach their
-- limit in the current window. The state is in PostgreSQL so every
-- instance shares it. Keyed by subject like every table.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE TABLE fieldseal.key_failures (
    subject      text        NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                             CHECK (subject <> ''),
    token_id     text        NOT NULL, -- the token's jti, or a hash of the token
    window_start timestamptz NOT NULL,
    failures     integer     NOT NULL,
    PRIMARY KEY (subject, token_id)
);
ALTER TABLE fieldseal.key_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.key_failures FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_isolation ON fieldseal.key_failures
    USING (subject = current_setting('fieldseal.subject', true))
    WITH CHECK (subject = current_setting('fieldseal.subject', true));
GRANT SELECT, INSERT, DELETE ON fieldseal.key_failures TO fieldseal_app;
GRANT UPDATE (window_start, failures) ON fieldseal.key_failures TO fieldseal_app;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DROP TABLE fieldseal.key_failures;
RESET ROLE;
