-- Stores one command, the single-send fast path (cheaper to plan and run
-- than the unnest form of commands_send.sql). Its SENT event is created_at.
-- $9: the channel to NOTIFY inside this transaction, or NULL to leave waking
-- to the caller (delivered at commit either way, never before).
-- $10 / $11: due at this instant / after these milliseconds (both NULL: now).
-- $12: priority.
WITH inserted AS (
    INSERT INTO {schema}.commands
        (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload, traceparent, due_at, priority)
    VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7::jsonb, $8,
            COALESCE($10::timestamptz, now() + COALESCE($11::bigint, 0) * interval '1 millisecond'), $12)
    ON CONFLICT (domain, command_id) DO NOTHING
    RETURNING domain, command_id
),
notified AS (
    SELECT pg_notify($9::text, domain) FROM inserted WHERE $9::text IS NOT NULL
)
SELECT (SELECT count(*) FROM inserted) = 1 AS inserted, (SELECT count(*) FROM notified) AS notified
