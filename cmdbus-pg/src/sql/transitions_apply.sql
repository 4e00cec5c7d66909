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
-- $19: the RECEIVED event's name. $20: the channel that wakes workers for
-- a batch completion command stored here (delivered at commit).
-- See audit_trail in 0002_storage_v2.sql for the events a row holds.
-- The LIMIT on the input limits nothing: it makes PostgreSQL's reusable
-- (generic) plan expect one transition instead of unnest's guess of ten.
-- With ten, a table still small when a connection first plans this statement
-- (a new schema) was joined by hashing a sequential scan of it, and the plan
-- was kept as the table grew, until the table is analyzed again (never, with
-- autovacuum off): 1 ms per lone completion on 5k rows. With one, each row
-- is found by its primary key.
WITH input AS (
    SELECT *
    FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::bool[], $5::text[], $6::text[],
                $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[], $13::bool[])
        WITH ORDINALITY AS t(domain, command_id, lease_id, lease_expired, from_status, status,
                             due_ms, attempts, last_error, reply_status, reply_body, finished,
                             received_leaves_row, ord)
    LIMIT cardinality($2::uuid[])
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
              i.received_leaves_row, i.reply_status, i.reply_body, i.ord,
              c.batch_id, c.status, i.finished
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
-- batches:begin (cut from the statement used when no transition can end a
-- batch member: see Statements::new)
-- A member that ends counts down its batch; the transition that ends the
-- last one stores the batch's completion command. Batch rows are locked in
-- id order, and updated in place, so two statements ending the last two
-- members serialize and exactly one sees zero.
batch_ended AS (
    SELECT batch_id, count(*) AS n,
           count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
           count(*) FILTER (WHERE status = 'FAILED') AS failed,
           count(*) FILTER (WHERE status = 'CANCELED') AS canceled,
           coalesce(array_agg(command_id ORDER BY ord) FILTER (WHERE status = 'COMPLETED'), '{}') AS completed_ids,
           coalesce(array_agg(command_id ORDER BY ord) FILTER (WHERE status = 'FAILED'), '{}') AS failed_ids,
           coalesce(array_agg(command_id ORDER BY ord) FILTER (WHERE status = 'CANCELED'), '{}') AS canceled_ids
    FROM updated
    WHERE batch_id IS NOT NULL AND finished
    GROUP BY batch_id
),
batch_locked AS (
    SELECT b.batch_id, e.n, e.completed, e.failed, e.canceled,
           e.completed_ids, e.failed_ids, e.canceled_ids
    FROM {schema}.batches b
    JOIN batch_ended e ON e.batch_id = b.batch_id
    ORDER BY b.batch_id
    FOR UPDATE OF b
),
counted AS (
    UPDATE {schema}.batches b
    SET remaining = b.remaining - l.n,
        completed = b.completed + l.completed,
        failed = b.failed + l.failed,
        canceled = b.canceled + l.canceled,
        finished_at = CASE WHEN b.remaining = l.n THEN now() END,
        -- Member ids only where asked for (the row grows with the batch).
        completed_ids = CASE WHEN b.member_ids THEN coalesce(b.completed_ids, '{}') || l.completed_ids END,
        failed_ids = CASE WHEN b.member_ids THEN coalesce(b.failed_ids, '{}') || l.failed_ids END,
        canceled_ids = CASE WHEN b.member_ids THEN coalesce(b.canceled_ids, '{}') || l.canceled_ids END
    FROM batch_locked l
    WHERE b.batch_id = l.batch_id
    RETURNING b.batch_id, b.total, b.remaining, b.completed, b.failed, b.canceled, b.completion,
              b.member_ids, b.completed_ids, b.failed_ids, b.canceled_ids
),
fired AS (
    INSERT INTO {schema}.commands
        (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload, traceparent, due_at, priority)
    SELECT c.completion ->> 'domain', (c.completion ->> 'command_id')::uuid, c.completion ->> 'command_type',
           (c.completion ->> 'correlation_id')::uuid, c.completion ->> 'reply_to', 'PENDING',
           (c.completion ->> 'max_attempts')::integer,
           (c.completion -> 'payload') || jsonb_build_object('batch', jsonb_build_object(
               'batch_id', c.batch_id, 'total', c.total, 'completed', c.completed,
               'failed', c.failed, 'canceled', c.canceled,
               'members', CASE WHEN c.member_ids THEN jsonb_build_object(
                   'completed', to_jsonb(c.completed_ids), 'failed', to_jsonb(c.failed_ids),
                   'canceled', to_jsonb(c.canceled_ids)) END)),
           c.completion ->> 'traceparent', now(), (c.completion ->> 'priority')::smallint
    FROM counted c
    WHERE c.remaining = 0 AND c.completion IS NOT NULL
    ON CONFLICT (domain, command_id) DO NOTHING
    RETURNING domain
),
fired_woken AS (
    SELECT pg_notify($20::text, domain) FROM (SELECT DISTINCT domain FROM fired) d
),
-- batches:end
replied AS (
    INSERT INTO {schema}.replies (domain, command_id, correlation_id, reply_to, status, body)
    SELECT domain, command_id, correlation_id, reply_to, reply_status, reply_body::jsonb
    FROM updated
    WHERE reply_status IS NOT NULL
)
-- The positions of the transitions applied, as one array: joining them back
-- to the input was planned as a nested loop over both (the generic plan
-- expects one row each), quadratic in the batch: 13 of 19 ms for 256.
SELECT coalesce(array_agg(u.ord), '{}') AS applied /* batches */, (SELECT count(*) FROM fired_woken) AS completions
FROM updated u
