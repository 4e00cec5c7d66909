//! Retention: the explicit operator action that deletes finished history.
//! The library never deletes on its own; run this as the schema's owner
//! (no other role may delete audit rows).

use chrono::{DateTime, Utc};
use cmdbus::{Operator, Result};
use sqlx::AssertSqlSafe;

use cmdbus::BulkOutcome;

use crate::{pool_timeout::Explain, transport::PgTransport};

/// Rows deleted per statement, so a large prune never holds long locks.
const CHUNK: i64 = 5_000;

/// Deletes COMPLETED, FAILED and CANCELED commands that finished before
/// `before`, with their replies and audit rows, in chunks; with `dry_run`
/// only counts them. Recorded in `operator_actions` with the operator.
pub(crate) async fn prune(
    transport: &PgTransport,
    before: DateTime<Utc>,
    operator: &Operator,
    dry_run: bool,
) -> Result<BulkOutcome> {
    let schema = transport.schema_ref();
    let pool = transport.pool();
    let finished = "finished_at < $1";
    let count_sql =
        schema.render(&format!("SELECT count(*) FROM {{schema}}.commands WHERE {finished}"));
    let matched: i64 = sqlx::query_scalar(AssertSqlSafe(count_sql))
        .bind(before)
        .fetch_one(pool)
        .await
        .explained(pool, "counting finished commands")
        .await?;
    let matched = u64::try_from(matched).unwrap_or(0);
    if dry_run || matched == 0 {
        return Ok(BulkOutcome::counted(matched, 0));
    }
    let delete_sql = schema.render(&format!(
        "WITH doomed AS (
             SELECT domain, command_id FROM {{schema}}.commands WHERE {finished} LIMIT $2 FOR UPDATE SKIP LOCKED),
         gone_audit AS (
             DELETE FROM {{schema}}.audit a USING doomed d WHERE a.domain = d.domain AND a.command_id = d.command_id),
         gone_replies AS (
             DELETE FROM {{schema}}.replies r USING doomed d WHERE r.domain = d.domain AND r.command_id = d.command_id),
         gone AS (
             DELETE FROM {{schema}}.commands c USING doomed d WHERE c.domain = d.domain AND c.command_id = d.command_id
             RETURNING 1)
         SELECT count(*) FROM gone"
    ));
    let mut acted = 0u64;
    loop {
        let deleted: i64 = sqlx::query_scalar(AssertSqlSafe(delete_sql.clone()))
            .bind(before)
            .bind(CHUNK)
            .fetch_one(pool)
            .await
            .explained(pool, "pruning finished commands")
            .await?;
        acted += u64::try_from(deleted).unwrap_or(0);
        if deleted < CHUNK {
            break;
        }
    }
    let summary = schema.render(
        "INSERT INTO {schema}.operator_actions (operator, action, filter, affected) VALUES ($1, 'prune', $2::jsonb, $3)",
    );
    sqlx::query(AssertSqlSafe(summary))
        .bind(operator.as_str())
        .bind(serde_json::json!({ "finished_before": before }).to_string())
        .bind(i32::try_from(acted).unwrap_or(i32::MAX))
        .execute(pool)
        .await
        .explained(pool, "recording the prune")
        .await?;
    Ok(BulkOutcome::counted(matched, acted))
}
