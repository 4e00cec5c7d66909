-- Stores one command with its SENT audit row (the single-send fast path:
-- cheaper to plan and run than the unnest form of commands_send.sql).
-- $9: the channel to NOTIFY inside this transaction, or NULL to leave waking
-- to the caller (delivered at commit either way, never before).
WITH inserted AS (
    INSERT INTO {schema}.commands
        (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload, traceparent)
    VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7::jsonb, $8)
    ON CONFLICT (domain, command_id) DO NOTHING
    RETURNING domain, command_id
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt)
    SELECT domain, command_id, 'SENT', 0 FROM inserted
),
notified AS (
    SELECT pg_notify($9::text, domain) FROM inserted WHERE $9::text IS NOT NULL
)
SELECT (SELECT count(*) FROM inserted) = 1 AS inserted, (SELECT count(*) FROM notified) AS notified
