-- Stores transitions planned by cmdbus (see cmdbus::Transition), each only
-- where its guard holds: the command's row, its audit rows and its reply in
-- one statement. Nothing here decides what follows what.
-- Per transition ($1-$12): domain, id, guard lease id (NULL: a status
-- guard), guard wants the lease expired, guard status, new status, due in ms
-- (NULL: keep), attempts change (keep | reset | give_back), last error
-- (NULL: keep), reply status and body (NULL: none), finished.
-- Per event ($13-$16): its transition's position, event, details, add due_at.
WITH input AS (
    SELECT *
    FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::bool[], $5::text[], $6::text[],
                $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[])
        WITH ORDINALITY AS t(domain, command_id, lease_id, lease_expired, from_status, status,
                             due_ms, attempts, last_error, reply_status, reply_body, finished, ord)
),
updated AS (
    UPDATE {schema}.commands c
    SET status = i.status,
        due_at = CASE WHEN i.due_ms IS NULL THEN c.due_at ELSE now() + i.due_ms * interval '1 millisecond' END,
        attempts = CASE i.attempts WHEN 'reset' THEN 0 WHEN 'give_back' THEN greatest(c.attempts - 1, 0) ELSE c.attempts END,
        last_error = COALESCE(i.last_error::jsonb, c.last_error),
        lease_id = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM input i
    WHERE c.domain = i.domain AND c.command_id = i.command_id
      AND CASE WHEN i.lease_id IS NULL THEN c.status = i.from_status AND c.lease_id IS NULL
               ELSE c.lease_id = i.lease_id AND (NOT i.lease_expired OR c.lease_expires_at <= now()) END
    RETURNING c.domain, c.command_id, c.correlation_id, c.reply_to, c.due_at, c.attempts,
              i.reply_status, i.reply_body, i.ord
),
events AS (
    SELECT * FROM unnest($13::bigint[], $14::text[], $15::text[], $16::bool[])
        WITH ORDINALITY AS e(transition, event, details, with_due_at, n)
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt, details)
    SELECT u.domain, u.command_id, e.event, u.attempts,
           CASE WHEN e.with_due_at THEN e.details::jsonb || jsonb_build_object('due_at', u.due_at)
                ELSE e.details::jsonb END
    FROM updated u
    JOIN events e ON e.transition = u.ord
    ORDER BY e.n
),
replied AS (
    INSERT INTO {schema}.replies (domain, command_id, correlation_id, reply_to, status, body)
    SELECT domain, command_id, correlation_id, reply_to, reply_status, reply_body::jsonb
    FROM updated
    WHERE reply_status IS NOT NULL
)
SELECT i.ord, (u.command_id IS NOT NULL) AS applied
FROM input i
LEFT JOIN updated u ON u.ord = i.ord
ORDER BY i.ord
