-- The audit trail (migration 00007). The trigger fills seq, at, prev_hash
-- and hash; the app supplies the rest.

-- name: EnableAuditReading :exec
-- For audit:read requests only: lets this transaction read every subject's entries.
SELECT set_config('fieldseal.audit_reader', 'on', true);

-- name: ListAuditEvents :many
-- Keyset pagination on (at, subject, lane, seq); '' and NULL filters match all.
SELECT subject, lane, seq, at, action, outcome, record_id, record_count,
       coalesce(token_id, '')::text AS token_id, coalesce(client_id, '')::text AS client_id,
       coalesce(request_id, '')::text AS request_id, coalesce(client_addr, '')::text AS client_addr
FROM fieldseal.audit_events
WHERE (@subject::text = '' OR subject = @subject::text)
  AND (@action::text = '' OR action = @action::text)
  AND at >= @since AND at < @until
  AND (at, subject, lane, seq) > (@after_at, @after_subject::text, @after_lane::smallint, @after_seq::bigint)
ORDER BY at, subject, lane, seq
LIMIT @max_rows;

-- name: ListAuditChainPage :many
-- For `fieldseal audit verify` (admin connection): every entry with its
-- hashes, in chain order (each subject's lanes one after another), a page
-- at a time.
SELECT subject, lane, seq, at, action, outcome, record_id, record_count,
       coalesce(token_id, '')::text AS token_id, coalesce(client_id, '')::text AS client_id,
       coalesce(request_id, '')::text AS request_id, coalesce(client_addr, '')::text AS client_addr,
       prev_hash, hash
FROM fieldseal.audit_events
WHERE (@only_subject::text = '' OR subject = @only_subject::text)
  AND (subject, lane, seq) > (@after_subject::text, @after_lane::smallint, @after_seq::bigint)
ORDER BY subject, lane, seq
LIMIT @max_rows;

-- name: ListAuditHeadMismatches :many
-- For `fieldseal audit verify`: every lane whose newest entry is not its
-- head (migration 00012), or that has one without the other, and every
-- lane missing below a subject's highest (lanes are opened in order from
-- 0, so a gap is a lane deleted with its head). One statement, so one
-- snapshot: an entry and its head are written in one transaction.
-- A chain archived to its end (migration 00017) ends, here, at the entry
-- before its recorded start.
WITH e AS (
    SELECT DISTINCT ON (subject, lane) subject, lane, seq, hash FROM (
        SELECT subject, lane, seq, hash FROM fieldseal.audit_events
        WHERE @only_subject::text = '' OR subject = @only_subject::text
        UNION ALL
        SELECT subject, lane, seq - 1, prev_hash FROM fieldseal.audit_chain_starts
        WHERE @only_subject::text = '' OR subject = @only_subject::text
    ) x
    ORDER BY subject, lane, seq DESC
), h AS (
    SELECT subject, lane, seq, hash FROM fieldseal.audit_heads
    WHERE @only_subject::text = '' OR subject = @only_subject::text
), lanes AS (
    SELECT s.subject, g.lane::smallint AS lane
    FROM (SELECT subject, max(lane) AS top FROM h GROUP BY subject) s,
         generate_series(0, s.top) AS g(lane)
)
SELECT coalesce(h.subject, e.subject, l.subject)::text AS subject,
       coalesce(h.lane, e.lane, l.lane)::smallint AS lane,
       coalesce(h.seq, 0)::bigint AS head_seq, coalesce(e.seq, 0)::bigint AS last_seq
FROM h
FULL JOIN e ON e.subject = h.subject AND e.lane = h.lane
FULL JOIN lanes l ON l.subject = coalesce(h.subject, e.subject) AND l.lane = coalesce(h.lane, e.lane)
WHERE h.subject IS NULL OR e.subject IS NULL OR h.seq <> e.seq OR h.hash <> e.hash
ORDER BY 1, 2;

-- name: ListAuditHeadsForCheckpoint :many
-- For `fieldseal audit checkpoint`: every lane's head, and the moment, in
-- one snapshot.
SELECT current_database()::text AS database, now()::timestamptz AS at,
       subject, lane, seq, hash
FROM fieldseal.audit_heads
ORDER BY subject, lane;

-- name: ListCheckpointedEntries :many
-- For `fieldseal audit verify --checkpoint`: the entry each checkpointed
-- head names, if it is still there.
SELECT c.subject::text AS subject, c.lane::smallint AS lane, c.seq::bigint AS seq, e.hash
FROM (
    SELECT s.subject, l.lane, q.seq
    FROM unnest(@subjects::text[]) WITH ORDINALITY AS s(subject, i)
    JOIN unnest(@lanes::smallint[]) WITH ORDINALITY AS l(lane, i) ON l.i = s.i
    JOIN unnest(@seqs::bigint[]) WITH ORDINALITY AS q(seq, i) ON q.i = s.i
) c
LEFT JOIN fieldseal.audit_events e ON e.subject = c.subject AND e.lane = c.lane AND e.seq = c.seq
ORDER BY 1, 2;

-- name: ListAuditChainStarts :many
-- For `fieldseal audit verify`: where each archived chain now starts.
SELECT subject, lane, seq, prev_hash FROM fieldseal.audit_chain_starts
WHERE @only_subject::text = '' OR subject = @only_subject::text
ORDER BY subject, lane;

