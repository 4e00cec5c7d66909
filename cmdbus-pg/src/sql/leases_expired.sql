-- Leases that ran out before their worker recorded an outcome, oldest
-- first. Read only: taking one back is a transition guarded by the lease.
SELECT domain, command_id, lease_id, command_type, attempts, max_attempts
FROM {schema}.commands
WHERE status = 'IN_PROGRESS' AND lease_expires_at <= now()
ORDER BY lease_expires_at
LIMIT $1
