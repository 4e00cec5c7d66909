-- cmdbus schema, version 10: operators' payload edits.
-- `{schema}` is replaced by the quoted schema name.
--
-- The operator role may update `payload` (to correct a failed command
-- before retrying it). This trigger keeps that to commands waiting in the
-- troubleshooting queue, whoever connects: a payload that is pending,
-- running or finished is what was sent and stays so. `UPDATE OF payload`
-- fires only for statements that set the column, so the hot path, which
-- never does, pays nothing.
CREATE FUNCTION {schema}.payload_edit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'IN_TROUBLESHOOTING_QUEUE' AND NEW.payload IS DISTINCT FROM OLD.payload THEN
        RAISE EXCEPTION 'command % in domain % is %: a payload is edited only in the troubleshooting queue',
            OLD.command_id, OLD.domain, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER commands_payload_edit BEFORE UPDATE OF payload ON {schema}.commands
    FOR EACH ROW EXECUTE FUNCTION {schema}.payload_edit_guard();

INSERT INTO {schema}.schema_migrations (version, name) VALUES (10, 'payload_edits');
