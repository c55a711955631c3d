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
