-- cmdbus schema, version 4: priorities within a domain. `{schema}` is
-- replaced by the quoted schema name.

ALTER TABLE {schema}.commands ADD COLUMN priority smallint NOT NULL DEFAULT 0;

-- Only commands with a priority other than 0 are in this index, so a team
-- that never sets one pays nothing for it; priority-0 commands are found in
-- due order through commands_due_idx.
CREATE INDEX commands_priority_idx ON {schema}.commands (domain, priority DESC, due_at, seq)
    WHERE status = 'PENDING' AND priority <> 0;

INSERT INTO {schema}.schema_migrations (version, name) VALUES (4, 'priorities');
