-- The start of the common lease statement, for workers of one domain
-- (commands_lease.sql) and of several (commands_lease_domains.sql): whether
-- a due command has a priority or a limit applies, in which case the common
-- statement leases nothing and commands_lease_full.sql does the work; and
-- no rate limit to wait for.
WITH special AS (
    SELECT EXISTS (SELECT 1 FROM {schema}.limits WHERE domain = ANY($1::text[]))
        OR EXISTS (SELECT 1 FROM {schema}.commands
                   WHERE status = 'PENDING' AND priority <> 0 AND domain = ANY($1::text[]))
        AS needed
),
waits AS (
    SELECT NULL::bigint AS ms
),
