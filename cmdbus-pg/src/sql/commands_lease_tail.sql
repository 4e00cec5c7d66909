-- The end of both lease statements (commands_lease.sql,
-- commands_lease_full.sql): lease the rows `due` chose and locked, and
-- answer with them, when the next not-yet-due command is due, and whether
-- the common statement left the work to the full one (`special`).
leased AS (
    UPDATE {schema}.commands c
    SET status = 'IN_PROGRESS',
        attempts = c.attempts + 1,
        lease_id = gen_random_uuid(),
        lease_expires_at = now() + $3::bigint * interval '1 millisecond',
        leased_by = $4,
        received_at = now(),
        updated_at = now()
    FROM due
    -- By row address: the rows are locked by this statement, so their
    -- addresses hold, and a TID scan does not depend on the planner's guess
    -- of how many rows `due` has (a generic plan once hashed the table).
    WHERE c.ctid = ANY (ARRAY(SELECT row_id FROM due)) AND c.ctid = due.row_id
    RETURNING c.domain, c.command_id, c.command_type, c.correlation_id, c.reply_to, c.payload,
              c.attempts, c.max_attempts, c.lease_id, c.lease_expires_at, c.created_at,
              c.traceparent, due.pick, c.priority, c.due_at, c.seq, c.batch_id
),
{counted}next AS (
    SELECT (extract(epoch FROM min(n.due_at) - now()) * 1000)::bigint AS next_due_ms
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT due_at
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at > now()
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        LIMIT 1
    ) n
)
SELECT l.domain, l.command_id, l.command_type, l.correlation_id, l.reply_to, l.payload::text AS payload,
       l.attempts, l.max_attempts, l.lease_id, l.lease_expires_at, l.created_at, l.traceparent,
       l.batch_id,
       LEAST(next.next_due_ms, (SELECT ms FROM waits)) AS next_due_ms,
       (SELECT needed FROM special) AS needs_full,
       -- A lease is the one write a server crash may lose without harm, so
       -- its commit does not wait for the WAL flush (for this transaction
       -- only): lost, the command is still PENDING and is delivered again,
       -- as if the worker had stopped before leasing. The next synchronous
       -- commit of anyone (an outcome, a handler's transaction) makes it
       -- durable first: WAL is flushed in order.
       (SELECT set_config('synchronous_commit', 'off', true)) AS commit_unflushed
FROM next
LEFT JOIN leased l ON true
ORDER BY l.pick, l.priority DESC, l.due_at, l.seq
