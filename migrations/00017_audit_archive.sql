-- Archiving the audit trail (`fieldseal audit archive`). Old entries move
-- to a file that verifies without the database; the database keeps, for
-- each chain whose oldest entries left, where the chain now starts: the
-- first seq still here and the hash of the entry before it, so `fieldseal
-- audit verify` walks each chain from its recorded start, and `--archive`
-- proves that an archive joins it without a gap.
--
-- Only the archive deletes entries: as a superuser, or as a member of
-- fieldseal_owner with fieldseal.audit_archive on (this policy). The app
-- role still cannot delete, nor read or write the starts.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE TABLE fieldseal.audit_chain_starts (
    subject     text        NOT NULL,
    lane        smallint    NOT NULL CHECK (lane >= 0),
    seq         bigint      NOT NULL CHECK (seq > 1),
    prev_hash   bytea       NOT NULL CHECK (length(prev_hash) = 32),
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, lane)
);
GRANT SELECT ON fieldseal.audit_chain_starts TO fieldseal_auditor;
CREATE POLICY archive_deletes ON fieldseal.audit_events FOR DELETE TO fieldseal_owner
    USING (current_setting('fieldseal.audit_archive', true) = 'on');
INSERT INTO fieldseal.rls_policy VALUES ('fieldseal.audit_chain_starts', false);
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_auditor', 'table', 'fieldseal.audit_chain_starts', '', 'SELECT');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
-- Without the starts, a chain whose oldest entries were archived would
-- read as cut: refuse rather than make verify report a break.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM fieldseal.audit_chain_starts) THEN
        RAISE EXCEPTION 'the audit trail has been archived: its chains start after entry 1, which only this migration records';
    END IF;
END
$$;
-- +goose StatementEnd
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.audit_chain_starts';
DELETE FROM fieldseal.rls_policy WHERE table_name = 'fieldseal.audit_chain_starts';
DROP POLICY archive_deletes ON fieldseal.audit_events;
DROP TABLE fieldseal.audit_chain_starts;
RESET ROLE;
