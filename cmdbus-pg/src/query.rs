//! Queries over commands: by status, domain, type, correlation id and date,
//! newest first, with keyset pagination. Every filter is served by an index
//! (checked by `tests/tests/query_plans.rs` with `EXPLAIN` on 100k rows).

use chrono::{DateTime, Utc};
use cmdbus::{Command, CommandRecord, CommandStatus, Cursor, MAX_PAGE, Page, Result};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{
    pool_timeout::Explain,
    rows::{RECORD_COLUMNS, db},
    schema::Schema,
};

/// What to select; shared by [`CommandQuery`] and the troubleshooting queue.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection {
    pub(crate) statuses: Vec<CommandStatus>,
    pub(crate) domain: Option<String>,
    pub(crate) command_type: Option<String>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) error_code: Option<String>,
    pub(crate) created: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub(crate) updated: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    /// Sort (and page) by updated_at instead of created_at.
    pub(crate) by_updated: bool,
    /// Only PENDING commands not due yet.
    pub(crate) scheduled: bool,
    /// Only members of this tracked batch.
    pub(crate) batch_id: Option<Uuid>,
}

impl Selection {
    /// Restricts to one command type (types are named per domain).
    pub(crate) fn set_type(&mut self, domain: String, command_type: String) {
        self.domain = Some(domain);
        self.command_type = Some(command_type);
    }

    /// Refuses names that break the naming rules before any SQL runs.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(domain) = &self.domain {
            cmdbus::validate_domain(domain)?;
        }
        if let Some(command_type) = &self.command_type {
            cmdbus::validate_command_type(command_type)?;
        }
        Ok(())
    }

    fn sort_column(&self) -> &'static str {
        if self.by_updated { self.updated_column() } else { "created_at" }
    }

    /// The last-change time as the indexes hold it: a finished command's is
    /// `finished_at` (the two are equal, `commands_finished_updated_check`),
    /// whose index holds finished rows in that order (migration 0012).
    fn updated_column(&self) -> &'static str {
        if !self.statuses.is_empty() && self.statuses.iter().all(|s| s.is_terminal()) {
            "finished_at"
        } else {
            "updated_at"
        }
    }

    /// Appends ` WHERE …` for every filter; values are bind parameters.
    pub(crate) fn push_where(&self, sql: &mut QueryBuilder<Postgres>, after: Option<Cursor>) {
        let mut sep = " WHERE ";
        let mut next = |sql: &mut QueryBuilder<Postgres>| {
            sql.push(sep);
            sep = " AND ";
        };
        match self.statuses.as_slice() {
            [] => {}
            [status] => {
                next(sql);
                sql.push("status = ").push_bind(status.as_str());
            }
            many => {
                next(sql);
                let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                sql.push("status = ANY(").push_bind(names).push(")");
            }
        }
        if let Some(domain) = &self.domain {
            next(sql);
            sql.push("domain = ").push_bind(domain.clone());
        }
        if let Some(command_type) = &self.command_type {
            next(sql);
            sql.push("command_type = ").push_bind(command_type.clone());
        }
        if let Some(id) = self.correlation_id {
            next(sql);
            sql.push("correlation_id = ").push_bind(id);
        }
        if let Some(batch_id) = self.batch_id {
            next(sql);
            sql.push("batch_id = ").push_bind(batch_id);
        }
        if self.scheduled {
            next(sql);
            sql.push("status = 'PENDING' AND due_at > now()");
        }
        if let Some(code) = &self.error_code {
            next(sql);
            sql.push("last_error ->> 'code' = ").push_bind(code.clone());
        }
        for (column, (from, until)) in
            [("created_at", self.created), (self.updated_column(), self.updated)]
        {
            if let Some(from) = from {
                next(sql);
                sql.push(column).push(" >= ").push_bind(from);
            }
            if let Some(until) = until {
                next(sql);
                sql.push(column).push(" < ").push_bind(until);
            }
        }
        if let Some(cursor) = after {
            next(sql);
            sql.push("(")
                .push(self.sort_column())
                .push(", command_id) < (")
                .push_bind(cursor.at())
                .push(", ")
                .push_bind(cursor.command_id())
                .push(")");
        }
    }

    /// Whether every filter is on what never changes (domain, type,
    /// correlation id, created time): then the page is found in
    /// `command_keys`, which holds those columns' indexes (migration 0011).
    fn on_keys_only(&self) -> bool {
        self.statuses.is_empty()
            && !self.by_updated
            && self.updated == (None, None)
            && !self.scheduled
            && self.error_code.is_none()
            && self.batch_id.is_none()
    }

    /// The statuses walked one at a time and merged: each status has its
    /// own indexes (migration 0012), so a page over several, or over any
    /// status when a filter needs the status indexes, merges one walk per
    /// status (one `status = ANY` walk would sort every match).
    fn walks(&self) -> Option<Vec<CommandStatus>> {
        match self.statuses.as_slice() {
            [] if !self.scheduled && self.batch_id.is_none() => Some(CommandStatus::ALL.to_vec()),
            [] | [_] => None,
            many => Some(many.to_vec()),
        }
    }

    /// The page query; `explain` prefixes `EXPLAIN` to show its plan.
    ///
    /// A page is chosen by id first, on the indexes that hold it in order,
    /// and only its rows are read: from `command_keys` when only what never
    /// changes is filtered, else with one walk per status ([`Self::walks`]).
    fn page_sql(
        &self,
        schema: &Schema,
        limit: usize,
        after: Option<Cursor>,
        explain: bool,
    ) -> QueryBuilder<Postgres> {
        let explain = if explain { "EXPLAIN " } else { "" };
        let commands = schema.render("{schema}.commands");
        let mut sql =
            QueryBuilder::new(format!("{explain}SELECT {RECORD_COLUMNS} FROM {commands}"));
        let order = |selection: &Self| {
            format!(" ORDER BY {} DESC, command_id DESC LIMIT ", selection.sort_column())
        };
        // One extra row tells whether there is a next page.
        let rows = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let page_ids = |sql: &mut QueryBuilder<Postgres>, table: &str, selection: &Self| {
            sql.push("(SELECT command_id, domain FROM ").push(table);
            selection.push_where(sql, after);
            sql.push(order(selection)).push_bind(rows).push(")");
        };
        if self.on_keys_only() {
            sql.push(" WHERE (command_id, domain) IN (");
            page_ids(&mut sql, &schema.render("{schema}.command_keys"), self);
            sql.push(")");
        } else if let Some(statuses) = self.walks() {
            sql.push(" WHERE (command_id, domain) IN (");
            for (i, status) in statuses.iter().enumerate() {
                if i > 0 {
                    sql.push(" UNION ALL ");
                }
                let one = Self { statuses: vec![*status], ..self.clone() };
                page_ids(&mut sql, &commands, &one);
            }
            sql.push(")");
        } else {
            self.push_where(&mut sql, after);
        }
        sql.push(order(self)).push_bind(rows);
        sql
    }

    /// PostgreSQL's plan for one page, one line per plan node.
    pub(crate) async fn explain(
        &self,
        pool: &sqlx::PgPool,
        schema: &Schema,
        limit: usize,
    ) -> Result<String> {
        explain(self.page_sql(schema, limit.clamp(1, MAX_PAGE), None, true), pool).await
    }

    pub(crate) async fn page(
        &self,
        pool: &sqlx::PgPool,
        schema: &Schema,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<CommandRecord>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = self.page_sql(schema, limit, after, false);
        let rows = sql.build().fetch_all(pool).await.explained(pool, "querying commands").await?;
        let items = rows.iter().map(crate::rows::record).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |last| {
            (if self.by_updated { last.updated_at } else { last.created_at }, last.command_id)
        }))
    }
}

