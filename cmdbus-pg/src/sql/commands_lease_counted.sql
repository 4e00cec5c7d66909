-- The full lease statement's addition to its tail: count what it leased
-- against the limits it holds, spend rate limits' tokens, and say when a
-- rate limit left without a token has one again.
spent AS (
    SELECT t.domain, t.command_type, t.per_second, t.available, count(x.command_id) AS leased
    FROM held_limits t
    LEFT JOIN leased x ON t.domain = x.domain AND t.command_type IN ('', x.command_type)
    GROUP BY 1, 2, 3, 4
),
counted AS (
    UPDATE {schema}.limits l
    SET in_flight = l.in_flight + n.leased,
        tokens = CASE WHEN n.per_second IS NULL THEN l.tokens ELSE n.available - n.leased END,
        refilled_at = CASE WHEN n.per_second IS NULL THEN l.refilled_at ELSE now() END
    FROM spent n
    WHERE l.domain = n.domain AND l.command_type = n.command_type AND n.leased > 0
),
waits AS (
    SELECT (ceil(min((1 - (available - leased)) / per_second) * 1000))::bigint AS ms
    FROM spent
    WHERE per_second IS NOT NULL AND available - leased < 1
),
