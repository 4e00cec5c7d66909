//! The troubleshooting queue (TSQ): what failed and waits for an operator,
//! and what operators do about it. One API on every transport, so operator
//! tooling is unit-testable on the in-memory one.
//!
//! Every action names its operator, acts only on commands still in the TSQ
//! (a guarded [`Transition`] decided here), and writes its audit row with
//! the change.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    Command, CommandKey, CommandRecord, CommandStatus, Cursor, Error, FieldChange, MAX_PAGE,
    Operator, OperatorAction, Page, PayloadEdit, Result, Transition, Transport, catalog,
};

/// Which troubleshooting-queue items to list or act on. Filters combine
/// with AND; fields left `None` do not filter.
///
/// ```
/// let filter = cmdbus::TsqFilter::new().domain("payments").error_code("partner_timeout");
/// assert_eq!(filter.domain.as_deref(), Some("payments"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct TsqFilter {
    /// Only items of this domain.
    pub domain: Option<String>,
    /// Only items of this command type.
    pub command_type: Option<String>,
    /// Only items whose last error has this code.
    pub error_code: Option<String>,
    /// Only items that entered the TSQ at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only items that entered the TSQ before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only members of this tracked batch (those holding it open).
    pub batch_id: Option<Uuid>,
}

impl TsqFilter {
    /// Every item.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only items of `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Only items of type `C`.
    pub fn of_type<C: Command>(self) -> Self {
        self.command_type(C::DOMAIN, C::NAME)
    }

    /// Only items of the named type (types are named per domain).
    pub fn command_type(
        mut self,
        domain: impl Into<String>,
        command_type: impl Into<String>,
    ) -> Self {
        self.domain = Some(domain.into());
        self.command_type = Some(command_type.into());
        self
    }

    /// Only items whose last error has this code.
    pub fn error_code(mut self, code: impl Into<String>) -> Self {
        self.error_code = Some(code.into());
        self
    }

    /// Only items that entered the TSQ at or after `since`.
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }

    /// Only items that entered the TSQ before `until`.
    pub fn until(mut self, until: DateTime<Utc>) -> Self {
        self.until = Some(until);
        self
    }

    /// Only members of tracked batch `batch_id`: the items holding it open.
    pub fn batch(mut self, batch_id: Uuid) -> Self {
        self.batch_id = Some(batch_id);
        self
    }

    /// Refuses names that break the naming rules before anything is read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`].
    pub fn validate(&self) -> Result<()> {
        if let Some(domain) = &self.domain {
            crate::validate_domain(domain)?;
        }
        if let Some(command_type) = &self.command_type {
            crate::validate_command_type(command_type)?;
        }
        Ok(())
    }

    /// Whether `record` is a TSQ item this filter selects; transports that
    /// filter in memory use it, SQL ones state the same in `WHERE`.
    pub fn matches(&self, record: &CommandRecord) -> bool {
        let error_code = record.last_error.as_ref().map(|e| e.code.as_str());
        record.status == CommandStatus::InTroubleshootingQueue
            && self.domain.as_ref().is_none_or(|d| *d == record.domain)
            && self.command_type.as_ref().is_none_or(|t| *t == record.command_type)
            && self.error_code.as_deref().is_none_or(|c| Some(c) == error_code)
            && self.since.is_none_or(|since| record.updated_at >= since)
            && self.until.is_none_or(|until| record.updated_at < until)
            && self.batch_id.is_none_or(|batch| record.batch_id == Some(batch))
    }

    /// The filter as JSON, as recorded with a bulk action.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "domain": self.domain,
            "command_type": self.command_type,
            "error_code": self.error_code,
            "since": self.since,
            "until": self.until,
            "batch_id": self.batch_id,
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
    /// listing them is not worth it (pruning may delete millions).
    pub ids: Option<Vec<Uuid>>,
}

impl BulkOutcome {
    /// What `transitions` planned and, unless a dry run, which were `applied`.
    pub fn of(transitions: &[Transition], applied: Option<&[bool]>) -> Self {
        let matched = u64::try_from(transitions.len()).unwrap_or(u64::MAX);
        let Some(applied) = applied else {
            let ids = transitions.iter().map(|t| t.command_id).collect();
            return Self { matched, acted: 0, ids: Some(ids) };
        };
        let ids: Vec<Uuid> = transitions
            .iter()
            .zip(applied)
            .filter(|(_, a)| **a)
            .map(|(t, _)| t.command_id)
            .collect();
        Self { matched, acted: u64::try_from(ids.len()).unwrap_or(u64::MAX), ids: Some(ids) }
    }

