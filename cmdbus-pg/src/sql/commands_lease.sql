-- Leases up to $2 due commands of the domains $1 for $3 milliseconds,
-- counting the attempt, in one statement. The attempt's RECEIVED event is
-- received_at + leased_by on the row (see audit_trail in 0002_storage_v2.sql).
-- Each domain is walked in due order on its own (index range scan, no sort
-- of the backlog), then the oldest due across domains are taken.
WITH due AS (
    SELECT c.domain, c.command_id
    FROM unnest($1::text[]) AS d(domain)
    CROSS JOIN LATERAL (
        SELECT domain, command_id, due_at, seq
        FROM {schema}.commands
        WHERE status = 'PENDING' AND domain = d.domain AND due_at <= now()
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
    WHERE c.domain = due.domain AND c.command_id = due.command_id
    RETURNING c.domain, c.command_id, c.command_type, c.correlation_id, c.reply_to, c.payload,
              c.attempts, c.max_attempts, c.lease_id, c.lease_expires_at, c.created_at, c.due_at,
              c.seq, c.traceparent
)
SELECT domain, command_id, command_type, correlation_id, reply_to, payload::text AS payload,
       attempts, max_attempts, lease_id, lease_expires_at, created_at, traceparent
FROM leased
ORDER BY due_at, seq
