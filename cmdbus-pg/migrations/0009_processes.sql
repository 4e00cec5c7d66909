-- cmdbus schema, version 9: process managers.
-- `{schema}` is replaced by the quoted schema name.
--
-- One row per process instance. Its events are commands (type = the
-- process type, in its domain); the handler of each locks this row
-- (SELECT ... FOR UPDATE), lets the process react, and saves it with the
-- commands it sends in the same transaction, guarded by `version`.
CREATE TABLE {schema}.processes (
    process_type   text        NOT NULL,
    process_id     uuid        NOT NULL,
    domain         text        NOT NULL,
    status         text        NOT NULL CHECK (status IN
        ('RUNNING', 'WAITING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED', 'STUCK', 'ABANDONED')),
    correlation_id uuid        NOT NULL,
    state          jsonb       NOT NULL,
    -- Steps (tracked batches) and timeouts (event commands) outstanding.
    awaiting       jsonb       NOT NULL DEFAULT '[]',
    -- Compensations of completed steps, oldest first.
    compensations  jsonb       NOT NULL DEFAULT '[]',
    last_error     jsonb,
    version        bigint      NOT NULL CHECK (version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    PRIMARY KEY (process_type, process_id),
    CHECK ((status IN ('COMPLETED', 'COMPENSATED', 'ABANDONED')) = (finished_at IS NOT NULL))
);
CREATE INDEX processes_created ON {schema}.processes (created_at, process_id);
CREATE INDEX processes_status ON {schema}.processes (status, created_at, process_id);
CREATE INDEX processes_correlation ON {schema}.processes (correlation_id);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (9, 'processes');
