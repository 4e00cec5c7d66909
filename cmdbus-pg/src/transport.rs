//! [`PgTransport`]: the [`Transport`] contract on PostgreSQL.

use std::{
    any::Any,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use cmdbus::backend::{
    BulkAction, BulkPlan, CommandsLease, Due, ExpiredLease, LeaseExtend, LeaseRef, LeasedCommand,
    NewBatch, NewCommand, Polled, QueueStats, Transition, WakeSender, WakeUps,
};
use cmdbus::{
    AuditEntry, AuditEvent, BatchStatus, BulkOutcome, Catalog, CommandRecord, CommandType, Cursor,
    Error, FlowTarget, Limit, LimitChange, Operator, Page, Pause, PayloadEdit, Registered, Reply,
    ReplyStatus, Result, SendOutcome, Transport, TsqCount, TsqFilter,
    process::{ProcessFilter, ProcessRecord},
};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use crate::{
    notify::{self, Notifier},
    pool_timeout::Explain,
    rows::{count, db, raw},
    schema::{Schema, Statements, sql},
};

/// The PostgreSQL transport. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct PgTransport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    schema: Schema,
    /// The version the schema was found at (or brought to) when opened.
    schema_version: i32,
    /// The work channel, named once (sends bind it).
    channel: String,
    statements: Statements,
    notifier: Notifier,
    replies: Notifier,
    /// Started by the first `reply_wait`; the kept subscription keeps it alive.
    reply_listener: tokio::sync::OnceCell<(WakeSender, WakeUps)>,
    /// Sends of this transport running now, to tell a lone send from
    /// concurrent ones (see [`PgTransport::commands_send`]).
    sends_in_flight: AtomicUsize,
    /// Until when (µs since `epoch`) leases go straight to the full
    /// statement, since priorities or limits were seen in use.
    full_lease_until_us: AtomicU64,
    epoch: std::time::Instant,
}

/// The handler's unit of work: a transaction on the transport's pool.
pub(crate) type PgUnitOfWork = Transaction<'static, Postgres>;

