-- Stores transitions planned by cmdbus (see cmdbus::Transition), each only
-- where its guard holds: the command's row, its audit rows and its reply in
-- one statement. Nothing here decides what follows what.
-- Per transition ($1-$13): domain, id, guard lease id (NULL: a status
-- guard), guard wants the lease expired, guard status, new status, due in ms
-- (NULL: keep), attempts change (keep | reset | give_back), last error
-- (NULL: keep), reply status and body (NULL: none), finished, and whether
-- the ending attempt's RECEIVED leaves the row for an audit row.
-- Per event ($14-$18): its transition's position, event, details, add
-- due_at, held on the row (not written when the row holds its attempt).
-- $19: the RECEIVED event's name.
-- See audit_trail in 0002_storage_v2.sql for the events a row holds.
WITH input AS (
    SELECT *
    FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::bool[], $5::text[], $6::text[],
                $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[], $13::bool[])
        WITH ORDINALITY AS t(domain, command_id, lease_id, lease_expired, from_status, status,
                             due_ms, attempts, last_error, reply_status, reply_body, finished,
                             received_leaves_row, ord)
),
updated AS (
    UPDATE {schema}.commands c
    SET status = i.status,
        due_at = CASE WHEN i.due_ms IS NULL THEN c.due_at ELSE now() + i.due_ms * interval '1 millisecond' END,
        attempts = CASE i.attempts WHEN 'reset' THEN 0 WHEN 'give_back' THEN greatest(c.attempts - 1, 0) ELSE c.attempts END,
        last_error = COALESCE(i.last_error::jsonb, c.last_error),
        lease_id = NULL,
        lease_expires_at = NULL,
        received_at = CASE WHEN i.lease_id IS NULL THEN NULL ELSE c.received_at END,
        finished_at = CASE WHEN i.finished THEN now() END,
        updated_at = now()
    FROM input i
    WHERE c.domain = i.domain AND c.command_id = i.command_id
      AND CASE WHEN i.lease_id IS NULL THEN c.status = i.from_status AND c.lease_id IS NULL
               ELSE c.lease_id = i.lease_id AND (NOT i.lease_expired OR c.lease_expires_at <= now()) END
    RETURNING c.domain, c.command_id, c.command_type, c.correlation_id, c.reply_to, c.due_at, c.attempts,
              (i.lease_id IS NOT NULL) AS ended_lease,
              c.received_at, c.leased_by,
              CASE i.attempts WHEN 'give_back' THEN c.attempts + 1 ELSE c.attempts END AS leased_attempt,
              i.received_leaves_row, i.reply_status, i.reply_body, i.ord
),
events AS (
    SELECT * FROM unnest($14::bigint[], $15::text[], $16::text[], $17::bool[], $18::bool[])
        WITH ORDINALITY AS e(transition, event, details, with_due_at, on_row, n)
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt, at, details)
    SELECT domain, command_id, event, attempt, at, details
    FROM (
        SELECT u.ord, 0::bigint AS n, u.domain, u.command_id, $19::text AS event,
               u.leased_attempt AS attempt, u.received_at AS at,
               jsonb_build_object('worker', u.leased_by) AS details
        FROM updated u
        WHERE u.received_leaves_row AND u.received_at IS NOT NULL
        UNION ALL
        SELECT u.ord, e.n, u.domain, u.command_id, e.event, u.attempts, clock_timestamp(),
               CASE WHEN e.with_due_at THEN e.details::jsonb || jsonb_build_object('due_at', u.due_at)
                    ELSE e.details::jsonb END
        FROM updated u
        JOIN events e ON e.transition = u.ord
        WHERE NOT (e.on_row AND u.received_at IS NOT NULL)
    ) rows
    ORDER BY ord, n
),
-- A transition that ends a lease frees room under the command's limits
-- (locked in the order leases lock them, so the two never deadlock).
ended AS (
    SELECT t.domain, t.command_type, count(*) AS ended
    FROM updated u
    JOIN {schema}.limits t ON t.domain = u.domain AND t.command_type IN ('', u.command_type)
    WHERE u.ended_lease
    GROUP BY 1, 2
),
ended_locked AS (
    SELECT l.domain, l.command_type, e.ended
    FROM {schema}.limits l
    JOIN ended e ON e.domain = l.domain AND e.command_type = l.command_type
    ORDER BY l.domain, l.command_type
    FOR UPDATE OF l
),
freed AS (
    UPDATE {schema}.limits l
    SET in_flight = greatest(l.in_flight - n.ended, 0)
    FROM ended_locked n
    WHERE l.domain = n.domain AND l.command_type = n.command_type
),
replied AS (
    INSERT INTO {schema}.replies (domain, command_id, correlation_id, reply_to, status, body)
    SELECT domain, command_id, correlation_id, reply_to, reply_status, reply_body::jsonb
    FROM updated
    WHERE reply_status IS NOT NULL
)
SELECT i.ord, (u.command_id IS NOT NULL) AS applied
FROM input i
LEFT JOIN updated u ON u.ord = i.ord
ORDER BY i.ord
