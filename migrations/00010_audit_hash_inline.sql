-- audit_hash (00007) runs once per audit entry, in the trigger, so once
-- per request. Declared IMMUTABLE with a SET clause, it could not be
-- inlined: every call read its stored body back (stringToNode) and
-- planned it again, about 8 % of all CPU on the machine during a read
-- benchmark (perf, `make bench`). Declared STABLE (concat_ws and
-- convert_to are) and without SET, the planner inlines it into the
-- trigger's cached expression: audit appends +9 to +22 % (pgbench,
-- 8 clients, insert-only, alternating runs).
--
-- Dropping SET search_path is safe here: a SQL-standard body (RETURN ...)
-- is parsed when the function is created, so every name in it is bound
-- then, never looked up along a caller's search_path. The bytes hashed
-- and the hash are unchanged: chains continue across this migration.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE OR REPLACE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        e.subject, e.seq::text, (extract(epoch FROM e.at) * 1000000)::bigint::text,
        e.action, e.outcome, coalesce(e.record_id::text, ''), coalesce(e.record_count::text, ''),
        coalesce(e.token_id, ''), coalesce(e.client_id, ''), coalesce(e.request_id, ''),
        coalesce(e.client_addr, '')), 'UTF8'));
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
CREATE OR REPLACE FUNCTION fieldseal.audit_hash(prev bytea, e fieldseal.audit_events) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN sha256(prev || convert_to(concat_ws(chr(31),
        e.subject, e.seq::text, (extract(epoch FROM e.at) * 1000000)::bigint::text,
        e.action, e.outcome, coalesce(e.record_id::text, ''), coalesce(e.record_count::text, ''),
        coalesce(e.token_id, ''), coalesce(e.client_id, ''), coalesce(e.request_id, ''),
        coalesce(e.client_addr, '')), 'UTF8'));
RESET ROLE;
