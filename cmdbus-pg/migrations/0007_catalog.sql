-- cmdbus schema, version 7: the command-type catalog.
-- `{schema}` is replaced by the quoted schema name.
--
-- One row per version of a (domain, command type): its payload and reply
-- JSON schemas and retry policy as the code declared them. Senders record a
-- type on its first send, workers at start and every 30 s (`last_served_at`:
-- a worker with its handler). A changed definition becomes the next
-- version; old versions stay. `fingerprint` (md5 of the definition) finds
-- the version a definition already is without indexing whole schemas.
CREATE TABLE {schema}.command_types (
    domain         text        NOT NULL,
    command_type   text        NOT NULL,
    version        integer     NOT NULL CHECK (version >= 1),
    fingerprint    text        NOT NULL,
    payload_schema jsonb       NOT NULL,
    reply_schema   jsonb       NOT NULL,
    max_attempts   integer     NOT NULL CHECK (max_attempts >= 1),
    backoff_ms     bigint[]    NOT NULL,
    timeout_ms     bigint,
    priority       smallint    NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_served_at timestamptz,
    PRIMARY KEY (domain, command_type, version),
    UNIQUE (domain, command_type, fingerprint)
);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (7, 'catalog');
