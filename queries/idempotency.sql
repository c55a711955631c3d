-- Idempotency keys (migration 00011). Every statement runs in the
-- transaction of the work the key belongs to.

-- name: ClaimIdempotencyKey :one
-- Claims the key for this transaction: a new key, or one whose answer is
-- older than 24 hours. A key claimed by a transaction still running makes
-- this wait (bounded by lock_timeout) until that one ends. No row: the
-- key has a live answer (GetIdempotencyAnswer).
INSERT INTO fieldseal.idempotency_keys AS k (key, fingerprint, status)
VALUES (@key::text, @fingerprint::bytea, 0)
ON CONFLICT (subject, key) DO UPDATE
    SET fingerprint = excluded.fingerprint, status = 0, header = '{}', body = '', created_at = now()
    WHERE k.created_at <= now() - interval '24 hours'
RETURNING true AS claimed;

-- name: PruneIdempotencyKeys :exec
DELETE FROM fieldseal.idempotency_keys WHERE created_at <= now() - interval '24 hours';

-- name: GetIdempotencyAnswer :one
SELECT fingerprint, status, header, body FROM fieldseal.idempotency_keys WHERE key = @key::text;

-- name: SaveIdempotencyAnswer :exec
UPDATE fieldseal.idempotency_keys SET status = @status::int, header = @header::jsonb, body = @body::bytea
WHERE key = @key::text;
