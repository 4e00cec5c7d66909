-- The full lease statement's addition to its tail: count what it leased
-- against the limits it holds.
counted AS (
    UPDATE {schema}.limits l
    SET in_flight = l.in_flight + n.leased
    FROM (SELECT t.domain, t.command_type, count(*) AS leased
          FROM leased x
          JOIN held_limits t ON t.domain = x.domain AND t.command_type IN ('', x.command_type)
          GROUP BY 1, 2) n
    WHERE l.domain = n.domain AND l.command_type = n.command_type
),