impl PgTransport {
    /// Uses `pool` and the schema `schema`, migrating or checking it first.
    pub(crate) async fn open(
        pool: PgPool,
        schema: Schema,
        mode: crate::migrate::Mode,
    ) -> Result<Self> {
        let schema_version = crate::migrate::open(&pool, &schema, mode).await?;
        let statements = Statements::new(&schema);
        let channel = schema.channel();
        let notifier = Notifier::spawn(pool.clone(), channel.clone());
        let replies = Notifier::spawn(pool.clone(), schema.replies_channel());
        let reply_listener = tokio::sync::OnceCell::new();
        let inner = Inner {
            pool,
            schema,
            schema_version,
            channel,
            statements,
            notifier,
            replies,
            reply_listener,
            sends_in_flight: AtomicUsize::new(0),
            full_lease_until_us: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        self.inner.schema.name()
    }

    /// The version the schema was at (after migrating, when this bus
    /// migrated it) when the bus was built.
    pub fn schema_version(&self) -> i32 {
        self.inner.schema_version
    }

    pub(crate) fn schema_ref(&self) -> &Schema {
        &self.inner.schema
    }

    pub(crate) fn statements(&self) -> &Statements {
        &self.inner.statements
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Runs the common lease statement, or with `full` the one that honours
    /// priorities and limits; returns what it leased and whether the common
    /// one found it had to leave the work to the full one.
    async fn lease(&self, params: &CommandsLease, full: bool) -> Result<(Polled, bool)> {
        let statements = &self.inner.statements;
        let lease = if full { &statements.commands_lease_full } else { &statements.commands_lease };
        let statement = lease.for_lease(params.domains.len(), params.limit);
        let mut query = sqlx::query(sql(statement))
            .bind(&params.domains)
            .bind(i64::try_from(params.limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(params.visibility_timeout.as_millis()).unwrap_or(i64::MAX))
            .bind(&params.worker_id);
        if full {
            query = query.bind(i64::try_from(params.oldest_first.min(params.limit)).unwrap_or(0));
        }
        let rows = query
            .fetch_all(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "leasing commands")
            .await?;
        let get = || db("decoding a leased command");
        let (next_due_ms, needs_full): (Option<i64>, bool) = match rows.first() {
            Some(row) => (
                row.try_get("next_due_ms").map_err(get())?,
                row.try_get("needs_full").map_err(get())?,
            ),
            None => (None, false),
        };
        let mut commands = Vec::with_capacity(rows.len());
        for row in &rows {
            // The one row of an empty lease carries only the next due time.
            if row.try_get::<Option<Uuid>, _>("command_id").map_err(get())?.is_none() {
                continue;
            }
            let command = crate::rows::new_command(row)?
                .with_traceparent(row.try_get("traceparent").map_err(get())?);
            commands.push(LeasedCommand::new(
                command,
                count(row.try_get("attempts").map_err(get())?),
                row.try_get("lease_id").map_err(get())?,
                row.try_get("lease_expires_at").map_err(get())?,
                row.try_get("created_at").map_err(get())?,
            ));
        }
        let next_due_in =
            next_due_ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
        Ok((Polled::new(commands, next_due_in), needs_full))
    }

    /// Wakes `domain`'s workers (after a commit that made work leasable).
    pub(crate) fn wake_domain(&self, domain: &str) {
        self.inner.notifier.poke(domain);
    }

    /// Wakes, after the commit, the workers of commands the applied
    /// transitions made due now and the callers waiting for their replies.
    /// The channel that wakes workers.
    pub(crate) fn channel(&self) -> &str {
        &self.inner.channel
    }

    pub(crate) fn after_transitions(&self, transitions: &[Transition], applied: &[bool]) {
        let done = || transitions.iter().zip(applied).filter(|(_, a)| **a).map(|(t, _)| t);
        let due: std::collections::BTreeSet<&str> =
            done().filter(|t| t.makes_due_now()).map(|t| t.domain.as_str()).collect();
        for domain in due {
            self.wake_domain(domain);
        }
        if done().any(|t| t.reply.is_some()) {
            self.inner.replies.poke("");
        }
    }

    /// A subscription to new replies; `None` if LISTEN is unavailable (the
    /// wait then polls).
    async fn reply_wakeups(&self) -> Option<WakeUps> {
        let pool = &self.inner.pool;
        let channel = self.inner.schema.replies_channel();
        let listener = self
            .inner
            .reply_listener
            .get_or_try_init(|| notify::listen(pool, &channel, |_| true))
            .await;
        match listener {
            Ok((sender, _keepalive)) => Some(sender.subscribe()),
            Err(error) => {
                tracing::debug!(error = %cmdbus::Report::new(&error), "cmdbus: reply LISTEN unavailable; polling");
                None
            }
        }
    }

    /// Sends within `conn` (the caller's transaction). Workers are woken by a
    /// NOTIFY in that same transaction, so at its commit and never before.
    pub(crate) async fn send_in(
        &self,
        conn: &mut PgConnection,
        commands: Vec<NewCommand>,
    ) -> Result<Vec<SendOutcome>> {
        // NOTIFY inside the caller's transaction: workers wake at its commit.
        self.insert(&mut *conn, commands, Some(&self.inner.channel)).await
    }

    /// Stores commands with their SENT audit rows in one statement; with a
    /// `channel`, the same statement notifies it once per domain.
    async fn insert<'c, E>(
        &self,
        executor: E,
        commands: Vec<NewCommand>,
        channel: Option<&str>,
    ) -> Result<Vec<SendOutcome>>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        cmdbus::backend::validate_commands(&commands)?;
        if let [command] = commands.as_slice() {
            let inserted: bool = sqlx::query_scalar(sql(&self.inner.statements.command_send))
                .bind(&command.domain)
                .bind(command.command_id)
                .bind(&command.command_type)
                .bind(command.correlation_id)
                .bind(&command.reply_to)
                .bind(i32::try_from(command.max_attempts).unwrap_or(i32::MAX))
                .bind(command.payload.get())
                .bind(command.traceparent.as_deref())
                .bind(channel)
                .bind(due_at(command.due))
                .bind(delay_ms(command.due))
                .bind(command.priority)
                .fetch_one(executor)
                .await
                .explained(&self.inner.pool, "sending a command")
                .await?;
            let command_id = command.command_id;
            return Ok(vec![if inserted {
                SendOutcome::Accepted { command_id }
            } else {
                SendOutcome::Duplicate { command_id }
            }]);
        }
        Ok(self.insert_many(executor, commands, channel, None).await?.0)
    }

    /// The unnest form of [`insert`](Self::insert); with a batch (its id
    /// and completion command as JSON), the commands stored become its
    /// members. Also says whether the batch existed (then nothing was stored).
    async fn insert_many<'c, E>(
        &self,
        executor: E,
        commands: Vec<NewCommand>,
        channel: Option<&str>,
        batch: Option<(Uuid, Option<serde_json::Value>, bool)>,
    ) -> Result<(Vec<SendOutcome>, bool)>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        let mut columns = SendColumns::with_capacity(commands.len());
        for command in commands {
            columns.push(command);
        }
        let (batch_id, completion, member_ids) =
            batch.map_or((None, None, None), |(id, c, ids)| (Some(id), c, Some(ids)));
        let rows = sqlx::query(sql(&self.inner.statements.commands_send))
            .bind(&columns.domains)
            .bind(&columns.ids)
            .bind(&columns.types)
            .bind(&columns.correlations)
            .bind(&columns.reply_tos)
            .bind(&columns.max_attempts)
            .bind(&columns.payloads)
            .bind(&columns.traceparents)
            .bind(channel)
            .bind(&columns.due_ats)
            .bind(&columns.delays_ms)
            .bind(&columns.priorities)
            .bind(batch_id)
            .bind(completion)
            .bind(member_ids)
            .fetch_all(executor)
            .await
            .explained(&self.inner.pool, "sending commands")
            .await?;
        let read = || db("reading send result");
        let existed = match rows.first() {
            Some(row) => row.try_get("batch_existed").map_err(read())?,
            None => false,
        };
        let outcomes = rows
            .iter()
            .map(|row| {
                let command_id: Uuid = row.try_get("command_id").map_err(read())?;
                let inserted: bool = row.try_get("inserted").map_err(read())?;
                Ok(if inserted {
                    SendOutcome::Accepted { command_id }
                } else {
                    SendOutcome::Duplicate { command_id }
                })
            })
            .collect::<Result<_>>()?;
        Ok((outcomes, existed))
    }

    pub(crate) async fn reply_get(&self, domain: &str, command_id: Uuid) -> Result<Option<Reply>> {
        let row = sqlx::query(sql(&self.inner.statements.reply_get))
            .bind(domain)
            .bind(command_id)
            .fetch_optional(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "reading a reply")
            .await?;
        row.as_ref().map(reply_from_row).transpose()
    }
}

