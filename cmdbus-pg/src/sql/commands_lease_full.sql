-- The full lease, when priorities or limits apply (commands_lease.sql says
-- when; commands_lease_tail.sql ends both): up to $2 due commands of the domains $1 for $3 milliseconds,
-- counting the attempt, in one statement: the $5 oldest due whatever their
-- priority (so low priorities never starve; only asked for when some due
-- command has a priority), then the rest by priority, due time, send order. The attempt's RECEIVED event is received_at +
-- leased_by on the row (see audit_trail in 0002_storage_v2.sql).
-- Limited domains and types (limits, usually empty) take at most their
-- room. Each domain is walked on its own index range (no sort of the backlog):
-- priority-0 commands through commands_due_idx, the others through
-- commands_priority_idx (empty when no one sets a priority). Paused domains
-- and types (pauses, usually empty) are skipped. Every row also says in how
-- many ms the next not-yet-due command of the domains is due, so an idle
-- worker sleeps exactly that long; when nothing is leased, one row carries
-- only that.
WITH special AS (
    SELECT false AS needed
),
held_limits AS (
    -- Locked for the statement: leases of a limited target take turns, and
    -- each sees the in_flight and tokens the one before it left.
    SELECT domain, command_type, per_second, available,
           LEAST(COALESCE(max_in_flight - in_flight, 2147483647),
                 COALESCE(floor(available)::bigint, 2147483647)) AS room
    FROM (
        SELECT domain, command_type, max_in_flight, in_flight, per_second,
               LEAST(greatest(per_second, 1),
                     tokens + extract(epoch FROM now() - refilled_at) * per_second) AS available
        FROM {schema}.limits
        WHERE domain = ANY($1::text[])
        ORDER BY domain, command_type  -- one lock order everywhere: no deadlocks
        FOR UPDATE
    ) l
),
prioritized AS (
    SELECT c.row_id, c.domain, c.command_id, c.command_type, c.priority, c.due_at, c.seq
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, domain, command_id, command_type, priority, due_at, seq
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now() AND priority <> 0
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY priority DESC, due_at, seq
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) c
),
oldest AS (
    SELECT c.row_id, c.domain, c.command_id, c.command_type, c.priority, c.due_at, c.seq
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, domain, command_id, command_type, priority, due_at, seq
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now()
          -- Without prioritized commands due order is priority order already.
          AND EXISTS (SELECT 1 FROM prioritized)
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        LIMIT $5
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.due_at, c.seq
    LIMIT $5
),
unprioritized AS (
    SELECT c.row_id, c.domain, c.command_id, c.command_type, c.priority, c.due_at, c.seq
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, domain, command_id, command_type, priority, due_at, seq
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now() AND priority = 0
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) c
),
ranked AS (
    SELECT * FROM prioritized
    UNION ALL
    SELECT * FROM unprioritized
),
picked AS (
    -- A command in both candidate sets counts as oldest-first (pick 0).
    SELECT DISTINCT ON (domain, command_id)
           row_id, domain, command_id, command_type, pick, priority, due_at, seq
    FROM (
        SELECT row_id, domain, command_id, command_type, 0 AS pick, priority, due_at, seq FROM oldest
        UNION ALL
        SELECT row_id, domain, command_id, command_type, 1, priority, due_at, seq FROM ranked
    ) both_sets
    ORDER BY domain, command_id, pick
),
due AS (
    (SELECT row_id, domain, command_id, command_type, pick, priority, due_at, seq
     FROM picked
     WHERE NOT EXISTS (SELECT 1 FROM held_limits)
     ORDER BY pick, priority DESC, due_at, seq
     LIMIT $2)
    UNION ALL
    -- With limits, each limited type and domain takes at most its room, in
    -- lease order.
    (SELECT row_id, domain, command_id, command_type, pick, priority, due_at, seq
     FROM (
         SELECT p.*,
                row_number() OVER (PARTITION BY p.domain, p.command_type
                                   ORDER BY p.pick, p.priority DESC, p.due_at, p.seq) AS type_rank,
                row_number() OVER (PARTITION BY p.domain
                                   ORDER BY p.pick, p.priority DESC, p.due_at, p.seq) AS domain_rank
         FROM picked p
         WHERE EXISTS (SELECT 1 FROM held_limits)
     ) r
     WHERE NOT EXISTS (SELECT 1 FROM held_limits t
                       WHERE t.domain = r.domain AND t.command_type = r.command_type AND r.type_rank > t.room)
       AND NOT EXISTS (SELECT 1 FROM held_limits t
                       WHERE t.domain = r.domain AND t.command_type = '' AND r.domain_rank > t.room)
     ORDER BY pick, priority DESC, due_at, seq
     LIMIT $2)
),
