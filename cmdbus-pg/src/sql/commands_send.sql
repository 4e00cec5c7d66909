-- Stores a batch of commands (each SENT event is the row's created_at) in one statement.
-- Existing (domain, command_id) pairs are left untouched and reported; an id
-- given twice in one batch is stored from its first occurrence, and the later
-- ones are reported as duplicates.
-- $9: the channel to NOTIFY (once per domain) inside this transaction, or
-- NULL to leave waking to the caller. $10 / $11: each command due at this
-- instant / after these milliseconds (both NULL: now); $12: priorities.
-- $13 / $14 / $15: a tracked batch's id, completion command and whether it
-- lists member ids (NULL for a plain send): the commands stored become its
-- members, counted in its row, unless the batch exists already (then
-- nothing is stored).
WITH input AS (
    SELECT t.*, ord = min(ord) OVER (PARTITION BY domain, command_id) AS first
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[],
                $10::timestamptz[], $11::bigint[], $12::smallint[])
        WITH ORDINALITY AS t(domain, command_id, command_type, correlation_id, reply_to, max_attempts, payload,
                             traceparent, due_at, delay_ms, priority, ord)
),
existing_batch AS (
    SELECT 1 FROM {schema}.batches WHERE batch_id = $13::uuid
),
inserted AS (
    INSERT INTO {schema}.commands
        (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload, traceparent, due_at, priority,
         batch_id)
    SELECT domain, command_id, command_type, correlation_id, reply_to, 'PENDING', max_attempts, payload::jsonb, traceparent,
           COALESCE(due_at, now() + COALESCE(delay_ms, 0) * interval '1 millisecond'), priority, $13::uuid
    FROM input
    WHERE first AND NOT EXISTS (SELECT 1 FROM existing_batch)
    ORDER BY ord
    ON CONFLICT (domain, command_id) DO NOTHING
    RETURNING domain, command_id
),
opened AS (
    INSERT INTO {schema}.batches (batch_id, total, remaining, completion, member_ids)
    SELECT $13::uuid, count(*), count(*), $14::jsonb, coalesce($15::bool, false)
    FROM inserted
    WHERE $13::uuid IS NOT NULL
    HAVING count(*) > 0
),
notified AS (
    SELECT pg_notify($9::text, domain) FROM (SELECT DISTINCT domain FROM inserted) d
    WHERE $9::text IS NOT NULL
)
SELECT i.command_id, (n.command_id IS NOT NULL AND i.first) AS inserted, (SELECT count(*) FROM notified) AS notified,
       EXISTS (SELECT 1 FROM existing_batch) AS batch_existed
FROM input i
LEFT JOIN inserted n ON n.domain = i.domain AND n.command_id = i.command_id
ORDER BY i.ord
