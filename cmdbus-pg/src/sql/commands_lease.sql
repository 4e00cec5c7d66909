-- Leases up to $2 due commands of the domains $1 for $3 milliseconds,
-- oldest due first, then send order, counting the attempt, in one
-- statement: the common case, when no due command has a priority and no
-- limit applies. Otherwise it leases nothing and says so (needs_full), and
-- commands_lease_full.sql does the work: this one stays small enough for
-- PostgreSQL to reuse one plan instead of planning every lease (~1 ms).
-- The attempt's RECEIVED event is received_at + leased_by on the row (see
-- audit_trail in 0002_storage_v2.sql). Each domain is walked on its own
-- index range (no sort of the backlog); paused domains and types are
-- skipped. A worker of several domains uses commands_lease_domains.sql,
-- which locks only what it leases. commands_lease_head.sql starts the
-- statement, commands_lease_tail.sql ends it.
due AS (
    SELECT c.row_id, c.domain, c.command_id, 1 AS pick, c.priority, c.due_at, c.seq
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, domain, command_id, priority, due_at, seq
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now()
          AND NOT (SELECT needed FROM special)
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        -- For limits 1, 2, 4, … the limit is written in here (schema.rs,
        -- Lease::with_fixed_limits), so the plan is kept.
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.due_at, c.seq
    LIMIT $2
),
