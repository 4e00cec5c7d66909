-- cmdbus schema, version 1. `{schema}` is replaced by the quoted schema name.

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
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, command_id),
    CONSTRAINT commands_status_check CHECK (status IN
        ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'IN_TROUBLESHOOTING_QUEUE', 'CANCELED'))
);

-- The dequeue index covers only PENDING rows, so finished history does not
-- slow leasing.
CREATE INDEX commands_due_idx ON {schema}.commands (due_at, domain) WHERE status = 'PENDING';
CREATE INDEX commands_lease_expiry_idx ON {schema}.commands (lease_expires_at) WHERE status = 'IN_PROGRESS';

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
