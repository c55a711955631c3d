-- What every request's transaction sends around its work (db/tx.go,
-- the transaction runner): its settings, the wrong-key throttle's
-- admission and its count of wrong keys, the Idempotency-Key, and the
-- audit entry. Like every query, each runs inside a transaction that has
-- set fieldseal.subject (records.sql says how).

-- name: SetSubject :exec
-- The transaction's subject, and its bounds: how long a statement and a
-- lock wait may take, and parameter logging off. They are set for the
-- transaction, not only at connection start, so that they hold behind a
-- transaction-mode pooler too (PgBouncer passes no such startup parameter).
SELECT set_config('fieldseal.subject', @subject::text, true),
       set_config('statement_timeout', @statement_timeout::text, true),
       set_config('lock_timeout', @lock_timeout::text, true),
       set_config('log_parameter_max_length', '0', true),
       set_config('log_parameter_max_length_on_error', '0', true),
       -- force_generic_plan in transactions that carry a key: a custom plan
       -- folds bind values into constants, which auto_explain (log_verbose)
       -- would log; a generic plan shows $n.
       set_config('plan_cache_mode', @plan_cache_mode::text, true),
       -- A generic plan is made once per connection, from the statistics
       -- and the table sizes of that moment, and kept until an ANALYZE:
       -- made while a table was tiny, a sequential scan looked cheapest,
       -- and stayed, in the foreign-key checks of every tag written among
       -- others (a reindex of 20,000 records: 42 s instead of 3.2 s,
       -- TestPlansMadeOnTinyTables). Every table is keyed by subject and
       -- every statement names one: an index serves each, whatever the
       -- statistics said when its plan was made.
       set_config('enable_seqscan', 'off', true);

-- Wrong-key throttling (migration 00005). window_seconds is the window's
-- length; a row whose window has passed counts for nothing.

-- name: AdmitKeyUse :one
-- Whether this transaction may try a key: the current window's wrong keys
-- of one token and of the whole subject are both under their limits. The
-- answer is also kept in the transaction (fieldseal.key_use), and every
-- statement that tries a key requires it (see records.sql), so statements
-- sent in the same round trip as this one try nothing for a throttled
-- caller, and a statement sent without it tries nothing at all. The
-- failures and when each window started come along, for Retry-After.
WITH f AS (
    SELECT
        coalesce(sum(failures) FILTER (WHERE token_id = @token_id::text), 0)::int AS token_failures,
        coalesce(sum(failures), 0)::int AS subject_failures,
        coalesce(max(window_start) FILTER (WHERE token_id = @token_id::text), now())::timestamptz AS token_window_start,
        coalesce(max(window_start), now())::timestamptz AS subject_window_start
    FROM fieldseal.key_failures
    WHERE subject = current_setting('fieldseal.subject', true) AND window_start > now() - make_interval(secs => @window_seconds::int)
)
SELECT f.token_failures, f.subject_failures, f.token_window_start, f.subject_window_start,
       set_config('fieldseal.key_use',
           CASE WHEN f.token_failures < @token_limit::int AND f.subject_failures < @subject_limit::int
                THEN 'admitted' ELSE 'refused' END,
           true) = 'admitted' AS admitted
FROM f;

-- name: RecordKeyFailure :exec
-- A row keeps its own window's length (migration 00015): within it the
-- count only grows; once it has passed, a new window starts. (In DO
-- UPDATE, now() is excluded.window_start and the window is compared as
-- an interval: Citus wants its functions immutable, which now() and
-- timestamptz minus interval are not.)
INSERT INTO fieldseal.key_failures AS k (token_id, window_start, failures, window_seconds)
VALUES (@token_id::text, now(), 1, @window_seconds::int)
ON CONFLICT (subject, token_id) DO UPDATE SET
    failures = CASE WHEN excluded.window_start - k.window_start < k.window_seconds * interval '1 second' THEN k.failures + 1 ELSE 1 END,
    window_start = CASE WHEN excluded.window_start - k.window_start < k.window_seconds * interval '1 second' THEN k.window_start ELSE excluded.window_start END,
    window_seconds = CASE WHEN excluded.window_start - k.window_start < k.window_seconds * interval '1 second' THEN k.window_seconds ELSE excluded.window_seconds END;

