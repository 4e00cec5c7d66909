//! Queue health per domain and command type, for consoles and dashboards:
//! what waits, runs and failed now, and what ended in the last hour. Live
//! statuses are read through their partial indexes and recent history
//! through `finished_at`, so the cost follows the live queue and the last
//! hour, not the size of the history.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cmdbus::Result;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::{pool_timeout::Explain, rows::db, transport::PgTransport};

/// One domain and type's health.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TypeHealth {
    /// Domain.
    pub domain: String,
    /// Command type.
    pub command_type: String,
    /// PENDING and due.
    pub due: i64,
    /// PENDING, due later (scheduled or backing off).
    pub scheduled: i64,
    /// Leased by a worker.
    pub in_progress: i64,
    /// In the troubleshooting queue.
    pub in_tsq: i64,
    /// COMPLETED within the window.
    pub completed_recently: i64,
    /// FAILED (refused by a business rule) within the window.
    pub failed_recently: i64,
    /// CANCELED within the window.
    pub canceled_recently: i64,
    /// How long the oldest due command has waited.
    pub oldest_due_age: Option<Duration>,
    /// Workers holding a lease on one of its commands now.
    pub workers_now: i64,
}

/// Health of every domain and type with live commands or recent history,
/// ordered by domain and type; "recently" is within `window` of now.
pub(crate) async fn overview(transport: &PgTransport, window: Duration) -> Result<Vec<TypeHealth>> {
    let pool = transport.pool();
    let rows = overview_sql(transport, window, "")
        .build()
        .fetch_all(pool)
        .await
        .explained(pool, "reading queue health")
        .await?;
    rows.iter().map(type_health).collect()
}

/// PostgreSQL's plan for [`overview`], one line per plan node.
pub(crate) async fn explain(transport: &PgTransport, window: Duration) -> Result<String> {
    crate::query::explain(overview_sql(transport, window, "EXPLAIN "), transport.pool()).await
}

/// The overview statement, after `prefix` (`EXPLAIN ` shows its plan).
fn overview_sql(transport: &PgTransport, window: Duration, prefix: &str) -> QueryBuilder<Postgres> {
    let schema = transport.schema_ref();
    let mut sql = QueryBuilder::new(prefix);
    sql.push(schema.render(
        "WITH live AS (
             SELECT domain, command_type,
                    count(*) FILTER (WHERE status = 'PENDING' AND due_at <= now()) AS due,
                    count(*) FILTER (WHERE status = 'PENDING' AND due_at > now()) AS scheduled,
                    count(*) FILTER (WHERE status = 'IN_PROGRESS') AS in_progress,
                    count(*) FILTER (WHERE status = 'IN_TROUBLESHOOTING_QUEUE') AS in_tsq,
                    min(due_at) FILTER (WHERE status = 'PENDING' AND due_at <= now()) AS oldest_due
             -- One status at a time: each is found through its own
             -- partial index (migration 0012); `status IN (…)` would not.
             FROM (SELECT domain, command_type, status, due_at FROM {schema}.commands
                   WHERE status = 'PENDING'
                   UNION ALL
                   SELECT domain, command_type, status, due_at FROM {schema}.commands
                   WHERE status = 'IN_PROGRESS'
                   UNION ALL
                   SELECT domain, command_type, status, due_at FROM {schema}.commands
                   WHERE status = 'IN_TROUBLESHOOTING_QUEUE') c
             GROUP BY domain, command_type
         ), leased AS (
             -- Apart from `live`: a DISTINCT aggregate there would make the
             -- planner sort every live command instead of hashing groups.
             SELECT domain, command_type, count(DISTINCT leased_by) AS workers
             FROM {schema}.commands
             WHERE status = 'IN_PROGRESS'
             GROUP BY domain, command_type
         ), recent AS (
             SELECT domain, command_type,
                    count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
                    count(*) FILTER (WHERE status = 'FAILED') AS failed,
                    count(*) FILTER (WHERE status = 'CANCELED') AS canceled
             FROM {schema}.commands
             WHERE finished_at >= now() - make_interval(secs => ",
    ));
    sql.push_bind(window.as_secs_f64());
    sql.push(schema.render(
        ")
             GROUP BY domain, command_type
         )
         SELECT domain, command_type,
                coalesce(due, 0) AS due, coalesce(scheduled, 0) AS scheduled,
                coalesce(in_progress, 0) AS in_progress, coalesce(in_tsq, 0) AS in_tsq,
                coalesce(completed, 0) AS completed, coalesce(failed, 0) AS failed,
                coalesce(canceled, 0) AS canceled, oldest_due, now() AS now,
                coalesce(workers, 0) AS workers
         FROM live FULL JOIN recent USING (domain, command_type)
              LEFT JOIN leased USING (domain, command_type)
         ORDER BY domain, command_type",
    ));
    sql
}

fn type_health(row: &sqlx::postgres::PgRow) -> Result<TypeHealth> {
    let get = || db("decoding queue health");
    let oldest: Option<DateTime<Utc>> = row.try_get("oldest_due").map_err(get())?;
    let now: DateTime<Utc> = row.try_get("now").map_err(get())?;
    Ok(TypeHealth {
        domain: row.try_get("domain").map_err(get())?,
        command_type: row.try_get("command_type").map_err(get())?,
        due: row.try_get("due").map_err(get())?,
        scheduled: row.try_get("scheduled").map_err(get())?,
        in_progress: row.try_get("in_progress").map_err(get())?,
        in_tsq: row.try_get("in_tsq").map_err(get())?,
        completed_recently: row.try_get("completed").map_err(get())?,
        failed_recently: row.try_get("failed").map_err(get())?,
        canceled_recently: row.try_get("canceled").map_err(get())?,
        oldest_due_age: oldest.map(|at| (now - at).to_std().unwrap_or_default()),
        workers_now: row.try_get("workers").map_err(get())?,
    })
}
