-- Tracked batches with their members by status (index commands_batch);
-- the caller appends which batches (by id, or a page of them).
SELECT b.batch_id, b.total, b.created_at, b.finished_at,
       b.completion ->> 'domain' AS completion_domain,
       (b.completion ->> 'command_id')::uuid AS completion_id,
       (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
        FROM (SELECT status, count(*) AS n
              FROM {schema}.commands
              WHERE batch_id = b.batch_id
              GROUP BY status) s) AS members
FROM {schema}.batches b