    /// A count without ids (e.g. rows pruned).
    pub fn counted(matched: u64, acted: u64) -> Self {
        Self { matched, acted, ids: None }
    }
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

impl TsqCount {
    /// `count` items of a domain and type whose last error has `error_code`.
    pub fn new(
        domain: String,
        command_type: String,
        error_code: Option<String>,
        count: i64,
    ) -> Self {
        Self { domain, command_type, error_code, count }
    }
}

/// A TSQ item a bulk action selected: enough to plan its transition and to
/// check a result against its type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TsqItem {
    /// Domain.
    pub domain: String,
    /// Command id.
    pub command_id: Uuid,
    /// Command type.
    pub command_type: String,
}

impl TsqItem {
    /// The item `command_id` of `command_type` in `domain`.
    pub fn new(domain: String, command_id: Uuid, command_type: String) -> Self {
        Self { domain, command_id, command_type }
    }
}

/// A bulk action as a transport sees it: who acts, what to record, and
/// whether to only look.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct BulkAction<'a> {
    /// Who acts (recorded with the action).
    pub operator: &'a Operator,
    /// The action's name as recorded (`retry_all`, `cancel_all`, `complete_all`).
    pub name: &'a str,
    /// Select and plan, but change nothing.
    pub dry_run: bool,
}

/// Turns the selected items into the transitions to apply, or refuses them
/// all (a result that does not fit one of their types).
pub type BulkPlan<'a> = &'a (dyn Fn(&[TsqItem]) -> Result<Vec<Transition>> + Send + Sync);

/// The operator API. Get it from [`Bus::troubleshooting`](crate::Bus::troubleshooting).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cmdbus::Result<()> {
/// use cmdbus::{Operator, TsqFilter, testing::MemoryBus};
///
/// let bus = MemoryBus::in_memory();
/// let tsq = bus.troubleshooting();
/// let alice = Operator::new("alice")?;
/// let outcome = tsq.retry_all(&TsqFilter::new().domain("payments"), &alice, true).await?;
/// assert_eq!((outcome.matched, outcome.acted), (0, 0));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Troubleshooting<T> {
    transport: T,
    /// Whether JSON results and edited payloads are checked against the
    /// catalog's schemas.
    check_results: bool,
    /// The bus's payload limit, which edited payloads keep to as well.
    max_payload_bytes: usize,
}

impl<T: Transport> Troubleshooting<T> {
    pub(crate) fn new(transport: T, max_payload_bytes: usize) -> Self {
        Self { transport, check_results: true, max_payload_bytes }
    }

