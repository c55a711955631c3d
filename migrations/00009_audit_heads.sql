-- The head of each subject's audit chain, kept in a row of its own.
--
-- 00007's trigger found a chain's last entry with "ORDER BY seq DESC
-- LIMIT 1" over audit_events, through the caller's snapshot and each
-- connection's cached plan. Two things went wrong with that:
--   * a plan cached while the trail was nearly empty (a sequential scan
--     and a sort) stays in use as the trail grows, until autovacuum next
--     analyzes the table: each append then reads the whole trail (measured
--     by `make bench`: 0.3 ms per append after 7,000 entries, 2.5 ms after
--     20,000);
--   * a REPEATABLE READ transaction (the export) could not see entries
--     committed after its snapshot, computed a stale seq and failed on the
--     primary key.
-- A head row per subject, read FOR UPDATE, costs the same per append
-- (pgbench, 8 clients: ~4,100 appends/s either way), does not grow with
-- the trail, serialises a subject's appends (replacing the advisory lock)
-- and lets `fieldseal audit verify` see entries deleted from a chain's end.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
-- No append may slip between the backfill and the new trigger.
LOCK TABLE fieldseal.audit_events IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE fieldseal.audit_heads (
    subject text   PRIMARY KEY CHECK (subject <> ''),
    seq     bigint NOT NULL CHECK (seq >= 0), -- the chain's newest entry
    hash    bytea  NOT NULL                   -- and its hash
);
-- The owner reads the whole trail only with audit_reader on (00007's policy).
SELECT set_config('fieldseal.audit_reader', 'on', true);
INSERT INTO fieldseal.audit_heads (subject, seq, hash)
SELECT DISTINCT ON (subject) subject, seq, hash FROM fieldseal.audit_events ORDER BY subject, seq DESC;
SELECT set_config('fieldseal.audit_reader', '', true);

-- Like every table keyed by subject: the trigger (running as the owner)
-- sees only the transaction's subject's head; the auditor reads them all.
ALTER TABLE fieldseal.audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY own_subject ON fieldseal.audit_heads
    USING (subject = current_setting('fieldseal.subject', true));
CREATE POLICY auditor_reads_all ON fieldseal.audit_heads FOR SELECT TO fieldseal_auditor USING (true);
GRANT SELECT ON fieldseal.audit_heads TO fieldseal_auditor;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    head record;
BEGIN
    -- The row lock is held until commit: one writer per subject at a
    -- time; other subjects are not held up.
    SELECT h.seq, h.hash INTO head FROM fieldseal.audit_heads h WHERE h.subject = NEW.subject FOR UPDATE;
    IF NOT FOUND THEN
        -- The subject's first entry. A concurrent first append waits here
        -- for ours to commit, then reads the head we wrote.
        INSERT INTO fieldseal.audit_heads (subject, seq, hash)
        VALUES (NEW.subject, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        ON CONFLICT (subject) DO NOTHING;
        SELECT h.seq, h.hash INTO STRICT head FROM fieldseal.audit_heads h WHERE h.subject = NEW.subject FOR UPDATE;
    END IF;
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.at := clock_timestamp();
    NEW.hash := fieldseal.audit_hash(NEW.prev_hash, NEW);
    UPDATE fieldseal.audit_heads h SET seq = NEW.seq, hash = NEW.hash WHERE h.subject = NEW.subject;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.audit_chain() FROM PUBLIC;

INSERT INTO fieldseal.rls_policy VALUES ('fieldseal.audit_heads', true);
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_auditor', 'table', 'fieldseal.audit_heads', '', 'SELECT');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
LOCK TABLE fieldseal.audit_events IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.audit_heads';
DELETE FROM fieldseal.rls_policy WHERE table_name = 'fieldseal.audit_heads';
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    last record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('fieldseal.audit:' || NEW.subject, 0));
    SELECT a.seq, a.hash INTO last FROM fieldseal.audit_events a
     WHERE a.subject = NEW.subject ORDER BY a.seq DESC LIMIT 1;
    NEW.seq := coalesce(last.seq, 0) + 1;
    NEW.prev_hash := coalesce(last.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.at := clock_timestamp();
    NEW.hash := fieldseal.audit_hash(NEW.prev_hash, NEW);
    RETURN NEW;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.audit_chain() FROM PUBLIC;
DROP TABLE fieldseal.audit_heads;
RESET ROLE;
