-- cmdbus schema, version 12: the query indexes leave the rows that change
-- most. `{schema}` is replaced by the quoted schema name.
--
-- A lease and an outcome are non-HOT updates: each adds an entry for the
-- new row version to every index whose predicate the row meets. The status
-- and updated-time indexes covered every row, so each lease and each
-- outcome wrote both (ADR 005, "settled indexes"). Now each status is
-- found through an index that holds only it:
--   PENDING      commands_pending_created_idx, commands_pending_updated_idx
--                (written when a command is sent or made due again);
--   IN_PROGRESS  commands_lease_expiry_idx, which rescue needs anyway: the
--                leased rows are few (bounded by the workers' slots), so a
--                page of them is sorted rather than kept in order;
--   the rest     commands_settled_idx by status and created time, and by
--                updated time commands_tsq_idx (troubleshooting queue) and
--                commands_finished_idx (finished: updated_at is finished_at,
--                checked below).
-- A lease now writes two index entries instead of four, an outcome three
-- instead of four. `CommandQuery` walks one status at a time and merges.

-- A finished row is not changed again, so its last change is its end.
-- Rows that say otherwise (none written by the library) take their end.
UPDATE {schema}.commands SET updated_at = finished_at
WHERE finished_at IS NOT NULL AND updated_at <> finished_at;
ALTER TABLE {schema}.commands ADD CONSTRAINT commands_finished_updated_check
    CHECK (finished_at IS NULL OR finished_at = updated_at);

DROP INDEX {schema}.commands_updated_idx;
DROP INDEX {schema}.commands_status_created_idx;
DROP INDEX {schema}.commands_finished_idx;

CREATE INDEX commands_pending_created_idx ON {schema}.commands (created_at, command_id)
    WHERE status = 'PENDING';
CREATE INDEX commands_pending_updated_idx ON {schema}.commands (updated_at, command_id)
    WHERE status = 'PENDING';
CREATE INDEX commands_settled_idx ON {schema}.commands (status, created_at, command_id)
    WHERE status NOT IN ('PENDING', 'IN_PROGRESS');
-- Retention prunes by finished_at; finished pages by updated time walk it.
CREATE INDEX commands_finished_idx ON {schema}.commands (finished_at, command_id)
    WHERE finished_at IS NOT NULL;

INSERT INTO {schema}.schema_migrations (version, name) VALUES (12, 'settled_indexes');
