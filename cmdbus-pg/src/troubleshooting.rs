//! The troubleshooting queue (TSQ): what failed and waits for an operator,
//! and what operators do about it. Every action names its operator, locks the
//! row, acts only on commands still in the TSQ, and writes its audit row in
//! the same statement as the change.

use chrono::{DateTime, Utc};
use cmdbus::{
    Command, CommandRecord, CommandStatus, Error, Operator, OperatorAction, Result, Transition,
    Transport,
};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{
    CommandKey,
    pool_timeout::Explain,
    query::{Cursor, Page, Selection},
    rows::db,
    transport::PgTransport,
};

/// Which troubleshooting-queue items to list or act on. Filters combine with AND.
///
/// ```
/// let filter = cmdbus_pg::TsqFilter::new().domain("payments").error_code("partner_timeout");
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TsqFilter {
    selection: Selection,
}

impl Default for TsqFilter {
    fn default() -> Self {
        let selection = Selection {
            statuses: vec![CommandStatus::InTroubleshootingQueue],
            by_updated: true,
            ..Selection::default()
        };
        Self { selection }
    }
}

impl TsqFilter {
    /// Every item.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only items of `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.selection.domain = Some(domain.into());
        self
    }

    /// Only items of type `C`.
    pub fn of_type<C: Command>(self) -> Self {
        self.command_type(C::DOMAIN, C::NAME)
    }

    /// Only items of the named type.
    pub fn command_type(
        mut self,
        domain: impl Into<String>,
        command_type: impl Into<String>,
    ) -> Self {
        self.selection.set_type(domain.into(), command_type.into());
        self
    }

    /// Only items whose last error has this code.
    pub fn error_code(mut self, code: impl Into<String>) -> Self {
        self.selection.error_code = Some(code.into());
        self
    }

    /// Only items that entered the TSQ at or after `since`.
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.selection.updated.0 = Some(since);
        self
    }

    /// Only items that entered the TSQ before `until`.
    pub fn until(mut self, until: DateTime<Utc>) -> Self {
        self.selection.updated.1 = Some(until);
        self
    }

    /// The selection, once its names are checked.
    fn selection(&self) -> Result<&Selection> {
        self.selection.validate()?;
        Ok(&self.selection)
    }

    fn describe(&self) -> serde_json::Value {
        let s = &self.selection;
        serde_json::json!({
            "domain": s.domain,
            "command_type": s.command_type,
            "error_code": s.error_code,
            "since": s.updated.0,
            "until": s.updated.1,
        })
    }
}

/// A TSQ item whose payload was decoded as `C`, or kept raw with the reason
/// it no longer decodes (never dropped from the list).
#[derive(Debug)]
#[non_exhaustive]
pub struct TypedItem<C> {
    /// The command as stored (raw payload included).
    pub record: CommandRecord,
    /// The decoded payload, or the decode error.
    pub payload: std::result::Result<C, String>,
}

/// What a bulk action matched and did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BulkOutcome {
    /// Items matching the filter.
    pub matched: u64,
    /// Items acted on (0 for a dry run).
    pub acted: u64,
    /// The ids acted on; for a dry run, those it would act on. `None` where
    /// listing them is not worth it (`prune` may delete millions).
    pub ids: Option<Vec<Uuid>>,
}

/// Items in the TSQ per domain, type and error code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TsqCount {
    /// Domain.
    pub domain: String,
    /// Command type.
    pub command_type: String,
    /// The last error's code.
    pub error_code: Option<String>,
    /// Number of items.
    pub count: i64,
}

/// The operator API. Get it from [`PgBus::troubleshooting`](crate::PgBus::troubleshooting).
#[derive(Clone, Debug)]
pub struct Troubleshooting {
    transport: PgTransport,
    /// Whether JSON results are checked against the catalog's reply schemas.
    check_results: bool,
}

impl Troubleshooting {
    pub(crate) fn new(transport: PgTransport) -> Self {
        Self { transport, check_results: true }
    }

    /// The same API without the reply-schema check of JSON results, for a
    /// type the catalog does not know (its senders and workers predate it).
    /// The operator then vouches that the sender can decode the result.
    #[must_use]
    pub fn unchecked(mut self) -> Self {
        self.check_results = false;
        self
    }

