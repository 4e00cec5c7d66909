SELECT domain, command_id, correlation_id, reply_to, status, body::text AS body, created_at
FROM {schema}.replies
WHERE domain = $1 AND command_id = $2
