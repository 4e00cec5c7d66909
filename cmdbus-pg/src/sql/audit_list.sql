SELECT domain, command_id, event, attempt, at, details::text AS details
FROM {schema}.audit_trail
WHERE domain = $1 AND command_id = $2
ORDER BY part, id
