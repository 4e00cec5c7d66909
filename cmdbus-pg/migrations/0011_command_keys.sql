-- cmdbus schema, version 11: the query indexes over what never changes
-- move off the command rows. `{schema}` is replaced by the quoted schema name.
--
-- Every change of a command (lease, outcome, retry) is a non-HOT update,
-- which adds an entry for the new row version to every index of
-- `commands`, also to those whose key did not change. Created time, type
-- and correlation id never change, so their indexes live on
-- `command_keys`: one row per command, written once when it is sent and
-- removed with it, never updated. A lease or an outcome now writes four
-- index entries instead of seven (ADR 005, "command keys").
--
-- The rows are kept by triggers, whoever inserts, deletes or truncates
-- commands (the library, a team's own SQL, a restore), so the two tables
-- cannot drift.
-- The trigger functions run as the schema's owner: no other role writes
-- `command_keys` directly.
CREATE TABLE {schema}.command_keys (
    domain         text        NOT NULL,
    command_id     uuid        NOT NULL,
    command_type   text        NOT NULL,
    correlation_id uuid        NOT NULL,
    created_at     timestamptz NOT NULL
);

INSERT INTO {schema}.command_keys (domain, command_id, command_type, correlation_id, created_at)
SELECT domain, command_id, command_type, correlation_id, created_at FROM {schema}.commands;

-- Created order also finds a key row by its command (created_at is on
-- both rows), which is how deletes find them: no primary key to maintain.
CREATE INDEX command_keys_created ON {schema}.command_keys (created_at, command_id);
CREATE INDEX command_keys_type ON {schema}.command_keys (domain, command_type, created_at, command_id);
CREATE INDEX command_keys_correlation ON {schema}.command_keys (correlation_id);

DROP INDEX {schema}.commands_created_idx;
DROP INDEX {schema}.commands_type_created_idx;
DROP INDEX {schema}.commands_correlation_idx;

-- One function for the three triggers below: `sent` and `gone` are their
-- transition tables (PL/pgSQL plans a statement when it first runs, so each
-- branch names only its own trigger's table).
CREATE FUNCTION {schema}.command_keys_follow() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {schema}.command_keys (domain, command_id, command_type, correlation_id, created_at)
        SELECT domain, command_id, command_type, correlation_id, created_at FROM sent;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM {schema}.command_keys k
        USING gone g
        WHERE k.created_at = g.created_at AND k.command_id = g.command_id AND k.domain = g.domain;
    ELSE
        TRUNCATE {schema}.command_keys;
    END IF;
    RETURN NULL;
END
$$;

-- Once per statement, with every row it stored or deleted: a batch of a
-- thousand commands is one more INSERT, not a thousand.
CREATE TRIGGER commands_keys_sent AFTER INSERT ON {schema}.commands
    REFERENCING NEW TABLE AS sent FOR EACH STATEMENT EXECUTE FUNCTION {schema}.command_keys_follow();
CREATE TRIGGER commands_keys_deleted AFTER DELETE ON {schema}.commands
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION {schema}.command_keys_follow();
CREATE TRIGGER commands_keys_truncated AFTER TRUNCATE ON {schema}.commands
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.command_keys_follow();

INSERT INTO {schema}.schema_migrations (version, name) VALUES (11, 'command_keys');
