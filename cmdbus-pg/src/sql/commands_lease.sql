-- Leases up to $2 due commands of the domains $1 for $3 milliseconds,
-- oldest due first, then send order, counting the attempt, in one
-- statement: the common case, when no due command has a priority and no
-- limit applies. Otherwise it leases nothing and says so (needs_full), and
-- commands_lease_full.sql does the work: this one stays small enough for
-- PostgreSQL to reuse one plan instead of planning every lease (~1 ms).
-- The attempt's RECEIVED event is received_at + leased_by on the row (see
-- audit_trail in 0002_storage_v2.sql). Each domain is walked on its own
-- index range (no sort of the backlog); paused domains and types are
-- skipped. Every row also says in how many ms the next not-yet-due command
-- of the domains is due; when nothing is leased, one row carries only that.
WITH special AS (
    SELECT EXISTS (SELECT 1 FROM {schema}.limits WHERE domain = ANY($1::text[]))
        OR EXISTS (SELECT 1 FROM {schema}.commands
                   WHERE status = 'PENDING' AND priority <> 0 AND domain = ANY($1::text[]))
        AS needed
),
due AS (
    SELECT c.row_id, c.domain, c.command_id, c.due_at, c.seq
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, domain, command_id, due_at, seq
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now()
          AND NOT (SELECT needed FROM special)
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.due_at, c.seq
    LIMIT $2
),
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
              c.traceparent, c.due_at, c.seq
),
next AS (
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
       next.next_due_ms, (SELECT needed FROM special) AS needs_full
FROM next
LEFT JOIN leased l ON true
ORDER BY l.due_at, l.seq
