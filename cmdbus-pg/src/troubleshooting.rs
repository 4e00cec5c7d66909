//! The troubleshooting queue on PostgreSQL: what the operator API
//! ([`cmdbus::Troubleshooting`]) reads, and its bulk actions as one
//! transaction that locks what it changes.

use cmdbus::backend::{BulkAction, BulkPlan, Transition, TsqItem};
use cmdbus::{
    BulkOutcome, CommandRecord, CommandStatus, Cursor, Page, PayloadEdit, Result, TsqCount,
    TsqFilter,
};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{pool_timeout::Explain, query::Selection, rows::db, transport::PgTransport};

/// The rows `filter` selects, sorted by when they entered the TSQ.
pub(crate) fn selection(filter: &TsqFilter) -> Selection {
    Selection {
        statuses: vec![CommandStatus::InTroubleshootingQueue],
        by_updated: true,
        domain: filter.domain.clone(),
        command_type: filter.command_type.clone(),
        error_code: filter.error_code.clone(),
        updated: (filter.since, filter.until),
        batch_id: filter.batch_id,
        ..Selection::default()
    }
}

pub(crate) async fn page(
    transport: &PgTransport,
    filter: &TsqFilter,
    limit: usize,
    after: Option<Cursor>,
) -> Result<Page<CommandRecord>> {
    selection(filter).page(transport.pool(), transport.schema_ref(), limit, after).await
}

pub(crate) async fn counts(transport: &PgTransport, filter: &TsqFilter) -> Result<Vec<TsqCount>> {
    let mut sql = QueryBuilder::new(
        "SELECT domain, command_type, last_error ->> 'code' AS code, count(*) AS n FROM ",
    );
    sql.push(transport.schema_ref().render("{schema}.commands"));
    selection(filter).push_where(&mut sql, None);
    // Sorted here, not by the database: with ORDER BY the planner sorts
    // every item (spilling to disk at 100k) instead of hashing the groups.
    sql.push(" GROUP BY 1, 2, 3");
    let pool = transport.pool();
    let rows = sql.build().fetch_all(pool).await.explained(pool, "counting the TSQ").await?;
    let mut counts = rows
        .iter()
        .map(|row| {
            let get = || db("decoding TSQ counts");
            Ok(TsqCount::new(
                row.try_get("domain").map_err(get())?,
                row.try_get("command_type").map_err(get())?,
                row.try_get("code").map_err(get())?,
                row.try_get("n").map_err(get())?,
            ))
        })
        .collect::<Result<Vec<TsqCount>>>()?;
    counts.sort_by(|a, b| {
        (&a.domain, &a.command_type, &a.error_code).cmp(&(
            &b.domain,
            &b.command_type,
            &b.error_code,
        ))
    });
    Ok(counts)
}

pub(crate) async fn act(
    transport: &PgTransport,
    filter: &TsqFilter,
    action: BulkAction<'_>,
    plan: BulkPlan<'_>,
) -> Result<BulkOutcome> {
    let pool = transport.pool();
    let mut tx = pool.begin().await.explained(pool, "starting a bulk action").await?;
    let acted = act_in(transport, &mut tx, filter, action, plan).await;
    match acted {
        Ok((outcome, Some((transitions, applied)))) => {
            tx.commit().await.map_err(db("committing the bulk action"))?;
            transport.after_transitions(&transitions, &applied);
            Ok(outcome)
        }
        // Roll back at once: a dropped transaction keeps its row locks
        // until its connection is next used, and an action meanwhile
        // would skip those items as taken by someone else.
        Ok((outcome, None)) => {
            tx.rollback().await.map_err(db("ending a dry run"))?;
            Ok(outcome)
        }
        Err(error) => {
            tx.rollback().await.map_err(db("rolling back a refused bulk action"))?;
            Err(error)
        }
    }
}

/// Selects and locks the items, has them planned, and applies the plan
/// unless a dry run; with what to commit, if anything.
async fn act_in(
    transport: &PgTransport,
    tx: &mut PgConnection,
    filter: &TsqFilter,
    action: BulkAction<'_>,
    plan: BulkPlan<'_>,
) -> Result<(BulkOutcome, Option<(Vec<Transition>, Vec<bool>)>)> {
    let mut sql = QueryBuilder::<Postgres>::new("SELECT domain, command_id, command_type FROM ");
    sql.push(transport.schema_ref().render("{schema}.commands"));
    selection(filter).push_where(&mut sql, None);
    if !action.dry_run {
        // Items another operator is acting on right now are left to them.
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    let rows = sql.build().fetch_all(&mut *tx).await.map_err(db("selecting TSQ items"))?;
    let items = rows
        .iter()
        .map(|row| {
            let id: Uuid = row.try_get("command_id")?;
            Ok(TsqItem::new(row.try_get("domain")?, id, row.try_get("command_type")?))
        })
        .collect::<std::result::Result<Vec<TsqItem>, sqlx::Error>>()
        .map_err(db("decoding TSQ items"))?;
    let transitions = plan(&items)?;
    if action.dry_run || transitions.is_empty() {
        return Ok((BulkOutcome::of(&transitions, None), None));
    }
    let applied = crate::transition::apply(transport, &mut *tx, &transitions).await?;
    let outcome = BulkOutcome::of(&transitions, Some(&applied));
    let summary = transport.schema_ref().render(
        "INSERT INTO {schema}.operator_actions (operator, action, filter, affected) VALUES ($1, $2, $3::jsonb, $4)",
    );
    sqlx::query(sqlx::AssertSqlSafe(summary))
        .bind(action.operator.as_str())
        .bind(action.name)
        .bind(filter.describe().to_string())
        .bind(i32::try_from(outcome.acted).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db("recording the bulk action"))?;
    Ok((outcome, Some((transitions, applied))))
}

/// Stores a payload edit and its retry in one transaction: the payload
/// changes only where the command is still in the TSQ with the payload the
/// edit was made against, and the retry (guarded by the TSQ status too)
/// follows it under the row lock the update took.
pub(crate) async fn edit(
    transport: &PgTransport,
    edit: &PayloadEdit,
    transition: Transition,
) -> Result<bool> {
    let pool = transport.pool();
    let mut tx = pool.begin().await.explained(pool, "starting a payload edit").await?;
    let update = transport.schema_ref().render(
        "UPDATE {schema}.commands SET payload = $3::jsonb
         WHERE domain = $1 AND command_id = $2 AND status = 'IN_TROUBLESHOOTING_QUEUE'
           AND payload = $4::jsonb",
    );
    let edited = sqlx::query(sqlx::AssertSqlSafe(update))
        .bind(&edit.domain)
        .bind(edit.command_id)
        .bind(edit.after.get())
        .bind(edit.before.get())
        .execute(&mut *tx)
        .await
        .map_err(db("storing the edited payload"))?
        .rows_affected()
        == 1;
    if !edited {
        tx.rollback().await.map_err(db("ending a refused payload edit"))?;
        return Ok(false);
    }
    let transitions = [transition];
    let applied = crate::transition::apply(transport, &mut *tx, &transitions).await?;
    if applied != [true] {
        tx.rollback().await.map_err(db("ending a refused payload edit"))?;
        return Ok(false);
    }
    tx.commit().await.map_err(db("committing the payload edit"))?;
    transport.after_transitions(&transitions, &applied);
    Ok(true)
}
