-- audit_hash (00007) runs once per audit entry, in the trigger, so once
-- per request. Declared IMMUTABLE with a SET clause, it could not be
-- inlined: every call read its stored body back (stringToNode) and
-- planned it again, about 8 % of all CPU on the machine during a read
-- benchmark (perf, `make bench`). Declared STABLE (concat_ws and
-- convert_to are) and without SET, the planner inlines it into the
-- trigger's cached expression: audit appends +9 to +22 % (pgbench,
-- 8 clients, insert-only, alternating runs).
--
-- Only the declaration changes (ALTER FUNCTION); the body stays 00007's.
-- Dropping SET search_path is safe here: a SQL-standard body (RETURN ...)
-- is parsed when the function is created, so every name in it is bound
-- then, never looked up along a caller's search_path. The bytes hashed
-- and the hash are unchanged: chains continue across this migration.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
ALTER FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events) STABLE RESET search_path;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
ALTER FUNCTION fieldseal.audit_hash(bytea, fieldseal.audit_events) IMMUTABLE SET search_path = pg_catalog, pg_temp;
RESET ROLE;