    /// The same API without the schema checks of JSON results and edited
    /// payloads, for a type the catalog does not know (its senders and
    /// workers predate it). The operator then vouches that the sender can
    /// decode the result, or the handler the payload.
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
        let types: Vec<(&str, &str)> = types.into_iter().collect();
        if types.is_empty() {
            return Ok(());
        }
        catalog::check_result(&self.transport.catalog_list().await?, types, result)
    }

    /// Items, most recently failed first; `limit` per page (1–1000), from `after`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a malformed filter, [`Error::Backend`].
    pub async fn list(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<CommandRecord>> {
        filter.validate()?;
        self.transport.tsq_page(filter, limit.clamp(1, MAX_PAGE), after).await
    }

    /// Items of type `C`, payloads decoded; undecodable ones are listed with
    /// their error.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub async fn list_typed<C: Command>(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<TypedItem<C>>> {
        let filter = filter.clone().of_type::<C>();
        let page = self.list(&filter, limit, after).await?;
        Ok(page.map(|record| {
            let payload = serde_json::from_str(record.payload.get()).map_err(|e| e.to_string());
            TypedItem { record, payload }
        }))
    }

    /// How many items there are per domain, type and error code.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub async fn counts(&self, filter: &TsqFilter) -> Result<Vec<TsqCount>> {
        filter.validate()?;
        self.transport.tsq_counts(filter).await
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
    ///
    /// # Errors
    ///
    /// As [`retry`](Self::retry).
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
    ///
    /// # Errors
    ///
    /// As [`retry`](Self::retry), and [`Error::Encode`].
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
    ///
    /// # Errors
    ///
    /// As [`retry`](Self::retry) and [`check_result`](Self::check_result).
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

    /// Corrects the payload of a command in the troubleshooting queue and
    /// retries it (PENDING, attempts reset, due now), atomically. The new
    /// payload is first checked against the payload schema the catalog
    /// holds for the command's type (see [`unchecked`](Self::unchecked))
    /// and the bus's payload limit; the retry's audit row names the
    /// operator and lists every changed field with its value before and
    /// after. The edit is stored only if nobody changed the command
    /// meanwhile. With `dry_run`, checks and reports the changes and
    /// stores nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cmdbus::Result<()> {
    /// use cmdbus::{Error, Operator, testing::MemoryBus};
    /// let bus = MemoryBus::in_memory();
    /// let alice = Operator::new("alice")?;
    /// let edit = bus.troubleshooting().edit_and_retry(uuid::Uuid::nil(), &alice, &serde_json::json!({}), true).await;
    /// assert!(matches!(edit, Err(Error::UnknownCommandId { .. })));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`retry`](Self::retry); [`Error::PayloadMismatch`] naming each
    /// wrong field, [`Error::UnknownPayloadSchema`], [`Error::PayloadTooLarge`],
    /// [`Error::EditRefused`] when nothing would change or another operator
    /// changed it first.
    pub async fn edit_and_retry(
        &self,
        command: impl Into<CommandKey>,
        operator: &Operator,
        payload: &serde_json::Value,
        dry_run: bool,
    ) -> Result<PayloadEdit> {
        let record = self.the_command(&command.into()).await?;
        let refused = |reason| Error::EditRefused {
            domain: record.domain.clone(),
            command_id: record.command_id,
            reason,
        };
        if record.status != CommandStatus::InTroubleshootingQueue {
            return Err(Error::NotInTroubleshootingQueue {
                domain: record.domain,
                command_id: record.command_id,
                status: record.status,
            });
        }
        let before: serde_json::Value = serde_json::from_str(record.payload.get())
            .map_err(|e| Error::backend("reading the stored payload", e))?;
        let changes = FieldChange::between(&before, payload);
        if changes.is_empty() {
            return Err(refused("the new payload is the one stored; retry it instead"));
        }
        if self.check_results {
            let catalog = self.transport.catalog_list().await?;
            catalog::check_payload(&catalog, &record.domain, &record.command_type, payload)?;
        }
        let after = serde_json::value::to_raw_value(payload)
            .map_err(|e| Error::backend("encoding the edited payload", e))?;
        if after.get().len() > self.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                domain: record.domain,
                command_type: record.command_type,
                size: after.get().len(),
                limit: self.max_payload_bytes,
            });
        }
        let mut edit = PayloadEdit {
            domain: record.domain.clone(),
            command_id: record.command_id,
            before: record.payload.clone(),
            after,
            changes,
            applied: false,
        };
        if dry_run {
            return Ok(edit);
        }
        let transition = Transition::operator_edit(&edit, operator);
        if self.transport.tsq_edit(&edit, transition).await? {
            edit.applied = true;
            return Ok(edit);
        }
        let now =
            self.the_command(&CommandKey::new(record.domain.clone(), record.command_id)).await?;
        if now.status != CommandStatus::InTroubleshootingQueue {
            return Err(Error::NotInTroubleshootingQueue {
                domain: now.domain,
                command_id: now.command_id,
                status: now.status,
            });
        }
        Err(refused("another operator changed its payload meanwhile; reload it and edit again"))
    }

    /// Retries every item matching `filter`; with `dry_run`, only lists them.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub async fn retry_all(
        &self,
        filter: &TsqFilter,
        operator: &Operator,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        self.act_all(filter, &OperatorAction::Retry, operator, dry_run).await
    }

    /// Cancels every item matching `filter`; with `dry_run`, only lists them.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
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
    /// with `dry_run`, only lists them. The result is checked against the
    /// reply schema of every type matched (all or nothing), as
    /// [`complete_json`](Self::complete_json) checks it.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list) and [`check_result`](Self::check_result).
    pub async fn complete_all_json(
        &self,
        filter: &TsqFilter,
        operator: &Operator,
        result: &serde_json::Value,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        self.act_all(filter, &OperatorAction::complete_json(result), operator, dry_run).await
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
        // Refused: say why in an operator's words.
        let record = self.the_command(&key).await?;
        Err(refused(record.domain, record.command_id, record.status))
    }

    /// The one command `key` names (several domains may hold an id), or
    /// why there is not exactly one.
    async fn the_command(&self, key: &CommandKey) -> Result<CommandRecord> {
        let command_id = key.command_id();
        let mut found: Vec<_> = self
            .transport
            .commands_find(command_id)
            .await?
            .into_iter()
            .filter(|r| key.domain().is_none_or(|d| r.domain == d))
            .collect();
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
        filter.validate()?;
        // A completion's result must fit every type selected; the catalog
        // is read first so the check needs no I/O while items are locked.
        let check = match (action, self.check_results) {
            (OperatorAction::Complete { result }, true) => {
                let result: serde_json::Value = serde_json::from_str(result.get())
                    .map_err(|e| Error::backend("reading the result", e))?;
                Some((self.transport.catalog_list().await?, result))
            }
            _ => None,
        };
        let plan = |items: &[TsqItem]| {
            if let Some((catalog, result)) = &check {
                let types = items.iter().map(|i| (i.domain.as_str(), i.command_type.as_str()));
                catalog::check_result(catalog, types, result)?;
            }
            Ok(items
                .iter()
                .map(|i| Transition::operator(i.domain.clone(), i.command_id, action, operator))
                .collect())
        };
        let name = format!("{}_all", action.as_str());
        let bulk = BulkAction { operator, name: &name, dry_run };
        self.transport.tsq_act(filter, bulk, &plan).await
    }
}
