-- Due PENDING commands per domain and the age of the oldest (seconds).
SELECT domain, count(*) AS due, extract(epoch FROM now() - min(due_at))::float8 AS oldest_age
FROM {schema}.commands
WHERE status = 'PENDING' AND due_at <= now() AND domain = ANY($1::text[])
GROUP BY domain
ORDER BY domain
