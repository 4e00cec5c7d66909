//! Flow control on PostgreSQL: pauses and fleet-wide limits are rows
//! (`pauses`, `limits`) that the lease statement honours; each operator
//! action is recorded in `operator_actions` in the same statement.

use cmdbus::{FlowTarget, Limit, LimitChange, Operator, Pause, Result};
use sqlx::{AssertSqlSafe, Row};

use crate::{pool_timeout::Explain, rows::db, transport::PgTransport};

/// The target a `pauses` or `limits` row names.
fn target_of(row: &sqlx::postgres::PgRow) -> Result<FlowTarget> {
    let get = || db("decoding a flow target");
    let domain: String = row.try_get("domain").map_err(get())?;
    let command_type: String = row.try_get("command_type").map_err(get())?;
    if command_type == EVERY_TYPE {
        FlowTarget::domain(domain)
    } else {
        FlowTarget::command_type(domain, command_type)
    }
}

/// How a whole domain is stored in `pauses.command_type` and `limits.command_type`.
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
    let resumed = remove(transport, "pauses", "resume", target, operator).await?;
    if resumed {
        transport.wake_domain(&target.domain);
    }
    Ok(resumed)
}

/// Deletes `target`'s row of `table` (`pauses`, `limits`) and records
/// `action` with the operator in the same statement; `false` if there was none.
async fn remove(
    transport: &PgTransport,
    table: &'static str,
    action: &'static str,
    target: &FlowTarget,
    operator: &Operator,
) -> Result<bool> {
    let sql = transport.schema_ref().render(&format!(
        "WITH removed AS (
             DELETE FROM {{schema}}.{table} WHERE domain = $1 AND command_type = $2
             RETURNING 1),
         recorded AS (
             INSERT INTO {{schema}}.operator_actions (operator, action, filter, affected)
             SELECT $3, '{action}', $4::jsonb, 1 FROM removed)
         SELECT count(*) > 0 FROM removed"
    ));
    let pool = transport.pool();
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(&target.domain)
        .bind(stored_type(target))
        .bind(operator.as_str())
        .bind(described(target, None))
        .fetch_one(pool)
        .await
        .explained(pool, "removing a pause or limit")
        .await
}

/// Every row of a flow-control table, by target.
async fn all_rows(
    transport: &PgTransport,
    columns_and_table: &str,
    context: &'static str,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    let sql = transport
        .schema_ref()
        .render(&format!("SELECT {columns_and_table} ORDER BY domain, command_type"));
    let pool = transport.pool();
    sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await.explained(pool, context).await
}

pub(crate) async fn list(transport: &PgTransport) -> Result<Vec<Pause>> {
    let columns = "domain, command_type, operator, reason, paused_at FROM {schema}.pauses";
    let rows = all_rows(transport, columns, "listing pauses").await?;
    rows.iter()
        .map(|row| {
            let get = || db("decoding a pause");
            Ok(Pause::new(
                target_of(row)?,
                row.try_get("operator").map_err(get())?,
                row.try_get("reason").map_err(get())?,
                row.try_get("paused_at").map_err(get())?,
            ))
        })
        .collect()
}

