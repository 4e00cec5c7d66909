-- Gives back leases a stopping worker never finished: PENDING, due now, the
-- unused attempt returned.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS t(domain, command_id, lease_id)
),
updated AS (
    UPDATE {schema}.commands c
    SET status = 'PENDING',
        attempts = greatest(c.attempts - 1, 0),
        due_at = now(),
        lease_id = NULL,
        lease_expires_at = NULL,
        leased_by = NULL,
        updated_at = now()
    FROM input i
    WHERE c.domain = i.domain AND c.command_id = i.command_id
      AND c.lease_id = i.lease_id AND c.status = 'IN_PROGRESS'
    RETURNING c.domain, c.command_id, c.attempts
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt)
    SELECT domain, command_id, 'RELEASED', attempts FROM updated
)
SELECT count(*) AS released FROM updated
