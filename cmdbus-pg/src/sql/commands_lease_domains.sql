-- The common lease (commands_lease.sql) for a worker of several domains:
-- up to $2 due commands of the domains $1 for $3 milliseconds, oldest due
-- first, then send order. Each domain's index range gives its first due
-- commands *without* locking them; only the rows leased are locked, in lease
-- order, skipping those another worker holds. Locking inside each domain's
-- walk would hold up to $2 rows per domain for the statement and hide from
-- other workers commands this one does not lease. Twice $2 candidates per
-- domain leave room for rows other workers are leasing at this moment.
-- commands_lease_head.sql starts the statement, commands_lease_tail.sql
-- ends it.
candidates AS (
    SELECT c.row_id
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id
        FROM {schema}.commands c
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now()
          AND NOT (SELECT needed FROM special)
          AND NOT EXISTS (SELECT 1 FROM {schema}.pauses p
                          WHERE p.domain = c.domain AND p.command_type IN ('', c.command_type))
        ORDER BY due_at, seq
        LIMIT 2 * $2
    ) c
),
due AS (
    -- A row leased and committed by another worker since this statement's
    -- snapshot is rechecked on its new version, which fails both the address
    -- and the status test: it is skipped, not leased twice.
    SELECT c.ctid AS row_id, c.domain, c.command_id, 1 AS pick, c.priority, c.due_at, c.seq
    FROM {schema}.commands c
    WHERE c.ctid = ANY (ARRAY(SELECT row_id FROM candidates))
      AND c.status = 'PENDING' AND c.due_at <= now()
    ORDER BY c.due_at, c.seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
