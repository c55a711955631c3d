-- Wrong-key throttling (migration 00005). window_seconds is the window's
-- length; a row whose window has passed counts for nothing.

-- name: GetKeyFailures :one
-- The current window's failures of one token and of the whole subject, and
-- when the later of the two windows ends.
SELECT
    coalesce(sum(failures) FILTER (WHERE token_id = @token_id::text), 0)::int AS token_failures,
    coalesce(sum(failures), 0)::int AS subject_failures,
    coalesce(max(window_start) FILTER (WHERE token_id = @token_id::text), now())::timestamptz AS token_window_start,
    coalesce(max(window_start), now())::timestamptz AS subject_window_start
FROM fieldseal.key_failures
WHERE window_start > now() - make_interval(secs => @window_seconds::int);

-- name: RecordKeyFailure :exec
INSERT INTO fieldseal.key_failures AS k (token_id, window_start, failures)
VALUES (@token_id::text, now(), 1)
ON CONFLICT (subject, token_id) DO UPDATE SET
    failures = CASE WHEN k.window_start > now() - make_interval(secs => @window_seconds::int) THEN k.failures + 1 ELSE 1 END,
    window_start = CASE WHEN k.window_start > now() - make_interval(secs => @window_seconds::int) THEN k.window_start ELSE now() END;

-- name: PruneKeyFailures :exec
DELETE FROM fieldseal.key_failures
WHERE window_start <= now() - make_interval(secs => @window_seconds::int);
