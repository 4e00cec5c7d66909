//! Process instances on PostgreSQL: locked and saved inside the event
//! handler's transaction, read for operators.

use cmdbus::process::{ProcessFilter, ProcessRecord, ProcessStatus};
use cmdbus::{Cursor, Error, Result};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{pool_timeout::Explain, rows::db, transport::PgTransport};

const COLUMNS: &str = "process_type, process_id, domain, status, correlation_id, \
     state::text AS state, awaiting::text AS awaiting, compensations::text AS compensations, \
     last_error::text AS last_error, version, created_at, updated_at";

fn json(text: &str, what: &'static str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::backend(what, e))
}

fn record(row: &PgRow) -> Result<ProcessRecord> {
    let get = || db("decoding a process");
    let status: String = row.try_get("status").map_err(get())?;
    let state: String = row.try_get("state").map_err(get())?;
    let awaiting: String = row.try_get("awaiting").map_err(get())?;
    let compensations: String = row.try_get("compensations").map_err(get())?;
    let last_error: Option<String> = row.try_get("last_error").map_err(get())?;
    ProcessRecord::new(
        row.try_get("process_type").map_err(get())?,
        row.try_get("process_id").map_err(get())?,
        row.try_get("domain").map_err(get())?,
        ProcessStatus::parse(&status)?,
        row.try_get("correlation_id").map_err(get())?,
        json(&state, "decoding a process state")?,
        row.try_get("version").map_err(get())?,
        row.try_get("created_at").map_err(get())?,
        row.try_get("updated_at").map_err(get())?,
    )
    .with_progress(
        json(&awaiting, "decoding a process")?,
        json(&compensations, "decoding a process")?,
        last_error.as_deref().map(|e| json(e, "decoding a process error")).transpose()?,
    )
}

/// The instance, locked until the transaction ends: its events serialize.
pub(crate) async fn load_locked(
    transport: &PgTransport,
    conn: &mut PgConnection,
    process_type: &str,
    process_id: Uuid,
) -> Result<Option<ProcessRecord>> {
    let sql = transport.schema_ref().render(&format!(
        "SELECT {COLUMNS} FROM {{schema}}.processes WHERE process_type = $1 AND process_id = $2 FOR UPDATE"
    ));
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(process_type)
        .bind(process_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("loading a process"))?;
    row.as_ref().map(record).transpose()
}

/// Inserts version 1 or updates from the version before; anything else
/// means another event moved it meanwhile, and this transaction must not
/// commit.
pub(crate) async fn save(
    transport: &PgTransport,
    conn: &mut PgConnection,
    record: &ProcessRecord,
) -> Result<()> {
    let sql = transport.schema_ref().render(
        "INSERT INTO {schema}.processes AS p (process_type, process_id, domain, status, correlation_id,
             state, awaiting, compensations, last_error, version, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10,
                 CASE WHEN $11 THEN now() END)
         ON CONFLICT (process_type, process_id) DO UPDATE
         SET status = EXCLUDED.status, state = EXCLUDED.state, awaiting = EXCLUDED.awaiting,
             compensations = EXCLUDED.compensations, last_error = EXCLUDED.last_error,
             version = EXCLUDED.version, updated_at = now(),
             finished_at = CASE WHEN $11 THEN coalesce(p.finished_at, now()) END
         WHERE p.version = EXCLUDED.version - 1",
    );
    let text = |value: &serde_json::Value| value.to_string();
    let saved = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&record.process_type)
        .bind(record.process_id)
        .bind(&record.domain)
        .bind(record.status.as_str())
        .bind(record.correlation_id)
        .bind(text(&record.state))
        .bind(text(&record.awaiting_json()))
        .bind(text(&record.compensations_json()))
        .bind(record.last_error.as_ref().map(text))
        .bind(record.version)
        .bind(record.status.is_terminal())
        .execute(&mut *conn)
        .await
        .map_err(db("saving a process"))?;
    if saved.rows_affected() != 1 {
        return Err(Error::backend(
            "saving a process",
            format!("{} {} changed meanwhile", record.process_type, record.process_id),
        ));
    }
    Ok(())
}

pub(crate) async fn get(
    transport: &PgTransport,
    process_type: &str,
    process_id: Uuid,
) -> Result<Option<ProcessRecord>> {
    let sql = transport.schema_ref().render(&format!(
        "SELECT {COLUMNS} FROM {{schema}}.processes WHERE process_type = $1 AND process_id = $2"
    ));
    let pool = transport.pool();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(process_type)
        .bind(process_id)
        .fetch_optional(pool)
        .await
        .explained(pool, "reading a process")
        .await?;
    row.as_ref().map(record).transpose()
}

/// Newest first; each filter uses an index (status, correlation id, the
/// primary key for a type, or the creation order).
pub(crate) async fn list(
    transport: &PgTransport,
    filter: &ProcessFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Vec<ProcessRecord>> {
    let mut sql = select(transport, filter, after, limit, "");
    let pool = transport.pool();
    let rows = sql.build().fetch_all(pool).await.explained(pool, "listing processes").await?;
    rows.iter().map(record).collect()
}

/// PostgreSQL's plan for a [`list`] page.
pub(crate) async fn explain(transport: &PgTransport, filter: &ProcessFilter) -> Result<String> {
    crate::query::explain(select(transport, filter, None, 50, "EXPLAIN "), transport.pool()).await
}

fn select(
    transport: &PgTransport,
    filter: &ProcessFilter,
    after: Option<Cursor>,
    limit: usize,
    prefix: &str,
) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::<Postgres>::new(format!("{prefix}SELECT {COLUMNS} FROM "));
    sql.push(transport.schema_ref().render("{schema}.processes WHERE true"));
    if let Some(process_type) = &filter.process_type {
        sql.push(" AND process_type = ").push_bind(process_type.clone());
    }
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        sql.push(" AND status = ANY(").push_bind(statuses).push(")");
    }
    if let Some(correlation_id) = filter.correlation_id {
        sql.push(" AND correlation_id = ").push_bind(correlation_id);
    }
    if let Some(after) = after {
        sql.push(" AND (created_at, process_id) < (")
            .push_bind(after.at())
            .push(", ")
            .push_bind(after.command_id())
            .push(")");
    }
    sql.push(" ORDER BY created_at DESC, process_id DESC LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    sql
}
