-- Milliseconds until the earliest PENDING command of the domains is due
-- (negative when one is due already); one index probe per domain.
SELECT (extract(epoch FROM min(n.due_at) - now()) * 1000)::bigint AS due_in_ms
FROM unnest($1::text[]) AS d(domain)
CROSS JOIN LATERAL (
    SELECT due_at
    FROM {schema}.commands
    WHERE status = 'PENDING' AND domain = d.domain
    ORDER BY due_at
    LIMIT 1
) n
