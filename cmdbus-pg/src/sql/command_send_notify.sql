-- command_send.sql that also wakes workers from inside the transaction
-- (delivered at its commit): used while sends are rare, when it saves the
-- separate NOTIFY round trip and its cost at commit does not matter.
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
    SELECT pg_notify($9, domain) FROM inserted
)
SELECT (SELECT count(*) FROM inserted) = 1 AS inserted, (SELECT count(*) FROM notified) AS notified