/// New commands as parallel arrays for `unnest`.
struct SendColumns {
    domains: Vec<String>,
    ids: Vec<Uuid>,
    types: Vec<String>,
    correlations: Vec<Uuid>,
    reply_tos: Vec<String>,
    max_attempts: Vec<i32>,
    payloads: Vec<String>,
    traceparents: Vec<Option<String>>,
    due_ats: Vec<Option<DateTime<Utc>>>,
    delays_ms: Vec<Option<i64>>,
    priorities: Vec<i16>,
}

impl SendColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            domains: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            correlations: Vec::with_capacity(n),
            reply_tos: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            traceparents: Vec::with_capacity(n),
            due_ats: Vec::with_capacity(n),
            delays_ms: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, command: NewCommand) {
        self.domains.push(command.domain);
        self.ids.push(command.command_id);
        self.types.push(command.command_type);
        self.correlations.push(command.correlation_id);
        self.reply_tos.push(command.reply_to);
        self.max_attempts.push(i32::try_from(command.max_attempts).unwrap_or(i32::MAX));
        self.payloads.push(String::from(Box::<str>::from(command.payload)));
        self.traceparents.push(command.traceparent);
        self.due_ats.push(due_at(command.due));
        self.delays_ms.push(delay_ms(command.due));
        self.priorities.push(command.priority);
    }
}

/// How long leases keep using the full statement once priorities or limits
/// were seen (then the common one checks again).
const FULL_LEASE_FOR: Duration = Duration::from_secs(5);

