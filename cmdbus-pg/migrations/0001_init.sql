-- cmdbus schema, version 1. `{schema}` is replaced by the quoted schema name.
-- Every migration records itself in schema_migrations (last statement), so
-- the SQL is complete when a team applies it with its own tool.

CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.commands (
    domain           text        NOT NULL,
    command_id       uuid        NOT NULL,
    command_type     text        NOT NULL,
    correlation_id   uuid        NOT NULL,
    reply_to         text        NOT NULL,
    status           text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL,
    payload          jsonb       NOT NULL,
    due_at           timestamptz NOT NULL DEFAULT now(),
    lease_id         uuid,
    lease_expires_at timestamptz,
    leased_by        text,
    last_error       jsonb,
    traceparent      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Id first: operators and tools look commands up by id alone.
    PRIMARY KEY (command_id, domain),
    CONSTRAINT commands_status_check CHECK (status IN
        ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'IN_TROUBLESHOOTING_QUEUE', 'CANCELED'))
);

-- The dequeue index covers only PENDING rows, so finished history does not
-- slow leasing. Domain first: a lease walks each served domain in due order
-- (an `= ANY` on a later column would force a sort of the whole backlog).
CREATE INDEX commands_due_idx ON {schema}.commands (domain, due_at) WHERE status = 'PENDING';
CREATE INDEX commands_lease_expiry_idx ON {schema}.commands (lease_expires_at) WHERE status = 'IN_PROGRESS';

-- Queries (each filter of CommandQuery has an index; see tests/tests/query_plans.rs).
CREATE INDEX commands_created_idx ON {schema}.commands (created_at, command_id);
CREATE INDEX commands_updated_idx ON {schema}.commands (updated_at, command_id);
CREATE INDEX commands_status_created_idx ON {schema}.commands (status, created_at, command_id);
CREATE INDEX commands_type_created_idx ON {schema}.commands (domain, command_type, created_at, command_id);
CREATE INDEX commands_correlation_idx ON {schema}.commands (correlation_id);

-- The troubleshooting queue, newest first, optionally by error code.
CREATE INDEX commands_tsq_idx ON {schema}.commands (updated_at, command_id)
    WHERE status = 'IN_TROUBLESHOOTING_QUEUE';
CREATE INDEX commands_tsq_code_idx ON {schema}.commands ((last_error ->> 'code'), updated_at, command_id)
    WHERE status = 'IN_TROUBLESHOOTING_QUEUE';

-- Append-only: the library only inserts.
CREATE TABLE {schema}.audit (
    id         bigserial   PRIMARY KEY,
    domain     text        NOT NULL,
    command_id uuid        NOT NULL,
    event      text        NOT NULL,
    attempt    integer     NOT NULL,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    details    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_command_idx ON {schema}.audit (domain, command_id, id);

CREATE TABLE {schema}.replies (
    domain         text        NOT NULL,
    command_id     uuid        NOT NULL,
    correlation_id uuid        NOT NULL,
    reply_to       text        NOT NULL,
    status         text        NOT NULL,
    body           jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    consumed_at    timestamptz,
    PRIMARY KEY (domain, command_id)
);
CREATE INDEX replies_queue_idx ON {schema}.replies (reply_to, created_at) WHERE consumed_at IS NULL;

-- One row per bulk operator action (the per-command rows are in audit).
CREATE TABLE {schema}.operator_actions (
    id       bigserial   PRIMARY KEY,
    operator text        NOT NULL,
    action   text        NOT NULL,
    filter   jsonb       NOT NULL,
    affected integer     NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (1, 'init');
