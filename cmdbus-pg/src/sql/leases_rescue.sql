-- Returns expired leases to PENDING (the attempt stays counted), or to the
-- troubleshooting queue when it was the last attempt.
WITH expired AS (
    SELECT domain, command_id
    FROM {schema}.commands
    WHERE status = 'IN_PROGRESS' AND lease_expires_at <= now()
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
),
updated AS (
    UPDATE {schema}.commands c
    SET status = CASE WHEN c.attempts >= c.max_attempts THEN 'IN_TROUBLESHOOTING_QUEUE' ELSE 'PENDING' END,
        last_error = CASE WHEN c.attempts >= c.max_attempts THEN $1::jsonb ELSE c.last_error END,
        due_at = now(),
        lease_id = NULL,
        lease_expires_at = NULL,
        leased_by = NULL,
        updated_at = now()
    FROM expired e
    WHERE c.domain = e.domain AND c.command_id = e.command_id
    RETURNING c.domain, c.command_id, c.attempts, c.status
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt, details)
    SELECT u.domain, u.command_id, e.event, u.attempts, e.details
    FROM updated u
    CROSS JOIN LATERAL (
        SELECT 1 AS n, 'LEASE_EXPIRED' AS event, '{}'::jsonb AS details
        UNION ALL
        SELECT 2, 'RETRY_EXHAUSTED', '{}'::jsonb WHERE u.status = 'IN_TROUBLESHOOTING_QUEUE'
        UNION ALL
        SELECT 3, 'MOVED_TO_TSQ', jsonb_build_object('reason', 'lease_expired')
        WHERE u.status = 'IN_TROUBLESHOOTING_QUEUE'
    ) e
    ORDER BY u.command_id, e.n
)
SELECT count(*) AS rescued FROM updated
