-- cmdbus schema, version 5: fleet-wide limits on how many commands of a
-- domain (command_type = '') or command type are leased at once.
-- `{schema}` is replaced by the quoted schema name.
--
-- in_flight is kept by the statements that change it: the lease adds what
-- it leased while holding the limit's row lock (so concurrent leases see
-- each other's counts), every transition that ends a lease subtracts, and
-- setting a limit counts what is leased at that moment.
CREATE TABLE {schema}.limits (
    domain        text        NOT NULL,
    command_type  text        NOT NULL DEFAULT '',
    max_in_flight integer     NOT NULL CHECK (max_in_flight >= 1),
    in_flight     integer     NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    set_by        text        NOT NULL,
    set_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, command_type)
);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (5, 'limits');