/// Selects commands. Filters combine with AND.
///
/// ```
/// # #[cmdbus::command(domain = "payments")] struct DebitAccount {}
/// use cmdbus::CommandStatus;
/// use cmdbus_pg::CommandQuery;
///
/// let since = chrono::Utc::now() - chrono::Duration::hours(1);
/// let query = CommandQuery::new()
///     .status(CommandStatus::Failed)
///     .of_type::<DebitAccount>()
///     .created_between(since, chrono::Utc::now())
///     .limit(100);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct CommandQuery {
    selection: Selection,
    limit: usize,
    after: Option<Cursor>,
}

impl Default for CommandQuery {
    fn default() -> Self {
        Self { selection: Selection::default(), limit: 50, after: None }
    }
}

impl CommandQuery {
    /// Every command, newest first, 50 a page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only commands in `status` (call again to allow several).
    pub fn status(mut self, status: CommandStatus) -> Self {
        self.selection.statuses.push(status);
        self
    }

    /// Only commands of `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.selection.domain = Some(domain.into());
        self
    }

    /// Only commands of type `C`.
    pub fn of_type<C: Command>(self) -> Self {
        self.command_type(C::DOMAIN, C::NAME)
    }

    /// Only commands of the named type (the domain is needed: types are per domain).
    pub fn command_type(
        mut self,
        domain: impl Into<String>,
        command_type: impl Into<String>,
    ) -> Self {
        self.selection.set_type(domain.into(), command_type.into());
        self
    }

    /// Only commands with this correlation id.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.selection.correlation_id = Some(id);
        self
    }

    /// Only commands scheduled for later: PENDING and not due yet (sent
    /// with [`SendOptions::delay`](cmdbus::SendOptions::delay) or
    /// [`deliver_at`](cmdbus::SendOptions::deliver_at), or waiting for a retry).
    pub fn scheduled(mut self) -> Self {
        self.selection.scheduled = true;
        self
    }

    /// Only commands created in `[from, until)`.
    pub fn created_between(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.selection.created = (Some(from), Some(until));
        self
    }

    /// Only commands last changed in `[from, until)`; pages by that time.
    pub fn updated_between(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.selection.updated = (Some(from), Some(until));
        self.selection.by_updated = true;
        self
    }

    /// Rows per page (1 to 1000; default 50).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The page after `cursor`.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    pub(crate) async fn run(
        &self,
        pool: &sqlx::PgPool,
        schema: &Schema,
    ) -> Result<Page<CommandRecord>> {
        self.selection.validate()?;
        self.selection.page(pool, schema, self.limit, self.after).await
    }

    pub(crate) async fn explain(&self, pool: &sqlx::PgPool, schema: &Schema) -> Result<String> {
        self.selection.validate()?;
        self.selection.explain(pool, schema, self.limit).await
    }
}

