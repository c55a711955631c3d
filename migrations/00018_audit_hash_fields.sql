-- The audit chain on Citus. The trigger runs on each shard, where a
-- row's type is the shard's (audit_events_102125), not audit_events: it
-- hashed NEW through audit_hash(bytea, audit_events), which does not
-- exist for that type. The hash now takes the entry's fields
-- (audit_entry_hash: the same bytes, so every chain verifies across
-- this migration); audit_hash stays, for whoever hashes a row, and calls it.
--
-- Citus also sends the coordinator's defaults to the shards as columns
-- the INSERT names, so the app would need INSERT on them: lane loses its
-- default (the trigger always sets it, as it does seq, at and the
-- hashes), and the app may insert subject, which row-level security
-- holds to the transaction's subject (append_own) as before.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
LOCK TABLE fieldseal.audit_events, fieldseal.audit_heads IN SHARE ROW EXCLUSIVE MODE;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.audit_entry_hash(prev bytea, subject text, seq bigint, at timestamptz, action text,
        outcome text, record_id uuid, record_count bigint, token_id text, client_id text, request_id text,
        client_addr text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        subject, seq::text, (extract(epoch FROM at) * 1000000)::bigint::text,
        action, outcome, coalesce(record_id::text, ''), coalesce(record_count::text, ''),
        coalesce(token_id, ''), coalesce(client_id, ''), coalesce(request_id, ''),
        coalesce(client_addr, '')), 'UTF8'));
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.audit_entry_hash(bytea, text, bigint, timestamptz, text, text, uuid, bigint, text, text, text, text) FROM PUBLIC;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN fieldseal.audit_entry_hash(prev, e.subject, e.seq, e.at, e.action, e.outcome,
        e.record_id, e.record_count, e.token_id, e.client_id, e.request_id, e.client_addr);
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    head  record;
    lanes integer;
BEGIN
    -- The subject's lowest lane that no other transaction holds. The row
    -- lock is held until commit: one writer per lane at a time.
    SELECT h.lane, h.seq, h.hash INTO head FROM fieldseal.audit_heads h
     WHERE h.subject = NEW.subject ORDER BY h.lane LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- Every lane is held (or the subject has none yet): open the next.
        -- Openers take a lane's advisory lock first, so none waits on
        -- another's uncommitted head: one that finds a lane being opened
        -- tries the next.
        SELECT count(*) INTO lanes FROM fieldseal.audit_heads h WHERE h.subject = NEW.subject;
        FOR l IN lanes .. 31 LOOP
            IF pg_try_advisory_xact_lock(hashtextextended('fieldseal.audit_lane:' || NEW.subject, l)) THEN
                INSERT INTO fieldseal.audit_heads (subject, lane, seq, hash)
                VALUES (NEW.subject, l, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
                ON CONFLICT (subject, lane) DO NOTHING;
                SELECT h.lane, h.seq, h.hash INTO head FROM fieldseal.audit_heads h
                 WHERE h.subject = NEW.subject AND h.lane = l FOR UPDATE SKIP LOCKED;
                EXIT WHEN FOUND;
            END IF;
        END LOOP;
        IF head IS NULL THEN
            -- All 32 lanes held: wait on one.
            SELECT h.lane, h.seq, h.hash INTO STRICT head FROM fieldseal.audit_heads h
             WHERE h.subject = NEW.subject AND h.lane = floor(random() * 32)::int FOR UPDATE;
        END IF;
    END IF;
    NEW.lane := head.lane;
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.at := clock_timestamp();
    NEW.hash := fieldseal.audit_entry_hash(NEW.prev_hash, NEW.subject, NEW.seq, NEW.at, NEW.action, NEW.outcome,
        NEW.record_id, NEW.record_count, NEW.token_id, NEW.client_id, NEW.request_id, NEW.client_addr);
    UPDATE fieldseal.audit_heads h SET seq = NEW.seq, hash = NEW.hash
     WHERE h.subject = NEW.subject AND h.lane = NEW.lane;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
ALTER TABLE fieldseal.audit_events ALTER COLUMN lane DROP DEFAULT;
GRANT INSERT (subject) ON fieldseal.audit_events TO fieldseal_app;
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'subject', 'INSERT');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
LOCK TABLE fieldseal.audit_events, fieldseal.audit_heads IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM fieldseal.grants_policy
 WHERE grantee = 'fieldseal_app' AND object_name = 'fieldseal.audit_events' AND column_name = 'subject';
REVOKE INSERT (subject) ON fieldseal.audit_events FROM fieldseal_app;
ALTER TABLE fieldseal.audit_events ALTER COLUMN lane SET DEFAULT 0;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    head  record;
    lanes integer;
BEGIN
    -- The subject's lowest lane that no other transaction holds. The row
    -- lock is held until commit: one writer per lane at a time.
    SELECT h.lane, h.seq, h.hash INTO head FROM fieldseal.audit_heads h
     WHERE h.subject = NEW.subject ORDER BY h.lane LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- Every lane is held (or the subject has none yet): open the next.
        -- Openers take a lane's advisory lock first, so none waits on
        -- another's uncommitted head: one that finds a lane being opened
        -- tries the next.
        SELECT count(*) INTO lanes FROM fieldseal.audit_heads h WHERE h.subject = NEW.subject;
        FOR l IN lanes .. 31 LOOP
            IF pg_try_advisory_xact_lock(hashtextextended('fieldseal.audit_lane:' || NEW.subject, l)) THEN
                INSERT INTO fieldseal.audit_heads (subject, lane, seq, hash)
                VALUES (NEW.subject, l, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
                ON CONFLICT (subject, lane) DO NOTHING;
                SELECT h.lane, h.seq, h.hash INTO head FROM fieldseal.audit_heads h
                 WHERE h.subject = NEW.subject AND h.lane = l FOR UPDATE SKIP LOCKED;
                EXIT WHEN FOUND;
            END IF;
        END LOOP;
        IF head IS NULL THEN
            -- All 32 lanes held: wait on one.
            SELECT h.lane, h.seq, h.hash INTO STRICT head FROM fieldseal.audit_heads h
             WHERE h.subject = NEW.subject AND h.lane = floor(random() * 32)::int FOR UPDATE;
        END IF;
    END IF;
    NEW.lane := head.lane;
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.at := clock_timestamp();
    NEW.hash := fieldseal.audit_hash(NEW.prev_hash, NEW);
    UPDATE fieldseal.audit_heads h SET seq = NEW.seq, hash = NEW.hash
     WHERE h.subject = NEW.subject AND h.lane = NEW.lane;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        e.subject, e.seq::text, (extract(epoch FROM e.at) * 1000000)::bigint::text,
        e.action, e.outcome, coalesce(e.record_id::text, ''), coalesce(e.record_count::text, ''),
        coalesce(e.token_id, ''), coalesce(e.client_id, ''), coalesce(e.request_id, ''),
        coalesce(e.client_addr, '')), 'UTF8'));
-- +goose StatementEnd
DROP FUNCTION fieldseal.audit_entry_hash(bytea, text, bigint, timestamptz, text, text, uuid, bigint, text, text, text, text);
RESET ROLE;
