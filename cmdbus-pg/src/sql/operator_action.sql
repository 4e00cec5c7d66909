-- Applies one operator action to the given commands, only those in the
-- troubleshooting queue, with its audit rows and reply, in one statement.
-- $1 domains, $2 ids (pairs; a NULL domain means the one domain holding the
-- id, and an id held by several domains is then left alone), $3 action
-- (retry | cancel | complete), $4 operator, $5 reason, $6 result.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[]) AS t(domain, command_id)
),
updated AS (
    UPDATE {schema}.commands c
    SET status = CASE $3::text WHEN 'retry' THEN 'PENDING' WHEN 'cancel' THEN 'CANCELED' ELSE 'COMPLETED' END,
        attempts = CASE WHEN $3::text = 'retry' THEN 0 ELSE c.attempts END,
        due_at = CASE WHEN $3::text = 'retry' THEN now() ELSE c.due_at END,
        updated_at = now()
    FROM input i
    WHERE c.command_id = i.command_id
      AND c.status = 'IN_TROUBLESHOOTING_QUEUE'
      AND (i.domain IS NULL OR c.domain = i.domain)
      AND (i.domain IS NOT NULL OR NOT EXISTS (
          SELECT 1 FROM {schema}.commands o WHERE o.command_id = c.command_id AND o.domain <> c.domain))
    RETURNING c.domain, c.command_id, c.correlation_id, c.reply_to, c.attempts
),
audited AS (
    INSERT INTO {schema}.audit (domain, command_id, event, attempt, details)
    SELECT domain, command_id,
           CASE $3::text WHEN 'retry' THEN 'OPERATOR_RETRY' WHEN 'cancel' THEN 'OPERATOR_CANCEL' ELSE 'OPERATOR_COMPLETE' END,
           attempts,
           jsonb_build_object('operator', $4::text)
               || CASE WHEN $5::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('reason', $5::text) END
               || CASE WHEN $6::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('result', $6::jsonb) END
    FROM updated
),
replied AS (
    INSERT INTO {schema}.replies (domain, command_id, correlation_id, reply_to, status, body)
    SELECT domain, command_id, correlation_id, reply_to,
           CASE $3::text WHEN 'cancel' THEN 'CANCELED' ELSE 'SUCCESS' END,
           CASE $3::text
               WHEN 'cancel' THEN jsonb_build_object('reason', $5::text, 'operator', $4::text)
               ELSE $6::jsonb END
    FROM updated
    WHERE $3::text <> 'retry'
)
SELECT domain, command_id FROM updated
