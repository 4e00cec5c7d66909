-- Milliseconds until the earliest PENDING command of the domains is due.
SELECT (extract(epoch FROM min(due_at) - now()) * 1000)::bigint AS due_in_ms
FROM {schema}.commands
WHERE status = 'PENDING' AND domain = ANY($1::text[])
