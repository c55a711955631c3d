-- Token revocations (migration 00006). Not subject-scoped: every instance
-- reads the whole list.

-- name: ListRevocations :many
SELECT coalesce(jti, '')::text AS jti, coalesce(subject, '')::text AS subject,
       coalesce(revoked_before, 'epoch')::timestamptz AS revoked_before, expires_at
FROM fieldseal.revocations
WHERE expires_at > now();

-- name: PruneRevocations :execrows
DELETE FROM fieldseal.revocations WHERE expires_at <= now();

-- name: RevokeTokenID :exec
-- Run by `fieldseal token revoke` over the admin connection.
INSERT INTO fieldseal.revocations (jti, expires_at) VALUES (@jti::text, @expires_at);

-- name: RevokeSubject :exec
INSERT INTO fieldseal.revocations (subject, revoked_before, expires_at) VALUES (@subject::text, now(), @expires_at);

-- name: NotifyRevocations :exec
SELECT pg_notify('fieldseal_revocations', '');
