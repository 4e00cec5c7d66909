-- Due PENDING commands per domain and the age of the oldest (seconds);
-- paused ones are not waiting for a worker.
SELECT domain, count(*) AS due, extract(epoch FROM now() - min(due_at))::float8 AS oldest_age
FROM {schema}.commands c
WHERE status = 'PENDING' AND due_at <= now() AND domain = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                  WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
GROUP BY domain
ORDER BY domain
