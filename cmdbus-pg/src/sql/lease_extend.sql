-- Pushes one held lease's expiry to now + $4 milliseconds.
UPDATE {schema}.commands
SET lease_expires_at = now() + $4::bigint * interval '1 millisecond', updated_at = now()
WHERE domain = $1 AND command_id = $2 AND lease_id = $3 AND status = 'IN_PROGRESS'
RETURNING lease_expires_at