/// Runs `sql` (an `EXPLAIN …`) and returns its plan, one line per node.
pub(crate) async fn explain(
    mut sql: QueryBuilder<Postgres>,
    pool: &sqlx::PgPool,
) -> Result<String> {
    let lines: Vec<String> = sql
        .build_query_scalar()
        .fetch_all(pool)
        .await
        .explained(pool, "explaining a query")
        .await?;
    Ok(lines.join("\n"))
}

/// How many commands of one domain and type are in one status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StatusCount {
    /// Domain.
    pub domain: String,
    /// Command type.
    pub command_type: String,
    /// Status.
    pub status: CommandStatus,
    /// Number of commands.
    pub count: i64,
}

pub(crate) async fn status_counts(
    pool: &sqlx::PgPool,
    schema: &Schema,
    domain: Option<&str>,
) -> Result<Vec<StatusCount>> {
    if let Some(domain) = domain {
        cmdbus::validate_domain(domain)?;
    }
    let mut sql = QueryBuilder::new("SELECT domain, command_type, status, count(*) AS n FROM ");
    sql.push(schema.render("{schema}.commands"));
    if let Some(domain) = domain {
        sql.push(" WHERE domain = ").push_bind(domain.to_owned());
    }
    sql.push(" GROUP BY domain, command_type, status ORDER BY domain, command_type, status");
    let rows = sql.build().fetch_all(pool).await.explained(pool, "counting commands").await?;
    rows.iter()
        .map(|row| {
            let get = || db("decoding counts");
            let status: String = row.try_get("status").map_err(get())?;
            Ok(StatusCount {
                domain: row.try_get("domain").map_err(get())?,
                command_type: row.try_get("command_type").map_err(get())?,
                status: status.parse()?,
                count: row.try_get("n").map_err(get())?,
            })
        })
        .collect()
}

/// Every command with this id, whatever its domain (normally one).
pub(crate) async fn by_id(
    pool: &sqlx::PgPool,
    schema: &Schema,
    command_id: Uuid,
) -> Result<Vec<CommandRecord>> {
    let mut sql = QueryBuilder::new(format!("SELECT {RECORD_COLUMNS} FROM "));
    sql.push(schema.render("{schema}.commands"));
    sql.push(" WHERE command_id = ").push_bind(command_id).push(" ORDER BY domain");
    let rows = sql.build().fetch_all(pool).await.explained(pool, "finding a command").await?;
    rows.iter().map(crate::rows::record).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bind_parameters() {
        let selection = Selection {
            statuses: vec![CommandStatus::Failed, CommandStatus::Canceled],
            domain: Some("payments".into()),
            command_type: Some("x'; drop table y; --".into()),
            correlation_id: Some(Uuid::nil()),
            error_code: Some("decode".into()),
            created: (Some(Utc::now()), Some(Utc::now())),
            updated: (Some(Utc::now()), None),
            by_updated: true,
            scheduled: true,
            batch_id: Some(Uuid::nil()),
        };
        let mut sql = QueryBuilder::<Postgres>::new("SELECT 1 FROM t");
        selection.push_where(&mut sql, Some(Cursor::new(Utc::now(), Uuid::nil())));
        let text = sql.sql().as_str().to_owned();
        assert!(!text.contains("drop table"), "{text}");
        assert_eq!(text.matches('$').count(), 11, "{text}");
        assert!(text.contains("batch_id = $5"), "{text}");
        // Finished rows are paged by finished_at, which equals updated_at.
        assert!(text.contains("(finished_at, command_id) < ($10, $11)"), "{text}");
        let pending = Selection { statuses: vec![CommandStatus::Pending], ..selection };
        let mut sql = QueryBuilder::<Postgres>::new("SELECT 1 FROM t");
        pending.push_where(&mut sql, Some(Cursor::new(Utc::now(), Uuid::nil())));
        let text = sql.sql().as_str().to_owned();
        assert!(text.contains("(updated_at, command_id) < ($10, $11)"), "{text}");
    }
}
