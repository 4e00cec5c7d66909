-- Records a batch of outcomes, each only under its current lease: status,
-- audit rows and replies in one statement.
-- kind: completed | failed | retry | tsq; reply: the reply body (completed,
-- failed); failure: the recorded error; reason: why it entered the TSQ.
WITH input AS (
    SELECT *
    FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[])
        WITH ORDINALITY AS t(domain, command_id, lease_id, attempt, kind, reply, failure, delay_ms, reason, ord)
),
updated AS (
    UPDATE {schema}.commands c
    SET status = CASE i.kind
            WHEN 'completed' THEN 'COMPLETED'
            WHEN 'failed' THEN 'FAILED'
            WHEN 'retry' THEN 'PENDING'
            ELSE 'IN_TROUBLESHOOTING_QUEUE' END,
        due_at = CASE WHEN i.kind = 'retry' THEN now() + i.delay_ms * interval '1 millisecond' ELSE c.due_at END,
        last_error = COALESCE(i.failure::jsonb, c.last_error),
        lease_id = NULL,
        lease_expires_at = NULL,
        leased_by = NULL,
        updated_at = now()
    FROM input i
    WHERE c.domain = i.domain AND c.command_id = i.command_id
      AND c.lease_id = i.lease_id AND c.status = 'IN_PROGRESS'
    RETURNING c.domain, c.command_id, c.correlation_id, c.reply_to, c.due_at,
              i.kind, i.reply, i.failure, i.delay_ms, i.reason, i.attempt, i.ord
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt, details)
    SELECT u.domain, u.command_id, e.event, u.attempt, e.details
    FROM updated u
    CROSS JOIN LATERAL (
        SELECT 1 AS n, 'COMPLETED' AS event, '{}'::jsonb AS details WHERE u.kind = 'completed'
        UNION ALL
        SELECT 1, 'FAILED', u.failure::jsonb WHERE u.kind <> 'completed'
        UNION ALL
        SELECT 2, 'RETRY_SCHEDULED', jsonb_build_object('delay_ms', u.delay_ms, 'due_at', u.due_at)
        WHERE u.kind = 'retry'
        UNION ALL
        SELECT 2, 'RETRY_EXHAUSTED', '{}'::jsonb WHERE u.kind = 'tsq' AND u.reason = 'retries_exhausted'
        UNION ALL
        SELECT 3, 'MOVED_TO_TSQ', jsonb_build_object('reason', u.reason) WHERE u.kind = 'tsq'
    ) e
    ORDER BY u.ord, e.n
),
replied AS (
    INSERT INTO {schema}.replies (domain, command_id, correlation_id, reply_to, status, body)
    SELECT domain, command_id, correlation_id, reply_to,
           CASE kind WHEN 'completed' THEN 'SUCCESS' ELSE 'FAILED' END, reply::jsonb
    FROM updated
    WHERE kind IN ('completed', 'failed')
)
SELECT i.ord, (u.command_id IS NOT NULL) AS recorded, u.reply_to
FROM input i
LEFT JOIN updated u ON u.ord = i.ord
ORDER BY i.ord
