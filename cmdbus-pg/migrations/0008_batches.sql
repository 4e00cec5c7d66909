-- cmdbus schema, version 8: tracked batches.
-- `{schema}` is replaced by the quoted schema name.
--
-- A batch counts its members down as each ends (COMPLETED, FAILED or
-- CANCELED; the troubleshooting queue holds it open). The transition that
-- ends the last member also stores the batch's completion command, in the
-- same statement (`transitions_apply.sql`), so it is sent exactly once and
-- never from memory. `remaining` is updated in place, so two workers ending
-- the last two members serialize on the batch row and exactly one of them
-- sees zero.
ALTER TABLE {schema}.commands ADD COLUMN batch_id uuid;
CREATE INDEX commands_batch ON {schema}.commands (batch_id, status) WHERE batch_id IS NOT NULL;

CREATE TABLE {schema}.batches (
    batch_id    uuid        PRIMARY KEY,
    total       integer     NOT NULL CHECK (total >= 0),
    remaining   integer     NOT NULL CHECK (remaining >= 0 AND remaining <= total),
    completed   integer     NOT NULL DEFAULT 0 CHECK (completed >= 0),
    failed      integer     NOT NULL DEFAULT 0 CHECK (failed >= 0),
    canceled    integer     NOT NULL DEFAULT 0 CHECK (canceled >= 0),
    -- The completion command as sent at open (domain, command_id,
    -- command_type, correlation_id, reply_to, max_attempts, priority,
    -- payload); its payload gains `batch` (the counts) when it fires.
    completion  jsonb,
    -- Whether the completion lists the members by outcome; then the ids
    -- are appended here as members end (in the same serialized update).
    member_ids    boolean   NOT NULL DEFAULT false,
    completed_ids uuid[],
    failed_ids    uuid[],
    canceled_ids  uuid[],
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK (completed + failed + canceled + remaining = total),
    CHECK ((remaining = 0) = (finished_at IS NOT NULL))
);
CREATE INDEX batches_created ON {schema}.batches (created_at);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (8, 'batches');
