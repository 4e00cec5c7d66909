-- The worker's heartbeat: pushes the expiry of every lease it still holds to
-- now + $4 milliseconds, in one statement, and returns those it still holds
-- (the caller learns which were lost). updated_at is left alone: a heartbeat
-- changes nothing an operator queries by.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS t(domain, command_id, lease_id)
)
UPDATE {schema}.commands c
SET lease_expires_at = now() + $4::bigint * interval '1 millisecond'
FROM input i
WHERE c.domain = i.domain AND c.command_id = i.command_id
  AND c.lease_id = i.lease_id AND c.status = 'IN_PROGRESS'
RETURNING c.domain, c.command_id
