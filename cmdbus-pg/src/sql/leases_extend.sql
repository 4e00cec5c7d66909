-- The worker's heartbeat: pushes the expiry of every lease it still holds to
-- now + $4 milliseconds, in one statement, and returns those it still holds
-- (the caller learns which were lost). updated_at is left alone: a heartbeat
-- changes nothing an operator queries by.
-- The LIMIT limits nothing: see transitions_apply.sql.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS t(domain, command_id, lease_id)
    LIMIT cardinality($2::uuid[])
)
UPDATE {schema}.commands c
SET lease_expires_at = now() + $4::bigint * interval '1 millisecond'
FROM input i
-- A row holds a lease only while IN_PROGRESS (commands_lease_check), so
-- the lease id is the whole guard (a status condition here let the planner
-- walk the status index instead of the key).
WHERE c.domain = i.domain AND c.command_id = i.command_id AND c.lease_id = i.lease_id
RETURNING c.domain, c.command_id
