-- Marks up to $2 unconsumed replies of queue $1 consumed and returns them.
WITH taken AS (
    SELECT domain, command_id
    FROM {schema}.replies
    WHERE reply_to = $1 AND consumed_at IS NULL
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.replies r
SET consumed_at = now()
FROM taken t
WHERE r.domain = t.domain AND r.command_id = t.command_id
RETURNING r.domain, r.command_id, r.correlation_id, r.reply_to, r.status, r.body::text AS body, r.created_at