/// Changes a target's limits. A new limit starts from the commands leased
/// right now, and a new rate limit with a full bucket.
pub(crate) async fn limit(
    transport: &PgTransport,
    target: &FlowTarget,
    change: LimitChange,
    operator: &Operator,
) -> Result<bool> {
    let schema = transport.schema_ref();
    let pool = transport.pool();
    let (max_in_flight, per_second) = match change {
        LimitChange::MaxInFlight(max) => (Some(i32::try_from(max).unwrap_or(i32::MAX)), None),
        LimitChange::PerSecond(rate) => (None, Some(rate)),
        _ => (None, None),
    };
    let changed: bool = if max_in_flight.is_some() || per_second.is_some() {
        let sql = schema.render(
            "WITH set AS (
                 INSERT INTO {schema}.limits
                     (domain, command_type, max_in_flight, per_second, tokens, in_flight, set_by)
                 VALUES ($1, $2, $3, $4, greatest(coalesce($4, 0), 1),
                         (SELECT count(*) FROM {schema}.commands
                          WHERE status = 'IN_PROGRESS' AND domain = $1
                            AND ($2 = '' OR command_type = $2)), $5)
                 ON CONFLICT (domain, command_type) DO UPDATE
                     SET max_in_flight = coalesce(EXCLUDED.max_in_flight, limits.max_in_flight),
                         per_second = coalesce(EXCLUDED.per_second, limits.per_second),
                         set_by = EXCLUDED.set_by, set_at = now()
                 RETURNING 1),
             recorded AS (
                 INSERT INTO {schema}.operator_actions (operator, action, filter, affected)
                 SELECT $5, 'limit', $6::jsonb, 1 FROM set)
             SELECT count(*) > 0 FROM set",
        );
        let described = serde_json::json!({
            "domain": target.domain, "command_type": target.command_type,
            "max_in_flight": max_in_flight, "per_second": per_second,
        });
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(&target.domain)
            .bind(stored_type(target))
            .bind(max_in_flight)
            .bind(per_second)
            .bind(operator.as_str())
            .bind(described.to_string())
            .fetch_one(pool)
            .await
            .explained(pool, "setting a limit")
            .await?
    } else {
        remove(transport, "limits", "unlimit", target, operator).await?
    };
    // A raised or lifted limit may let waiting work run.
    transport.wake_domain(&target.domain);
    Ok(changed)
}

pub(crate) async fn limits(transport: &PgTransport) -> Result<Vec<Limit>> {
    let columns =
        "domain, command_type, max_in_flight, per_second, set_by, set_at FROM {schema}.limits";
    let rows = all_rows(transport, columns, "listing limits").await?;
    rows.iter()
        .map(|row| {
            let get = || db("decoding a limit");
            let max: Option<i32> = row.try_get("max_in_flight").map_err(get())?;
            let limit = Limit::new(
                target_of(row)?,
                row.try_get("set_by").map_err(get())?,
                row.try_get("set_at").map_err(get())?,
            );
            Ok(limit
                .with_max_in_flight(max.map(|m| u32::try_from(m).unwrap_or(1)))
                .with_per_second(row.try_get("per_second").map_err(get())?))
        })
        .collect()
}

/// Recounts each limit's in_flight from the commands leased now, under the
/// limits' row locks (taken in the order leases take them). Heals what a
/// lease that started before a limit existed did not count.
pub(crate) async fn recount(transport: &PgTransport) -> Result<()> {
    let schema = transport.schema_ref();
    let pool = transport.pool();
    // Most schemas have no limit: one cheap read instead of a transaction.
    let any = schema.render("SELECT EXISTS (SELECT 1 FROM {schema}.limits)");
    let any: bool = sqlx::query_scalar(AssertSqlSafe(any))
        .fetch_one(pool)
        .await
        .explained(pool, "looking for limits")
        .await?;
    if !any {
        return Ok(());
    }
    let mut tx = pool.begin().await.explained(pool, "recounting limits").await?;
    let lock = schema.render(
        "SELECT domain, command_type FROM {schema}.limits ORDER BY domain, command_type FOR UPDATE",
    );
    let held =
        sqlx::query(AssertSqlSafe(lock)).fetch_all(&mut *tx).await.map_err(db("locking limits"))?;
    if held.is_empty() {
        return Ok(());
    }
    // A new statement: its snapshot sees every lease committed before the locks.
    let recount = schema.render(
        "UPDATE {schema}.limits l SET in_flight = (
             SELECT count(*) FROM {schema}.commands c
             WHERE c.status = 'IN_PROGRESS' AND c.domain = l.domain
               AND (l.command_type = '' OR c.command_type = l.command_type))",
    );
    sqlx::query(AssertSqlSafe(recount)).execute(&mut *tx).await.map_err(db("recounting limits"))?;
    tx.commit().await.map_err(db("committing the recount"))
}