-- name: ListArchiveCuts :many
-- For `fieldseal audit archive`: each chain's newest entry older than
-- @before. The archive takes every entry up to it, so what leaves is a
-- prefix of each chain (an entry older than @before after a newer one,
-- the clock having stepped back, goes too).
SELECT DISTINCT ON (e.subject, e.lane) e.subject, e.lane, e.seq AS last_seq, e.hash AS last_hash,
       coalesce(s.seq, 1)::bigint AS first_seq,
       coalesce(s.prev_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)::bytea AS first_prev_hash
FROM fieldseal.audit_events e
LEFT JOIN fieldseal.audit_chain_starts s ON s.subject = e.subject AND s.lane = e.lane
WHERE e.at < @before
ORDER BY e.subject, e.lane, e.seq DESC;

-- name: ListChainEntries :many
-- For `fieldseal audit archive`: a page of one chain's entries up to a seq.
SELECT subject, lane, seq, at, action, outcome, record_id, record_count,
       coalesce(token_id, '')::text AS token_id, coalesce(client_id, '')::text AS client_id,
       coalesce(request_id, '')::text AS request_id, coalesce(client_addr, '')::text AS client_addr,
       prev_hash, hash
FROM fieldseal.audit_events
WHERE subject = @subject AND lane = @lane AND seq > @after_seq AND seq <= @last_seq
ORDER BY seq
LIMIT @max_rows;

-- name: DeleteArchivedEntries :execrows
DELETE FROM fieldseal.audit_events
WHERE subject = @subject AND lane = @lane AND seq <= @last_seq;

-- name: MoveChainStart :exec
-- now() in VALUES, excluded's in DO UPDATE: Citus wants DO UPDATE's
-- functions immutable.
INSERT INTO fieldseal.audit_chain_starts (subject, lane, seq, prev_hash, archived_at)
VALUES (@subject, @lane, @seq, @prev_hash, now())
ON CONFLICT (subject, lane) DO UPDATE SET seq = EXCLUDED.seq, prev_hash = EXCLUDED.prev_hash, archived_at = EXCLUDED.archived_at;

-- Token use (`fieldseal audit usage`, run by an admin: it reads every
-- subject's entries and the revocations). A decrypt is a record a read or
-- a keyed list opened (a list without the key is not audited).

-- name: UsageByToken :many
-- Each token's use of each subject between since and until.
SELECT e.subject, coalesce(e.token_id, '')::text AS token_id, coalesce(max(e.client_id), '')::text AS client_id,
       count(*)::bigint AS requests,
       coalesce(sum(CASE WHEN e.outcome = 'ok' AND e.action IN ('record.read', 'record.list') THEN coalesce(e.record_count, 1) END), 0)::bigint AS decrypts,
       count(*) FILTER (WHERE e.outcome <> 'ok')::bigint AS refusals,
       count(*) FILTER (WHERE e.outcome = 'wrong_key')::bigint AS wrong_keys,
       count(DISTINCT e.client_addr)::bigint AS addresses,
       min(e.at)::timestamptz AS first_seen, max(e.at)::timestamptz AS last_seen,
       coalesce(bool_or(EXISTS (SELECT 1 FROM fieldseal.revocations r WHERE r.jti = e.token_id AND r.created_at < e.at)), false)::boolean AS used_after_revocation
FROM fieldseal.audit_events e
WHERE e.at >= @since::timestamptz AND e.at < @until::timestamptz AND e.action <> 'token.revoke'
GROUP BY e.subject, coalesce(e.token_id, '')
ORDER BY e.subject, 2;

-- name: UsageBySubject :many
-- Each subject's use between since and until, and its decrypts between
-- baseline_since and since (the baseline).
SELECT e.subject,
       count(*) FILTER (WHERE e.at >= @since::timestamptz)::bigint AS requests,
       coalesce(sum(CASE WHEN e.at >= @since::timestamptz AND e.outcome = 'ok' AND e.action IN ('record.read', 'record.list') THEN coalesce(e.record_count, 1) END), 0)::bigint AS decrypts,
       count(*) FILTER (WHERE e.at >= @since::timestamptz AND e.outcome <> 'ok')::bigint AS refusals,
       count(*) FILTER (WHERE e.at >= @since::timestamptz AND e.outcome = 'wrong_key')::bigint AS wrong_keys,
       count(DISTINCT e.client_addr) FILTER (WHERE e.at >= @since::timestamptz)::bigint AS addresses,
       count(DISTINCT e.token_id) FILTER (WHERE e.at >= @since::timestamptz)::bigint AS tokens,
       min(e.at) FILTER (WHERE e.at >= @since::timestamptz)::timestamptz AS first_seen,
       max(e.at) FILTER (WHERE e.at >= @since::timestamptz)::timestamptz AS last_seen,
       coalesce(sum(CASE WHEN e.at < @since::timestamptz AND e.outcome = 'ok' AND e.action IN ('record.read', 'record.list') THEN coalesce(e.record_count, 1) END), 0)::bigint AS baseline_decrypts
FROM fieldseal.audit_events e
WHERE e.at >= @baseline_since::timestamptz AND e.at < @until::timestamptz AND e.action <> 'token.revoke'
GROUP BY e.subject
HAVING count(*) FILTER (WHERE e.at >= @since::timestamptz) > 0
ORDER BY e.subject;

-- name: AppendTokenRevocation :exec
-- The audit entry of a token that `fieldseal audit usage --revoke`
-- revoked, in the chain of the subject it was used for (set as the
-- transaction's subject).
-- client_id names the command; request_id holds why (the flags).
INSERT INTO fieldseal.audit_events (action, outcome, token_id, client_id, request_id)
VALUES ('token.revoke', 'ok', @token_id::text, 'fieldseal audit usage', @reason::text);
