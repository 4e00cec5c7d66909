-- Due PENDING commands per domain, counted up to $2 (a deeper backlog is
-- not walked), and the age of the oldest (seconds); paused ones are not
-- waiting for a worker. Each domain is walked on its own index range.
SELECT d.domain, s.due, extract(epoch FROM now() - s.oldest)::float8 AS oldest_age
FROM unnest($1::text[]) AS d(domain)
CROSS JOIN LATERAL (
    SELECT count(*) AS due, min(w.due_at) AS oldest
    FROM (
        SELECT c.due_at
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now()
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        LIMIT $2
    ) w
) s
WHERE s.due > 0
ORDER BY d.domain