/// A due instant, when the sender named one.
/// A batch's completion command as the `batches` row keeps it.
fn completion_json(c: &NewCommand) -> serde_json::Value {
    serde_json::json!({
        "domain": c.domain,
        "command_id": c.command_id,
        "command_type": c.command_type,
        "correlation_id": c.correlation_id,
        "reply_to": c.reply_to,
        "max_attempts": c.max_attempts,
        "priority": c.priority,
        "traceparent": c.traceparent,
        "payload": c.payload,
    })
}

fn due_at(due: Due) -> Option<DateTime<Utc>> {
    match due {
        Due::At(at) => Some(at),
        _ => None,
    }
}

/// A delay in milliseconds from the database's now, when the sender gave one.
fn delay_ms(due: Due) -> Option<i64> {
    match due {
        Due::After(delay) => Some(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        _ => None,
    }
}

/// Counts a running send for as long as it lives (also when its future is
/// dropped midway).
struct InFlight<'a> {
    counter: &'a AtomicUsize,
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let alone = counter.fetch_add(1, Ordering::Relaxed) == 0;
        Self { counter, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

fn reply_from_row(row: &PgRow) -> Result<Reply> {
    let get = || db("decoding a reply");
    let status: String = row.try_get("status").map_err(get())?;
    let status = ReplyStatus::parse(&status).ok_or_else(|| {
        Error::backend("decoding a reply", format!("unknown reply status {status:?}"))
    })?;
    Ok(Reply::new(
        row.try_get("domain").map_err(get())?,
        row.try_get("command_id").map_err(get())?,
        row.try_get("correlation_id").map_err(get())?,
        row.try_get("reply_to").map_err(get())?,
        status,
        raw(row.try_get("body").map_err(get())?, "decoding a reply body")?,
        row.try_get("created_at").map_err(get())?,
    ))
}

impl Transport for PgTransport {
    async fn commands_send(&self, commands: Vec<NewCommand>) -> Result<Vec<SendOutcome>> {
        // A lone send notifies inside its own statement (the fastest wake-up:
        // delivered at its commit). While other sends of this transport are
        // running, each in-transaction NOTIFY would hold PostgreSQL's global
        // notify lock through its commit's WAL flush and serialize their
        // commits (measured: 8 senders of 100-command batches spent most of
        // their time waiting on it), so concurrent sends leave waking to the
        // coalescing notifier after they commit.
        let in_flight = InFlight::enter(&self.inner.sends_in_flight);
        if in_flight.alone {
            return self.insert(&self.inner.pool, commands, Some(&self.inner.channel)).await;
        }
        let domains: std::collections::BTreeSet<String> =
            commands.iter().map(|c| c.domain.clone()).collect();
        let outcomes = self.insert(&self.inner.pool, commands, None).await?;
        // Committed (autocommit): now wake the workers.
        for domain in &domains {
            self.inner.notifier.poke(domain);
        }
        Ok(outcomes)
    }

    async fn commands_poll(&self, params: CommandsLease) -> Result<Polled> {
        let now = self.micros();
        if now >= self.inner.full_lease_until_us.load(Ordering::Relaxed) {
            let (polled, needs_full) = self.lease(&params, false).await?;
            if !needs_full {
                return Ok(polled);
            }
            // Priorities or limits are in use: the full statement for a while.
            let until = now.saturating_add(FULL_LEASE_FOR.as_micros() as u64);
            self.inner.full_lease_until_us.store(until, Ordering::Relaxed);
        }
        Ok(self.lease(&params, true).await?.0)
    }

    async fn transitions_apply(&self, transitions: Vec<Transition>) -> Result<Vec<bool>> {
        let applied = crate::transition::apply(self, &self.inner.pool, &transitions).await?;
        self.after_transitions(&transitions, &applied);
        Ok(applied)
    }

    async fn unit_of_work_begin(&self) -> Result<Box<dyn Any + Send>> {
        let pool = self.pool();
        let tx: PgUnitOfWork =
            pool.begin().await.explained(pool, "beginning the handler transaction").await?;
        Ok(Box::new(tx))
    }

    async fn commands_send_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        commands: Vec<NewCommand>,
    ) -> Result<Vec<SendOutcome>> {
        let tx = unit_of_work.downcast_mut::<PgUnitOfWork>().ok_or(Error::UnitOfWorkUnsupported)?;
        self.send_in(tx, commands).await
    }

    async fn transition_apply_in(
        &self,
        unit_of_work: Box<dyn Any + Send>,
        transition: Transition,
    ) -> Result<bool> {
        let mut tx =
            unit_of_work.downcast::<PgUnitOfWork>().map_err(|_| Error::UnitOfWorkUnsupported)?;
        let transitions = [transition];
        let applied = crate::transition::apply(self, &mut **tx, &transitions).await?;
        if applied.first() == Some(&true) {
            tx.commit().await.map_err(db("committing the handler transaction"))?;
            self.after_transitions(&transitions, &applied);
            return Ok(true);
        }
        Ok(false)
    }

    async fn batch_open_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        batch: NewBatch,
    ) -> Result<Vec<SendOutcome>> {
        let tx = unit_of_work.downcast_mut::<PgUnitOfWork>().ok_or(Error::UnitOfWorkUnsupported)?;
        cmdbus::backend::validate_commands(batch.members.iter().chain(&batch.completion))?;
        let completion = batch.completion.as_ref().map(completion_json);
        let tracked = Some((batch.batch_id, completion, batch.member_ids));
        // NOTIFY inside the transaction: workers wake at its commit.
        let channel = Some(self.inner.channel.as_str());
        Ok(self.insert_many(&mut **tx, batch.members, channel, tracked).await?.0)
    }

    async fn reply_get_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        domain: &str,
        command_id: Uuid,
    ) -> Result<Option<Reply>> {
        // On the handler's own connection: a second one from the pool could
        // wait forever while every handler holds one.
        let tx = unit_of_work.downcast_mut::<PgUnitOfWork>().ok_or(Error::UnitOfWorkUnsupported)?;
        let row = sqlx::query(sql(&self.inner.statements.reply_get))
            .bind(domain)
            .bind(command_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("reading a reply"))?;
        row.as_ref().map(reply_from_row).transpose()
    }

    async fn process_load_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        process_type: &str,
        process_id: Uuid,
    ) -> Result<Option<ProcessRecord>> {
        let tx = unit_of_work.downcast_mut::<PgUnitOfWork>().ok_or(Error::UnitOfWorkUnsupported)?;
        crate::process::load_locked(self, tx, process_type, process_id).await
    }

    async fn process_save_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        record: ProcessRecord,
    ) -> Result<()> {
        let tx = unit_of_work.downcast_mut::<PgUnitOfWork>().ok_or(Error::UnitOfWorkUnsupported)?;
        crate::process::save(self, tx, &record).await
    }

    async fn process_get(
        &self,
        process_type: &str,
        process_id: Uuid,
    ) -> Result<Option<ProcessRecord>> {
        crate::process::get(self, process_type, process_id).await
    }

    async fn processes_list(
        &self,
        filter: &ProcessFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<ProcessRecord>> {
        crate::process::list(self, filter, after, limit).await
    }

    async fn leases_expired(&self, limit: usize) -> Result<Vec<ExpiredLease>> {
        let rows = sqlx::query(sql(&self.inner.statements.leases_expired))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "finding expired leases")
            .await?;
        rows.iter()
            .map(|row| {
                let get = || db("decoding an expired lease");
                let lease = LeaseRef::new(
                    row.try_get("domain").map_err(get())?,
                    row.try_get("command_id").map_err(get())?,
                    row.try_get("lease_id").map_err(get())?,
                );
                Ok(ExpiredLease::new(
                    lease,
                    row.try_get("command_type").map_err(get())?,
                    count(row.try_get("attempts").map_err(get())?),
                    count(row.try_get("max_attempts").map_err(get())?),
                ))
            })
            .collect()
    }

    async fn lease_extend(&self, params: LeaseExtend) -> Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar(sql(&self.inner.statements.lease_extend))
            .bind(&params.lease.domain)
            .bind(params.lease.command_id)
            .bind(params.lease.lease_id)
            .bind(i64::try_from(params.extend_by.as_millis()).unwrap_or(i64::MAX))
            .fetch_optional(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "extending a lease")
            .await
    }

    async fn leases_extend(
        &self,
        leases: Vec<LeaseRef>,
        extend_by: std::time::Duration,
    ) -> Result<Vec<LeaseRef>> {
        let domains: Vec<&str> = leases.iter().map(|l| l.domain.as_str()).collect();
        let ids: Vec<Uuid> = leases.iter().map(|l| l.command_id).collect();
        let lease_ids: Vec<Uuid> = leases.iter().map(|l| l.lease_id).collect();
        let held: Vec<(String, Uuid)> = sqlx::query_as(sql(&self.inner.statements.leases_extend))
            .bind(&domains)
            .bind(&ids)
            .bind(&lease_ids)
            .bind(i64::try_from(extend_by.as_millis()).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "extending leases")
            .await?;
        let held: std::collections::HashSet<(String, Uuid)> = held.into_iter().collect();
        Ok(leases
            .into_iter()
            .filter(|l| !held.contains(&(l.domain.clone(), l.command_id)))
            .collect())
    }

    async fn command_get(&self, domain: &str, command_id: Uuid) -> Result<Option<CommandRecord>> {
        let row = sqlx::query(sql(&self.inner.statements.command_get))
            .bind(domain)
            .bind(command_id)
            .fetch_optional(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "reading a command")
            .await?;
        row.as_ref().map(crate::rows::record).transpose()
    }

    async fn batch_open(&self, batch: NewBatch) -> Result<Vec<SendOutcome>> {
        let batch_id = batch.batch_id;
        cmdbus::backend::validate_commands(batch.members.iter().chain(&batch.completion))?;
        let completion = batch.completion.as_ref().map(completion_json);
        let domains: std::collections::BTreeSet<String> =
            batch.members.iter().map(|c| c.domain.clone()).collect();
        let (outcomes, existed) = self
            .insert_many(
                &self.inner.pool,
                batch.members,
                None,
                Some((batch_id, completion, batch.member_ids)),
            )
            .await?;
        if !existed && outcomes.iter().all(SendOutcome::is_duplicate) {
            return Err(Error::InvalidBatch { batch_id, reason: "every member exists already" });
        }
        for domain in &domains {
            self.inner.notifier.poke(domain);
        }
        Ok(outcomes)
    }

    async fn batch_get(&self, batch_id: Uuid) -> Result<Option<BatchStatus>> {
        let row = sqlx::query(sql(&self.inner.statements.batch_get))
            .bind(batch_id)
            .fetch_optional(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "reading a batch")
            .await?;
        row.as_ref().map(crate::rows::batch_status).transpose()
    }

    async fn commands_find(&self, command_id: Uuid) -> Result<Vec<CommandRecord>> {
        crate::query::by_id(self.pool(), self.schema_ref(), command_id).await
    }

    async fn tsq_page(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<CommandRecord>> {
        crate::troubleshooting::page(self, filter, limit, after).await
    }

    async fn tsq_counts(&self, filter: &TsqFilter) -> Result<Vec<TsqCount>> {
        crate::troubleshooting::counts(self, filter).await
    }

    async fn tsq_act(
        &self,
        filter: &TsqFilter,
        action: BulkAction<'_>,
        plan: BulkPlan<'_>,
    ) -> Result<BulkOutcome> {
        crate::troubleshooting::act(self, filter, action, plan).await
    }

    async fn tsq_edit(&self, edit: &PayloadEdit, transition: Transition) -> Result<bool> {
        crate::troubleshooting::edit(self, edit, transition).await
    }

    async fn audit_list(&self, domain: &str, command_id: Uuid) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(sql(&self.inner.statements.audit_list))
            .bind(domain)
            .bind(command_id)
            .fetch_all(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "reading the audit trail")
            .await?;
        rows.iter()
            .map(|row| {
                let get = || db("decoding an audit row");
                let event: String = row.try_get("event").map_err(get())?;
                let details: String = row.try_get("details").map_err(get())?;
                Ok(AuditEntry::new(
                    row.try_get("domain").map_err(get())?,
                    row.try_get("command_id").map_err(get())?,
                    AuditEvent::parse(&event).ok_or_else(|| {
                        Error::backend("decoding an audit row", format!("unknown event {event:?}"))
                    })?,
                    count(row.try_get("attempt").map_err(get())?),
                    row.try_get("at").map_err(get())?,
                    serde_json::from_str(&details).unwrap_or_default(),
                ))
            })
            .collect()
    }

    async fn reply_wait(
        &self,
        domain: &str,
        command_id: Uuid,
        timeout: Duration,
    ) -> Result<Option<Reply>> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribe before the first look, so a reply committed in between wakes us.
        let mut wakeups = self.reply_wakeups().await.unwrap_or_else(WakeUps::never);
        let mut pause = Duration::from_millis(5);
        loop {
            // A dropped connection is retried until the deadline: waiting
            // callers should not fail because the database blinked.
            let last = match self.reply_get(domain, command_id).await {
                Ok(Some(reply)) => return Ok(Some(reply)),
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return last;
            }
            // Woken by the reply's NOTIFY; the growing pause is the fallback.
            let _ = tokio::time::timeout(pause.min(deadline - now), wakeups.next()).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    async fn replies_take(&self, reply_to: &str, limit: usize) -> Result<Vec<Reply>> {
        let rows = sqlx::query(sql(&self.inner.statements.replies_take))
            .bind(reply_to)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "taking replies")
            .await?;
        let mut replies = rows.iter().map(reply_from_row).collect::<Result<Vec<_>>>()?;
        replies.sort_by_key(|r| r.created_at);
        Ok(replies)
    }

    async fn flow_pause(
        &self,
        target: &FlowTarget,
        operator: &Operator,
        reason: &str,
    ) -> Result<bool> {
        crate::flow::pause(self, target, operator, reason).await
    }

    async fn flow_resume(&self, target: &FlowTarget, operator: &Operator) -> Result<bool> {
        crate::flow::resume(self, target, operator).await
    }

    async fn flow_pauses(&self) -> Result<Vec<Pause>> {
        crate::flow::list(self).await
    }

    async fn flow_limit(
        &self,
        target: &FlowTarget,
        change: LimitChange,
        operator: &Operator,
    ) -> Result<bool> {
        crate::flow::limit(self, target, change, operator).await
    }

    async fn flow_limits(&self) -> Result<Vec<Limit>> {
        crate::flow::limits(self).await
    }

    async fn limits_recount(&self) -> Result<()> {
        crate::flow::recount(self).await
    }

    async fn catalog_register(
        &self,
        types: Vec<CommandType>,
        served: bool,
    ) -> Result<Vec<Registered>> {
        crate::catalog::register(self, types, served).await
    }

    async fn catalog_list(&self) -> Result<Catalog> {
        crate::catalog::list(self).await
    }

    async fn wakeups(&self, domains: &[String]) -> Result<WakeUps> {
        let domains: std::collections::BTreeSet<String> = domains.iter().cloned().collect();
        let wanted = move |domain: &str| domains.contains(domain);
        let (_, wakeups) = notify::listen(&self.inner.pool, &self.inner.channel, wanted).await?;
        Ok(wakeups)
    }

    async fn queue_stats(&self, domains: &[String]) -> Result<Vec<QueueStats>> {
        let rows = sqlx::query(sql(&self.inner.statements.queue_stats))
            .bind(domains)
            .bind(i64::try_from(cmdbus::QUEUE_DEPTH_COUNTED_UP_TO).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .explained(&self.inner.pool, "reading queue stats")
            .await?;
        rows.iter()
            .map(|row| {
                let get = || db("decoding queue stats");
                let due: i64 = row.try_get("due").map_err(get())?;
                let age: f64 = row.try_get("oldest_age").map_err(get())?;
                Ok(QueueStats::new(
                    row.try_get("domain").map_err(get())?,
                    u64::try_from(due).unwrap_or(0),
                    Duration::try_from_secs_f64(age.max(0.0)).unwrap_or_default(),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_is_alone_only_while_no_other_runs() {
        let counter = AtomicUsize::new(0);
        let first = InFlight::enter(&counter);
        assert!(first.alone);
        let second = InFlight::enter(&counter);
        assert!(!second.alone, "a concurrent send leaves waking to the notifier");
        drop(first);
        drop(second);
        assert_eq!(counter.load(Ordering::Relaxed), 0, "a finished or dropped send is not counted");
        assert!(InFlight::enter(&counter).alone);
    }
}
