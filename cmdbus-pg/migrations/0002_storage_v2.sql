-- cmdbus schema, version 2: constraints that tie columns together, FIFO
-- among commands due at the same instant, a finished_at for retention, and
-- happy-path audit events kept on the command row. `{schema}` is replaced
-- by the quoted schema name. Every command, audit row and reply of version 1
-- is kept as it was.

-- Send order: commands due at the same instant are leased in this order
-- (a batch shares one now()). Existing rows are numbered in storage order.
ALTER TABLE {schema}.commands ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

-- When the command ended (COMPLETED, FAILED, CANCELED); retention prunes by
-- it. updated_at moves with every lease extension and cannot say that.
ALTER TABLE {schema}.commands ADD COLUMN finished_at timestamptz;
UPDATE {schema}.commands SET finished_at = updated_at
WHERE status IN ('COMPLETED', 'FAILED', 'CANCELED');

-- Happy-path audit events live on the command row, so a command that
-- succeeds at once writes no audit rows: SENT is created_at (for rows sent
-- since version 2: sent_on_row); the RECEIVED of a lease taken since version
-- 2 is received_at + leased_by while the attempt runs or after it completed
-- (any other end of the attempt writes it out as an audit row), and that
-- attempt's COMPLETED is finished_at. `audit_trail` shows both as one trail.
ALTER TABLE {schema}.commands ADD COLUMN received_at timestamptz;
ALTER TABLE {schema}.commands ADD COLUMN sent_on_row boolean NOT NULL DEFAULT false;
ALTER TABLE {schema}.commands ALTER COLUMN sent_on_row SET DEFAULT true;

ALTER TABLE {schema}.commands
    ADD CONSTRAINT commands_lease_check
        CHECK ((status = 'IN_PROGRESS') = (lease_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    ADD CONSTRAINT commands_lease_columns_check
        CHECK ((lease_id IS NULL) = (lease_expires_at IS NULL)),
    ADD CONSTRAINT commands_attempts_check CHECK (attempts >= 0),
    ADD CONSTRAINT commands_max_attempts_check CHECK (max_attempts >= 1),
    ADD CONSTRAINT commands_finished_check
        CHECK ((finished_at IS NOT NULL) = (status IN ('COMPLETED', 'FAILED', 'CANCELED')));

ALTER TABLE {schema}.audit ADD CONSTRAINT audit_event_check CHECK (event IN
    ('SENT', 'RECEIVED', 'COMPLETED', 'FAILED', 'RETRY_SCHEDULED', 'RETRY_EXHAUSTED', 'MOVED_TO_TSQ',
     'LEASE_EXPIRED', 'RELEASED', 'OPERATOR_RETRY', 'OPERATOR_CANCEL', 'OPERATOR_COMPLETE'));
ALTER TABLE {schema}.audit ADD CONSTRAINT audit_attempt_check CHECK (attempt >= 0);

-- Dequeue in due order, then send order.
DROP INDEX {schema}.commands_due_idx;
CREATE INDEX commands_due_idx ON {schema}.commands (domain, due_at, seq) WHERE status = 'PENDING';

CREATE INDEX commands_finished_idx ON {schema}.commands (finished_at) WHERE finished_at IS NOT NULL;

-- A finished command, and with it the events held on its row, is history:
-- only the owner (retention) may change it.
ALTER TABLE {schema}.commands ENABLE ROW LEVEL SECURITY;
CREATE POLICY commands_read ON {schema}.commands FOR SELECT USING (true);
CREATE POLICY commands_send ON {schema}.commands FOR INSERT WITH CHECK (true);
CREATE POLICY commands_change ON {schema}.commands FOR UPDATE USING (finished_at IS NULL) WITH CHECK (true);

-- The whole audit trail, in order per command: ORDER BY domain, command_id, part, id.
CREATE VIEW {schema}.audit_trail AS
    SELECT domain, command_id, 'SENT'::text AS event, 0 AS attempt, created_at AS at,
           '{}'::jsonb AS details, 0 AS part, 0::bigint AS id
    FROM {schema}.commands WHERE sent_on_row
    UNION ALL
    SELECT domain, command_id, event, attempt, at, details, 1, id
    FROM {schema}.audit
    UNION ALL
    SELECT domain, command_id, 'RECEIVED', attempts, received_at,
           jsonb_build_object('worker', leased_by), 2, 0
    FROM {schema}.commands
    WHERE received_at IS NOT NULL AND status IN ('IN_PROGRESS', 'COMPLETED')
    UNION ALL
    SELECT domain, command_id, 'COMPLETED', attempts, finished_at, '{}'::jsonb, 3, 0
    FROM {schema}.commands
    WHERE received_at IS NOT NULL AND status = 'COMPLETED';

INSERT INTO {schema}.schema_migrations (version, name) VALUES (2, 'storage_v2');
