-- The audit trail: one entry per decrypt, write, delete, rotation, key
-- check and refused request of a known subject, written in the same
-- transaction as the work it records. Design, and its cost, in
-- migrations/doc.go ("Audit trail").
--
-- Each subject has a hash chain of its own (no global lock): entry n's
-- hash covers its fields and entry n-1's hash. The chain is extended by a
-- trigger, so the app role only ever INSERTs the descriptive fields and
-- cannot choose seq, time or hashes; it has no UPDATE, DELETE or TRUNCATE.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE TABLE fieldseal.audit_events (
    subject      text        NOT NULL DEFAULT current_setting('fieldseal.subject', true)
                             CHECK (subject <> ''),
    seq          bigint      NOT NULL,  -- position in the subject's chain, from 1
    at           timestamptz NOT NULL,
    action       text        NOT NULL CHECK (action ~ '^[a-z_.]+$'),
    outcome      text        NOT NULL CHECK (outcome ~ '^[a-z_]+$'),
    record_id    uuid,
    record_count bigint,
    token_id     text,       -- the token's jti, never the token
    client_id    text,
    request_id   text,
    client_addr  text,
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,
    PRIMARY KEY (subject, seq)
);
CREATE INDEX audit_events_at ON fieldseal.audit_events (at, subject, seq);

-- The canonical bytes an entry's hash covers; `fieldseal audit verify`
-- computes the same in Go. Fields are separated by the unit separator
-- (0x1f), times are microseconds since the epoch.
-- +goose StatementBegin
CREATE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        e.subject, e.seq::text, (extract(epoch FROM e.at) * 1000000)::bigint::text,
        e.action, e.outcome, coalesce(e.record_id::text, ''), coalesce(e.record_count::text, ''),
        coalesce(e.token_id, ''), coalesce(e.client_id, ''), coalesce(e.request_id, ''),
        coalesce(e.client_addr, '')), 'UTF8'));
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION fieldseal.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    last record;
BEGIN
    -- One writer per subject at a time, until commit; other subjects are
    -- not held up.
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
REVOKE ALL ON FUNCTION fieldseal.audit_chain(), fieldseal.audit_hash(bytea, fieldseal.audit_events) FROM PUBLIC;
CREATE TRIGGER audit_chain BEFORE INSERT ON fieldseal.audit_events
    FOR EACH ROW EXECUTE FUNCTION fieldseal.audit_chain();

-- Row-level security: the app appends to the transaction's subject only,
-- and reads across subjects only when a request with the audit:read scope
-- says so (fieldseal.audit_reader); the trigger, running as the owner,
-- reads its own subject's chain.
ALTER TABLE fieldseal.audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE fieldseal.audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY append_own ON fieldseal.audit_events FOR INSERT
    WITH CHECK (subject = current_setting('fieldseal.subject', true));
CREATE POLICY read_own_or_audit ON fieldseal.audit_events FOR SELECT
    USING (subject = current_setting('fieldseal.subject', true)
           OR current_setting('fieldseal.audit_reader', true) = 'on');

GRANT SELECT ON fieldseal.audit_events TO fieldseal_app;
GRANT INSERT (action, outcome, record_id, record_count, token_id, client_id, request_id, client_addr)
    ON fieldseal.audit_events TO fieldseal_app;

-- The auditor reads the trail (as a DBA: no row-level security filter
-- applies to it through this policy) and nothing of records' ciphertext.
CREATE POLICY auditor_reads_all ON fieldseal.audit_events FOR SELECT TO fieldseal_auditor USING (true);
GRANT USAGE ON SCHEMA fieldseal TO fieldseal_auditor;
GRANT SELECT ON fieldseal.audit_events TO fieldseal_auditor;
GRANT SELECT (subject, id, collection, version, created_at, updated_at) ON fieldseal.records TO fieldseal_auditor;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
REVOKE SELECT (subject, id, collection, version, created_at, updated_at) ON fieldseal.records FROM fieldseal_auditor;
REVOKE USAGE ON SCHEMA fieldseal FROM fieldseal_auditor;
DROP TRIGGER audit_chain ON fieldseal.audit_events;
DROP FUNCTION fieldseal.audit_chain();
DROP FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events);
DROP TABLE fieldseal.audit_events;
RESET ROLE;
