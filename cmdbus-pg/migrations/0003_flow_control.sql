-- cmdbus schema, version 3: operators pause and resume a domain or one
-- command type. `{schema}` is replaced by the quoted schema name.

-- A paused domain (command_type = '') or command type: leases skip its
-- commands, which stay PENDING. The operator and reason are also recorded in
-- operator_actions, with the resume.
CREATE TABLE {schema}.pauses (
    domain       text        NOT NULL,
    command_type text        NOT NULL DEFAULT '',
    operator     text        NOT NULL,
    reason       text        NOT NULL CHECK (reason <> ''),
    paused_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, command_type)
);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (3, 'flow_control');
