-- Audit lanes: several hash chains per subject, so that one busy subject
-- (a backend signed in with client credentials has one `sub` for all of
-- its traffic) does not pass its requests one at a time through COMMIT.
--
-- Until now a subject's appends took its one head row FOR UPDATE and held
-- it until COMMIT returned, WAL flush included: with 2 ms flushes, 8
-- clients of one subject ran at a fifth of the rate of 8 clients of 8
-- subjects (issue "Audit at any load"). Now each subject has up to 32
-- lanes, each a chain with its own head (subject, lane). An append takes
-- the lowest lane no other transaction holds (FOR UPDATE SKIP LOCKED),
-- opens a new lane when all are held (the next number whose advisory lock
-- it gets, so openers never wait on each other), and waits on one only
-- when all 32 are held.
-- Every guarantee stays: the entry is written in the work's transaction
-- and durable before the answer; the app role still only appends (the
-- trigger chooses lane, seq, time and hashes); `fieldseal audit verify`
-- walks every lane's chain and compares it with its head.
--
-- The hash of an entry is unchanged (it does not cover the lane: each
-- lane is a chain of its own, linked by prev_hash), so the existing chain
-- becomes lane 0 as it is and verifies across this migration.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
-- No append may slip between the new keys and the new trigger.
LOCK TABLE fieldseal.audit_events, fieldseal.audit_heads IN SHARE ROW EXCLUSIVE MODE;

-- audit_hash takes the table's row type and has a SQL-standard body, so
-- PostgreSQL 15.20 refuses to add a column under it ("cannot alter table
-- ... because function ... uses its row type"; 15.18 allowed it): it is
-- dropped and created again around the change, the same function (00007's
-- body, 00010's declaration), hashing the same bytes.
DROP FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events);
ALTER TABLE fieldseal.audit_events ADD COLUMN lane smallint NOT NULL DEFAULT 0 CHECK (lane >= 0);
-- +goose StatementBegin
CREATE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        e.subject, e.seq::text, (extract(epoch FROM e.at) * 1000000)::bigint::text,
        e.action, e.outcome, coalesce(e.record_id::text, ''), coalesce(e.record_count::text, ''),
        coalesce(e.token_id, ''), coalesce(e.client_id, ''), coalesce(e.request_id, ''),
        coalesce(e.client_addr, '')), 'UTF8'));
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events) FROM PUBLIC;
ALTER TABLE fieldseal.audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE fieldseal.audit_events ADD PRIMARY KEY (subject, lane, seq);
DROP INDEX fieldseal.audit_events_at;
CREATE INDEX audit_events_at ON fieldseal.audit_events (at, subject, lane, seq);

ALTER TABLE fieldseal.audit_heads ADD COLUMN lane smallint NOT NULL DEFAULT 0 CHECK (lane >= 0);
ALTER TABLE fieldseal.audit_heads DROP CONSTRAINT audit_heads_pkey;
ALTER TABLE fieldseal.audit_heads ADD PRIMARY KEY (subject, lane);
-- Room on each page for the head's new version: its update stays HOT
-- (no index entry per append).
ALTER TABLE fieldseal.audit_heads SET (fillfactor = 50);

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
REVOKE ALL ON FUNCTION fieldseal.audit_chain() FROM PUBLIC;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
LOCK TABLE fieldseal.audit_events, fieldseal.audit_heads IN SHARE ROW EXCLUSIVE MODE;
-- Lanes other than 0 cannot be folded back into one chain without
-- rewriting their hashes: refuse rather than break the trail.
-- +goose StatementBegin
DO $$
BEGIN
    -- The owner reads the whole trail only with audit_reader on (00007).
    PERFORM set_config('fieldseal.audit_reader', 'on', true);
    IF EXISTS (SELECT 1 FROM fieldseal.audit_events WHERE lane <> 0) THEN
        RAISE EXCEPTION 'the audit trail has entries in lanes other than 0; archive them before migrating down';
    END IF;
    PERFORM set_config('fieldseal.audit_reader', '', true);
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    head record;
BEGIN
    SELECT h.seq, h.hash INTO head FROM fieldseal.audit_heads h WHERE h.subject = NEW.subject FOR UPDATE;
    IF NOT FOUND THEN
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
ALTER TABLE fieldseal.audit_heads RESET (fillfactor);
ALTER TABLE fieldseal.audit_heads DROP CONSTRAINT audit_heads_pkey;
ALTER TABLE fieldseal.audit_heads ADD PRIMARY KEY (subject);
ALTER TABLE fieldseal.audit_heads DROP COLUMN lane;
DROP INDEX fieldseal.audit_events_at;
CREATE INDEX audit_events_at ON fieldseal.audit_events (at, subject, seq);
ALTER TABLE fieldseal.audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE fieldseal.audit_events ADD PRIMARY KEY (subject, seq);
DROP FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events); -- as in Up: PostgreSQL 15.20
ALTER TABLE fieldseal.audit_events DROP COLUMN lane;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        e.subject, e.seq::text, (extract(epoch FROM e.at) * 1000000)::bigint::text,
        e.action, e.outcome, coalesce(e.record_id::text, ''), coalesce(e.record_count::text, ''),
        coalesce(e.token_id, ''), coalesce(e.client_id, ''), coalesce(e.request_id, ''),
        coalesce(e.client_addr, '')), 'UTF8'));
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events) FROM PUBLIC;
RESET ROLE;
