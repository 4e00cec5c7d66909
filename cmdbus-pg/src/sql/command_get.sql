SELECT domain, command_id, command_type, correlation_id, reply_to, status, attempts, max_attempts,
       payload::text AS payload, last_error::text AS last_error, created_at, updated_at, due_at,
       batch_id
FROM {schema}.commands
WHERE domain = $1 AND command_id = $2