-- name: PruneKeyFailures :exec
DELETE FROM fieldseal.key_failures
WHERE subject = current_setting('fieldseal.subject', true) AND window_start <= now() - make_interval(secs => @window_seconds::int);

-- Idempotency keys (migration 00011). Every statement runs in the
-- transaction of the work the key belongs to.

-- name: ClaimIdempotencyKey :one
-- Claims the key for this transaction: a new key, or one whose answer is
-- older than 24 hours. A key claimed by a transaction still running makes
-- this wait (bounded by lock_timeout) until that one ends. No row: the
-- key has a live answer (GetIdempotencyAnswer).
-- (now() in VALUES, excluded's in DO UPDATE: Citus wants DO UPDATE's
-- functions immutable.)
INSERT INTO fieldseal.idempotency_keys AS k (key, fingerprint, status, created_at)
VALUES (@key::text, @fingerprint::bytea, 0, now())
ON CONFLICT (subject, key) DO UPDATE
    SET fingerprint = excluded.fingerprint, status = 0, header = '{}', body = '', created_at = excluded.created_at
    WHERE excluded.created_at - k.created_at >= interval '24 hours'
RETURNING true AS claimed;

-- name: PruneIdempotencyKeys :exec
DELETE FROM fieldseal.idempotency_keys WHERE subject = current_setting('fieldseal.subject', true) AND created_at <= now() - interval '24 hours';

-- name: GetIdempotencyAnswer :one
SELECT fingerprint, status, header, body FROM fieldseal.idempotency_keys WHERE subject = current_setting('fieldseal.subject', true) AND key = @key::text;

-- name: SaveIdempotencyAnswer :exec
UPDATE fieldseal.idempotency_keys SET status = @status::int, header = @header::jsonb, body = @body::bytea
WHERE subject = current_setting('fieldseal.subject', true) AND key = @key::text;

-- The audit trail (migration 00007): the trigger fills seq, at, prev_hash
-- and hash; the app supplies the rest.

-- name: AppendAuditEvent :execrows
-- VALUES, not SELECT: Citus would run an INSERT ... SELECT with no table
-- of the subject's in it through the coordinator, whose COPY to the
-- shard row-level security refuses.
INSERT INTO fieldseal.audit_events (action, outcome, record_id, record_count, token_id, client_id, request_id, client_addr)
VALUES (@action, @outcome, sqlc.narg(record_id), sqlc.narg(record_count),
        nullif(@token_id::text, ''), nullif(@client_id::text, ''), nullif(@request_id::text, ''), nullif(@client_addr::text, ''));

-- name: AppendAuditEventIfDecrypted :execrows
-- AppendAuditEvent only if the transaction has decrypted what the entry
-- records (fieldseal.decrypted, set by GetRecordDecrypted when it returns
-- a plaintext), so that the entry can go in the same round trip as the
-- read, before its outcome is known. On a single PostgreSQL only: on
-- Citus the setting stays on the worker (db/citus.go).
INSERT INTO fieldseal.audit_events (action, outcome, record_id, record_count, token_id, client_id, request_id, client_addr)
SELECT @action, @outcome, sqlc.narg(record_id), sqlc.narg(record_count),
       nullif(@token_id::text, ''), nullif(@client_id::text, ''), nullif(@request_id::text, ''), nullif(@client_addr::text, '')
WHERE current_setting('fieldseal.decrypted', true) = 'yes';

-- name: AppendAuditEvents :execrows
-- One entry per record of a batch, in the order given. The subject's row
-- (the batch registered its key first) is there for Citus, which then
-- runs the statement on the subject's shard (see AppendAuditEvent).
INSERT INTO fieldseal.audit_events (subject, action, outcome, record_id, token_id, client_id, request_id, client_addr)
SELECT s.subject, @action, @outcome, (@record_ids::uuid[])[i],
       nullif(@token_id::text, ''), nullif(@client_id::text, ''), nullif(@request_id::text, ''), nullif(@client_addr::text, '')
FROM fieldseal.subjects s
CROSS JOIN generate_series(1, cardinality(@record_ids::uuid[])) AS i
WHERE s.subject = current_setting('fieldseal.subject', true)
ORDER BY i;
