-- Token revocation, shared by every instance. `fieldseal token revoke`
-- (an admin connection) inserts a row and NOTIFYs fieldseal_revocations;
-- each instance LISTENs, re-reads the list on a notification and
-- periodically in case one was missed, and refuses revoked tokens.
--
-- This table is the one exception to "keyed by subject": a revocation by
-- jti may not know its subject, and every instance must read every row.
-- On Citus it is a reference table (replicated to every node).

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE TABLE fieldseal.revocations (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jti            text        CHECK (jti <> ''),
    subject        text        CHECK (subject <> ''),
    revoked_before timestamptz,
    -- After this no token it names can still be valid: the row is pruned.
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Either one token (jti), or every token of a subject issued before a time.
    CHECK ((jti IS NOT NULL AND subject IS NULL AND revoked_before IS NULL)
        OR (jti IS NULL AND subject IS NOT NULL AND revoked_before IS NOT NULL))
);
-- The app reads the list and prunes expired rows; only admins add to it.
GRANT SELECT, DELETE ON fieldseal.revocations TO fieldseal_app;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DROP TABLE fieldseal.revocations;
RESET ROLE;
