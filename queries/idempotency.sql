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