    /// Checks a JSON result for commands of `types` (domain, command type)
    /// against the reply schema of each type's latest version in the
    /// command-type catalog, without acting.
    ///
    /// # Errors
    ///
    /// [`Error::ResultMismatch`] naming the type and each wrong field,
    /// [`Error::UnknownReplySchema`] when the catalog does not know a type.
    pub async fn check_result<'a>(
        &self,
        types: impl IntoIterator<Item = (&'a str, &'a str)>,
        result: &serde_json::Value,
    ) -> Result<()> {
        let mut types: Vec<(&str, &str)> = types.into_iter().collect();
        types.sort_unstable();
        types.dedup();
        if types.is_empty() {
            return Ok(());
        }
        let catalog = self.transport.catalog_list().await?;
        for (domain, command_type) in types {
            crate::catalog::check_result(&catalog, domain, command_type, result)?;
        }
        Ok(())
    }

    /// Items, newest first; `limit` per page (1–1000), from `after`.
    pub async fn list(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<CommandRecord>> {
        let selection = filter.selection()?;
        selection.page(self.transport.pool(), self.transport.schema_ref(), limit, after).await
    }

    /// PostgreSQL's plan for listing `filter` (`EXPLAIN`).
    pub async fn explain(&self, filter: &TsqFilter) -> Result<String> {
        filter.selection()?.explain(self.transport.pool(), self.transport.schema_ref(), 50).await
    }

    /// Items of type `C`, payloads decoded; undecodable ones are listed with
    /// their error.
    pub async fn list_typed<C: Command>(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<TypedItem<C>>> {
        let filter = filter.clone().of_type::<C>();
        let page = self.list(&filter, limit, after).await?;
        let items = page
            .items
            .into_iter()
            .map(|record| {
                let payload = serde_json::from_str(record.payload.get()).map_err(|e| e.to_string());
                TypedItem { record, payload }
            })
            .collect();
        Ok(Page { items, next: page.next })
    }

    /// How many items there are per domain, type and error code.
    pub async fn counts(&self, filter: &TsqFilter) -> Result<Vec<TsqCount>> {
        let selection = filter.selection()?;
        let mut sql = QueryBuilder::new(
            "SELECT domain, command_type, last_error ->> 'code' AS code, count(*) AS n FROM ",
        );
        sql.push(self.transport.schema_ref().render("{schema}.commands"));
        selection.push_where(&mut sql, None);
        sql.push(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
        let rows = sql
            .build()
            .fetch_all(self.transport.pool())
            .await
            .explained(self.transport.pool(), "counting the TSQ")
            .await?;
        rows.iter()
            .map(|row| {
                let get = || db("decoding TSQ counts");
                Ok(TsqCount {
                    domain: row.try_get("domain").map_err(get())?,
                    command_type: row.try_get("command_type").map_err(get())?,
                    error_code: row.try_get("code").map_err(get())?,
                    count: row.try_get("n").map_err(get())?,
                })
            })
            .collect()
    }

    /// Sends the command back to PENDING, attempts reset, due now (same id
    /// and payload); workers are woken. `command` is an id, or a
    /// [`CommandKey`] naming its domain (needed when several domains hold the id).
    ///
    /// # Errors
    ///
    /// [`Error::NotInTroubleshootingQueue`], [`Error::NotFound`] (in the named
    /// domain), [`Error::UnknownCommandId`], [`Error::AmbiguousCommandId`],
    /// [`Error::Backend`].
    pub async fn retry(&self, command: impl Into<CommandKey>, operator: &Operator) -> Result<()> {
        self.act_one(command.into(), &OperatorAction::Retry, operator).await
    }

    /// Cancels the command with `reason`; its sender gets one CANCELED reply.
    /// Errors as [`retry`](Self::retry).
    pub async fn cancel(
        &self,
        command: impl Into<CommandKey>,
        operator: &Operator,
        reason: &str,
    ) -> Result<()> {
        let action = OperatorAction::Cancel { reason: reason.to_owned() };
        self.act_one(command.into(), &action, operator).await
    }

    /// Completes the command with `reply` (typed, so a waiting caller gets
    /// well-formed data); its sender gets one SUCCESS reply.
    pub async fn complete<C: Command>(
        &self,
        command_id: Uuid,
        operator: &Operator,
        reply: C::Reply,
    ) -> Result<()> {
        let result = serde_json::value::to_raw_value(&reply).map_err(|source| Error::Encode {
            domain: C::DOMAIN,
            command_type: C::NAME,
            source,
        })?;
        let key = CommandKey::of::<C>(command_id);
        self.act_one(key, &OperatorAction::Complete { result }, operator).await
    }

    /// [`complete`](Self::complete) with a JSON result, for tools that do not
    /// have the command types compiled in. The result is first checked
    /// against the reply schema the catalog holds for the command's type
    /// ([`check_result`](Self::check_result); see [`unchecked`](Self::unchecked)).
    /// Errors as [`retry`](Self::retry) and [`check_result`](Self::check_result).
    pub async fn complete_json(
        &self,
        command: impl Into<CommandKey>,
        operator: &Operator,
        result: &serde_json::Value,
    ) -> Result<()> {
        let mut key = command.into();
        if self.check_results {
            let record = self.the_command(&key).await?;
            if record.status != CommandStatus::InTroubleshootingQueue {
                return Err(Error::NotInTroubleshootingQueue {
                    domain: record.domain,
                    command_id: record.command_id,
                    status: record.status,
                });
            }
            self.check_result([(record.domain.as_str(), record.command_type.as_str())], result)
                .await?;
            key = CommandKey::new(record.domain, record.command_id);
        }
        self.act_one(key, &OperatorAction::complete_json(result), operator).await
    }

    /// Retries every item matching `filter`; with `dry_run`, only counts them.
    pub async fn retry_all(
        &self,
        filter: &TsqFilter,
        operator: &Operator,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        self.act_all(filter, &OperatorAction::Retry, operator, dry_run).await
    }

    /// Cancels every item matching `filter`; with `dry_run`, only counts them.
    pub async fn cancel_all(
        &self,
        filter: &TsqFilter,
        operator: &Operator,
        reason: &str,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        let action = OperatorAction::Cancel { reason: reason.to_owned() };
        self.act_all(filter, &action, operator, dry_run).await
    }

    /// Completes every item matching `filter` with the same JSON `result`;
    /// with `dry_run`, only counts them. The result is checked against the
    /// reply schema of every type matched (all or nothing), as
    /// [`complete_json`](Self::complete_json) checks it.
    pub async fn complete_all_json(
        &self,
        filter: &TsqFilter,
        operator: &Operator,
        result: &serde_json::Value,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        self.act_all(filter, &OperatorAction::complete_json(result), operator, dry_run).await
    }

    async fn act_one(
        &self,
        key: CommandKey,
        action: &OperatorAction,
        operator: &Operator,
    ) -> Result<()> {
        let plan = |domain, id| Transition::operator(domain, id, action, operator);
        self.apply_one(key, plan, |domain, command_id, status| Error::NotInTroubleshootingQueue {
            domain,
            command_id,
            status,
        })
        .await
    }

    /// Cancels a command before it starts: PENDING (due, or scheduled for
    /// later) becomes CANCELED and its sender gets one CANCELED reply.
    /// `command` is an id, or a [`CommandKey`] naming its domain.
    ///
    /// # Errors
    ///
    /// [`Error::NotPending`] (it started or ended), [`Error::NotFound`],
    /// [`Error::UnknownCommandId`], [`Error::AmbiguousCommandId`], [`Error::Backend`].
    pub async fn cancel_pending(
        &self,
        command: impl Into<CommandKey>,
        operator: &Operator,
        reason: &str,
    ) -> Result<()> {
        let plan = |domain, id| Transition::cancel_before_start(domain, id, operator, reason);
        self.apply_one(command.into(), plan, |domain, command_id, status| Error::NotPending {
            domain,
            command_id,
            status,
        })
        .await
    }

    /// Applies the transition `plan` makes for the command `key` names; when
    /// its guard refuses, says why (`refused` for a command in another status).
    async fn apply_one(
        &self,
        key: CommandKey,
        plan: impl FnOnce(String, Uuid) -> Transition,
        refused: impl FnOnce(String, Uuid, CommandStatus) -> Error,
    ) -> Result<()> {
        let domain = match key.domain() {
            Some(domain) => domain.to_owned(),
            None => self.the_command(&key).await?.domain,
        };
        let transition = plan(domain, key.command_id());
        if self.transport.transitions_apply(vec![transition]).await?.first() == Some(&true) {
            return Ok(());
        }
        Err(self.why_not(&key, refused).await)
    }

    /// The one command `key` names (several domains may hold an id), or
    /// why there is not exactly one.
    async fn the_command(&self, key: &CommandKey) -> Result<CommandRecord> {
        let command_id = key.command_id();
        let pool = self.transport.pool();
        let found = crate::query::by_id(pool, self.transport.schema_ref(), command_id).await?;
        let mut found: Vec<_> =
            found.into_iter().filter(|r| key.domain().is_none_or(|d| r.domain == d)).collect();
        match (found.len(), key.domain()) {
            (0, Some(domain)) => Err(Error::NotFound { domain: domain.to_owned(), command_id }),
            (0, None) => Err(Error::UnknownCommandId { command_id }),
            (1, _) => found.pop().ok_or(Error::UnknownCommandId { command_id }),
            _ => Err(Error::AmbiguousCommandId {
                command_id,
                domains: found.into_iter().map(|r| r.domain).collect(),
            }),
        }
    }

    async fn act_all(
        &self,
        filter: &TsqFilter,
        action: &OperatorAction,
        operator: &Operator,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        let pool = self.transport.pool();
        let mut tx = pool.begin().await.explained(pool, "starting a bulk action").await?;
        let acted = self.act_all_in(&mut tx, filter, action, operator, dry_run).await;
        match acted {
            Ok((outcome, Some((transitions, applied)))) => {
                tx.commit().await.map_err(db("committing the bulk action"))?;
                self.transport.after_transitions(&transitions, &applied);
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

    /// Selects and locks the items, checks a completion's result, and
    /// applies the action unless `dry_run`; with what to commit, if anything.
    async fn act_all_in(
        &self,
        tx: &mut PgConnection,
        filter: &TsqFilter,
        action: &OperatorAction,
        operator: &Operator,
        dry_run: bool,
    ) -> Result<(BulkOutcome, Option<(Vec<Transition>, Vec<bool>)>)> {
        let selection = filter.selection()?;
        let mut sql =
            QueryBuilder::<Postgres>::new("SELECT domain, command_id, command_type FROM ");
        sql.push(self.transport.schema_ref().render("{schema}.commands"));
        selection.push_where(&mut sql, None);
        if !dry_run {
            // Items another operator is acting on right now are left to them.
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        let rows = sql.build().fetch_all(&mut *tx).await.map_err(db("selecting TSQ items"))?;
        let items = rows
            .iter()
            .map(|row| {
                let domain: String = row.try_get("domain")?;
                Ok((domain, row.try_get("command_id")?, row.try_get("command_type")?))
            })
            .collect::<std::result::Result<Vec<(String, Uuid, String)>, sqlx::Error>>()
            .map_err(db("decoding TSQ items"))?;
        if let (OperatorAction::Complete { result }, true) = (action, self.check_results) {
            let result: serde_json::Value = serde_json::from_str(result.get())
                .map_err(|e| Error::backend("reading the result", e))?;
            let types = items.iter().map(|(domain, _, t)| (domain.as_str(), t.as_str()));
            self.check_result(types, &result).await?;
        }
        let transitions: Vec<Transition> = items
            .into_iter()
            .map(|(domain, id, _)| Transition::operator(domain, id, action, operator))
            .collect();
        let matched = u64::try_from(transitions.len()).unwrap_or(u64::MAX);
        if dry_run || transitions.is_empty() {
            let ids = transitions.iter().map(|t| t.command_id).collect();
            return Ok((BulkOutcome { matched, acted: 0, ids: Some(ids) }, None));
        }
        let applied = crate::transition::apply(&self.transport, &mut *tx, &transitions).await?;
        let acted = applied.iter().filter(|a| **a).count();
        let summary = self.transport.schema_ref().render(
            "INSERT INTO {schema}.operator_actions (operator, action, filter, affected) VALUES ($1, $2, $3::jsonb, $4)",
        );
        sqlx::query(sqlx::AssertSqlSafe(summary))
            .bind(operator.as_str())
            .bind(format!("{}_all", action.as_str()))
            .bind(filter.describe().to_string())
            .bind(i32::try_from(acted).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db("recording the bulk action"))?;
        let ids = transitions.iter().zip(&applied).filter(|(_, a)| **a).map(|(t, _)| t.command_id);
        let outcome = BulkOutcome {
            matched,
            acted: u64::try_from(acted).unwrap_or(u64::MAX),
            ids: Some(ids.collect()),
        };
        Ok((outcome, Some((transitions, applied))))
    }

    /// Explains, in an operator's words, why an action changed nothing.
    async fn why_not(
        &self,
        key: &CommandKey,
        refused: impl FnOnce(String, Uuid, CommandStatus) -> Error,
    ) -> Error {
        match self.the_command(key).await {
            Ok(record) => refused(record.domain, record.command_id, record.status),
            Err(error) => error,
        }
    }
}
