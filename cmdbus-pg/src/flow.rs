//! Pausing and resuming a domain or command type on PostgreSQL: a row in
//! `pauses` that the lease statement honours, and the operator's action in
//! `operator_actions`, in one statement each.

use cmdbus::{FlowTarget, Operator, Pause, Result};
use sqlx::{AssertSqlSafe, Row};

use crate::{pool_timeout::Explain, rows::db, transport::PgTransport};

/// How a whole domain is stored in `pauses.command_type`.
const EVERY_TYPE: &str = "";

fn stored_type(target: &FlowTarget) -> &str {
    target.command_type.as_deref().unwrap_or(EVERY_TYPE)
}

fn described(target: &FlowTarget, reason: Option<&str>) -> String {
    serde_json::json!({
        "domain": target.domain,
        "command_type": target.command_type,
        "reason": reason,
    })
    .to_string()
}

pub(crate) async fn pause(
    transport: &PgTransport,
    target: &FlowTarget,
    operator: &Operator,
    reason: &str,
) -> Result<bool> {
    let sql = transport.schema_ref().render(
        "WITH paused AS (
             INSERT INTO {schema}.pauses (domain, command_type, operator, reason)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (domain, command_type) DO NOTHING
             RETURNING 1),
         recorded AS (
             INSERT INTO {schema}.operator_actions (operator, action, filter, affected)
             SELECT $3, 'pause', $5::jsonb, 1 FROM paused)
         SELECT count(*) > 0 FROM paused",
    );
    let pool = transport.pool();
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(&target.domain)
        .bind(stored_type(target))
        .bind(operator.as_str())
        .bind(reason)
        .bind(described(target, Some(reason)))
        .fetch_one(pool)
        .await
        .explained(pool, "pausing")
        .await
}

pub(crate) async fn resume(
    transport: &PgTransport,
    target: &FlowTarget,
    operator: &Operator,
) -> Result<bool> {
    let sql = transport.schema_ref().render(
        "WITH resumed AS (
             DELETE FROM {schema}.pauses WHERE domain = $1 AND command_type = $2
             RETURNING 1),
         recorded AS (
             INSERT INTO {schema}.operator_actions (operator, action, filter, affected)
             SELECT $3, 'resume', $4::jsonb, 1 FROM resumed)
         SELECT count(*) > 0 FROM resumed",
    );
    let pool = transport.pool();
    let resumed: bool = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(&target.domain)
        .bind(stored_type(target))
        .bind(operator.as_str())
        .bind(described(target, None))
        .fetch_one(pool)
        .await
        .explained(pool, "resuming")
        .await?;
    if resumed {
        transport.wake_domain(&target.domain);
    }
    Ok(resumed)
}

pub(crate) async fn list(transport: &PgTransport) -> Result<Vec<Pause>> {
    let sql = transport.schema_ref().render(
        "SELECT domain, command_type, operator, reason, paused_at FROM {schema}.pauses
         ORDER BY domain, command_type",
    );
    let pool = transport.pool();
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .explained(pool, "listing pauses")
        .await?;
    rows.iter()
        .map(|row| {
            let get = || db("decoding a pause");
            let domain: String = row.try_get("domain").map_err(get())?;
            let command_type: String = row.try_get("command_type").map_err(get())?;
            let target = if command_type == EVERY_TYPE {
                FlowTarget::domain(domain)?
            } else {
                FlowTarget::command_type(domain, command_type)?
            };
            Ok(Pause::new(
                target,
                row.try_get("operator").map_err(get())?,
                row.try_get("reason").map_err(get())?,
                row.try_get("paused_at").map_err(get())?,
            ))
        })
        .collect()
}
