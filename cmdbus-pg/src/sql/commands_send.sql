-- Stores a batch of commands (each SENT event is the row's created_at) in one statement.
-- Existing (domain, command_id) pairs are left untouched and reported; an id
-- given twice in one batch is stored from its first occurrence, and the later
-- ones are reported as duplicates.
-- $9: the channel to NOTIFY (once per domain) inside this transaction, or
-- NULL to leave waking to the caller. $10 / $11: each command due at this
-- instant / after these milliseconds (both NULL: now); $12: priorities.
WITH input AS (
    SELECT t.*, ord = min(ord) OVER (PARTITION BY domain, command_id) AS first
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[],
                $10::timestamptz[], $11::bigint[], $12::smallint[])
        WITH ORDINALITY AS t(domain, command_id, command_type, correlation_id, reply_to, max_attempts, payload,
                             traceparent, due_at, delay_ms, priority, ord)
),
inserted AS (
    INSERT INTO {schema}.commands
        (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload, traceparent, due_at, priority)
    SELECT domain, command_id, command_type, correlation_id, reply_to, 'PENDING', max_attempts, payload::jsonb, traceparent,
           COALESCE(due_at, now() + COALESCE(delay_ms, 0) * interval '1 millisecond'), priority
    FROM input
    WHERE first
    ORDER BY ord
    ON CONFLICT (domain, command_id) DO NOTHING
    RETURNING domain, command_id
),
notified AS (
    SELECT pg_notify($9::text, domain) FROM (SELECT DISTINCT domain FROM inserted) d
    WHERE $9::text IS NOT NULL
)
SELECT i.command_id, (n.command_id IS NOT NULL AND i.first) AS inserted, (SELECT count(*) FROM notified) AS notified
FROM input i
LEFT JOIN inserted n ON n.domain = i.domain AND n.command_id = i.command_id
ORDER BY i.ord
