//! The typed front door: send commands, await replies, start workers.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::future::BoxFuture;
use tracing::{Instrument, field::Empty, info_span};
use uuid::Uuid;

use crate::{
    AuditEntry, Catalog, Command, CommandRecord, CommandType, DEFAULT_REPLY_QUEUE, Error,
    NewCommand, Registered, Result, SendOptions, SendOutcome, Sent, TraceParent, Transport,
    TypedReply, WorkerBuilder,
};

/// Largest serialized payload accepted by default: 1 MiB. Commands are
/// instructions, not documents; store large data elsewhere and send its key.
/// Raise it with [`Bus::with_max_payload_bytes`].
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// A command bus over a transport (`cmdbus_pg::PgBus`, or
/// `cmdbus::testing::MemoryBus` in unit tests). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus<T> {
    transport: T,
    max_payload_bytes: usize,
    /// Command types this bus (and its clones) recorded in the catalog.
    introduced: Arc<Mutex<HashSet<(&'static str, &'static str)>>>,
}

impl<T: Transport> Bus<T> {
    /// A bus over `transport`.
    pub fn new(transport: T) -> Self {
        Self { transport, max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES, introduced: Arc::default() }
    }

    /// Sets the payload size limit checked at send.
    #[must_use]
    pub fn with_max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// The operator API: list the troubleshooting queue, retry, cancel or
    /// complete what is in it, cancel commands before they start.
    pub fn troubleshooting(&self) -> crate::Troubleshooting<T> {
        crate::Troubleshooting::new(self.transport.clone(), self.max_payload_bytes)
    }

    /// Every command with `command_id`, whatever its domain (ids are unique
    /// per domain only), for tools that have an id alone.
    pub async fn find(&self, command_id: Uuid) -> Result<Vec<CommandRecord>> {
        self.transport.commands_find(command_id).await
    }

    /// The transport underneath.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Sends a command with default options.
    ///
    /// (`send` and [`send_with`](Self::send_with) return a boxed future
    /// rather than being `async fn`s so that sending something that is not
    /// a [`Command`] is one compile error, at the argument, instead of three.)
    pub fn send<C: Command>(&self, command: C) -> BoxFuture<'_, Result<Sent<C, T>>> {
        self.send_with(command, SendOptions::new())
    }

    /// Sends a command. Sending an id that exists in the domain is a
    /// [duplicate](Sent::is_duplicate) and leaves the existing command
    /// untouched. The [`Sent`] handle waits for the reply, typed.
    pub fn send_with<C: Command>(
        &self,
        command: C,
        options: SendOptions,
    ) -> BoxFuture<'_, Result<Sent<C, T>>> {
        Box::pin(self.send_one(command, options))
    }

    async fn send_one<C: Command>(&self, command: C, options: SendOptions) -> Result<Sent<C, T>> {
        let prepared = self.prepare(&command, options)?;
        let span = info_span!(
            "cmdbus.send",
            domain = C::DOMAIN,
            command_type = C::NAME,
            command_id = %prepared.command_id,
            correlation_id = %prepared.correlation_id,
            traceparent = prepared.traceparent.as_deref().unwrap_or_default(),
            outcome = Empty,
            error = Empty,
        );
        let sent = self.transport.commands_send(vec![prepared]).instrument(span.clone()).await;
        let outcome = record_sent::<C>(&span, sent)?
            .pop()
            .ok_or_else(|| Error::backend("send", "transport returned no outcome"))?;
        span.record("outcome", if outcome.is_duplicate() { "duplicate" } else { "accepted" });
        Ok(Sent::new(self.clone(), outcome))
    }

    /// Sends many commands in one round trip, all or none; outcomes in order.
    pub async fn send_batch<C: Command>(
        &self,
        commands: impl IntoIterator<Item = C>,
    ) -> Result<Vec<SendOutcome>> {
        self.send_batch_with(commands.into_iter().map(|command| (command, SendOptions::new())))
            .await
    }

    /// [`send_batch`](Self::send_batch) with options per command: its own
    /// id (so a batch sent again stores nothing twice, and an id twice in
    /// one batch is stored once: the second is a duplicate), correlation
    /// id, reply queue, delay or priority.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cmdbus::Result<()> {
    /// use cmdbus::{Command, SendOptions, testing::MemoryBus};
    ///
    /// #[derive(Command)]
    /// #[command(domain = "docs-batch")]
    /// struct Invoice { order: u32 }
    ///
    /// let bus = MemoryBus::in_memory();
    /// let batch = || (1..=3).map(|order| {
    ///     let id = uuid::Uuid::from_u128(u128::from(order));
    ///     (Invoice { order }, SendOptions::new().command_id(id).reply_to("billing"))
    /// });
    /// assert!(bus.send_batch_with(batch()).await?.iter().all(|o| !o.is_duplicate()));
    /// assert!(bus.send_batch_with(batch()).await?.iter().all(|o| o.is_duplicate()));
    /// # Ok(()) }
    /// ```
    pub async fn send_batch_with<C: Command>(
        &self,
        commands: impl IntoIterator<Item = (C, SendOptions)>,
    ) -> Result<Vec<SendOutcome>> {
        let prepared = commands
            .into_iter()
            .map(|(command, options)| self.prepare(&command, options))
            .collect::<Result<Vec<_>>>()?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let span = info_span!(
            "cmdbus.send_batch",
            domain = C::DOMAIN,
            command_type = C::NAME,
            count = prepared.len(),
            error = Empty,
        );
        let sent = self.transport.commands_send(prepared).instrument(span.clone()).await;
        record_sent::<C>(&span, sent)
    }

    /// Opens a tracked batch: stores its members in one round trip, all or
    /// none, and its completion command to send when every member has
    /// ended. Opening the same batch again changes nothing and reports
    /// every member as a duplicate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBatch`] for a batch with no members or whose members
    /// all exist already, [`Error::PayloadTooLarge`], [`Error::Backend`].
    pub async fn open_batch(&self, batch: crate::Batch) -> Result<crate::OpenedBatch> {
        let batch = batch.into_new(self.max_payload_bytes)?;
        let batch_id = batch.batch_id;
        let outcomes = self.transport.batch_open(batch).await?;
        Ok(crate::OpenedBatch { batch_id, outcomes })
    }

    /// Where a tracked batch stands: members by status, ended or not.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownBatch`], [`Error::Backend`].
    pub async fn batch(&self, batch_id: Uuid) -> Result<crate::BatchStatus> {
        self.transport.batch_get(batch_id).await?.ok_or(Error::UnknownBatch { batch_id })
    }

    /// Records `C` in the command-type catalog (done for you on its first
    /// send), and warns when no worker has ever served its domain: such a
    /// command would stay PENDING until one starts.
    pub async fn register<C: Command>(&self) -> Result<Registered> {
        let registered = self
            .transport
            .catalog_register(vec![CommandType::of::<C>()], false)
            .await?
            .pop()
            .ok_or_else(|| Error::backend("recording a command type", "no outcome returned"))?;
        if registered.domain_served_at.is_none() {
            tracing::warn!(
                domain = C::DOMAIN,
                command_type = C::NAME,
                "cmdbus: no worker has ever served domain {:?}: its commands stay PENDING until one that handles {} starts",
                C::DOMAIN,
                C::NAME,
            );
        }
        Ok(registered)
    }

    /// Every version of every command type senders and workers recorded.
    pub async fn catalog(&self) -> Result<Catalog> {
        self.transport.catalog_list().await
    }

    /// On the first send of `C` through this bus, records it in the catalog
    /// in the background: a send never waits for, nor fails with, the
    /// catalog, and a send inside the caller's transaction never waits for a
    /// second connection.
    fn introduce<C: Command>(&self) {
        let first = self
            .introduced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((C::DOMAIN, C::NAME));
        if !first {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let bus = self.clone();
        runtime.spawn(async move {
            if let Err(error) = bus.register::<C>().await {
                tracing::warn!(
                    domain = C::DOMAIN,
                    command_type = C::NAME,
                    error = %error.report(),
                    "cmdbus: recording the command type in the catalog failed"
                );
            }
        });
    }

    /// Validates and encodes a command for a transport, without sending it.
    /// Backends use it for their own send forms (e.g. inside a transaction).
    /// The first time it sees `C`, records it in the catalog in the background.
    pub fn prepare<C: Command>(&self, command: &C, options: SendOptions) -> Result<NewCommand> {
        let prepared = prepare(command, options, self.max_payload_bytes)?;
        self.introduce::<C>();
        Ok(prepared)
    }

    /// Waits up to `timeout` for the reply to command `command_id` of type `C`.
    pub async fn wait_reply<C: Command>(
        &self,
        command_id: Uuid,
        timeout: Duration,
    ) -> Result<TypedReply<C::Reply>> {
        match self.transport.reply_wait(C::DOMAIN, command_id, timeout).await? {
            Some(reply) => reply.typed::<C::Reply>(),
            None => Err(Error::ReplyTimeout { command_id, timeout }),
        }
    }

    /// Takes (consumes) up to `limit` replies from reply queue `queue`, oldest
    /// first; decode each with [`Reply::typed`](crate::Reply::typed). Replies
    /// stay readable by [`wait_reply`](Self::wait_reply) after being taken.
    pub async fn take_replies(&self, queue: &str, limit: usize) -> Result<Vec<crate::Reply>> {
        self.transport.replies_take(queue, limit).await
    }

    /// A command of type `C` as stored.
    pub async fn command<C: Command>(&self, command_id: Uuid) -> Result<CommandRecord> {
        self.transport
            .command_get(C::DOMAIN, command_id)
            .await?
            .ok_or_else(|| Error::NotFound { domain: C::DOMAIN.to_owned(), command_id })
    }

    /// Pauses a domain or command type: its commands stay PENDING and no
    /// worker leases them until [`resume`](Self::resume). Running handlers
    /// finish. Recorded with the operator and reason. Returns `false` (and
    /// changes nothing) when it was paused already.
    pub async fn pause(
        &self,
        target: &crate::FlowTarget,
        operator: &crate::Operator,
        reason: &str,
    ) -> Result<bool> {
        crate::flow::check_reason(reason)?;
        self.transport.flow_pause(target, operator, reason).await
    }

    /// Resumes a paused domain or command type and wakes its workers.
    /// Returns `false` when it was not paused. Only the exact target a pause
    /// named is resumed (resuming a type does not lift its domain's pause).
    pub async fn resume(
        &self,
        target: &crate::FlowTarget,
        operator: &crate::Operator,
    ) -> Result<bool> {
        self.transport.flow_resume(target, operator).await
    }

    /// Limits how many commands of a domain or type are leased at once
    /// across every worker (e.g. 4 for a fragile partner API); leased-ahead
    /// commands count. Replaces an earlier limit on the same target.
    pub async fn limit(
        &self,
        target: &crate::FlowTarget,
        max_in_flight: u32,
        operator: &crate::Operator,
    ) -> Result<()> {
        if max_in_flight == 0 {
            return Err(Error::InvalidName {
                kind: "limit",
                value: "0".to_owned(),
                reason: "at least 1 at a time; to stop the work, pause it",
            });
        }
        let change = crate::LimitChange::MaxInFlight(max_in_flight);
        self.transport.flow_limit(target, change, operator).await.map(|_| ())
    }

    /// Limits how many commands of a domain or type are leased per second
    /// across every worker (bursts up to one second's worth). Replaces an
    /// earlier rate on the same target; keeps its concurrency limit.
    pub async fn rate_limit(
        &self,
        target: &crate::FlowTarget,
        per_second: f64,
        operator: &crate::Operator,
    ) -> Result<()> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(Error::InvalidName {
                kind: "rate limit",
                value: per_second.to_string(),
                reason: "a positive number of commands per second; to stop the work, pause it",
            });
        }
        let change = crate::LimitChange::PerSecond(per_second);
        self.transport.flow_limit(target, change, operator).await.map(|_| ())
    }

    /// Removes a target's limits (concurrency and rate); `false` if there
    /// were none.
    pub async fn unlimit(
        &self,
        target: &crate::FlowTarget,
        operator: &crate::Operator,
    ) -> Result<bool> {
        self.transport.flow_limit(target, crate::LimitChange::Remove, operator).await
    }

    /// The limits in force.
    pub async fn limits(&self) -> Result<Vec<crate::Limit>> {
        self.transport.flow_limits().await
    }

    /// The pauses in force.
    pub async fn pauses(&self) -> Result<Vec<crate::Pause>> {
        self.transport.flow_pauses().await
    }

    /// The audit trail of command `command_id` of type `C`, oldest first
    /// (empty for an id never sent). After a send, [`Sent::audit_trail`]
    /// needs no id at all.
    pub async fn audit_trail<C: Command>(&self, command_id: Uuid) -> Result<Vec<AuditEntry>> {
        self.transport.audit_list(C::DOMAIN, command_id).await
    }

    /// The audit trail of command `command_id` in `domain`, for tools
    /// without the command types compiled in.
    pub async fn audit_trail_in(&self, domain: &str, command_id: Uuid) -> Result<Vec<AuditEntry>> {
        crate::validate_domain(domain)?;
        self.transport.audit_list(domain, command_id).await
    }

    /// Configures a worker over this bus's transport.
    pub fn worker(&self) -> WorkerBuilder<T> {
        WorkerBuilder::new(self.transport.clone()).max_payload_bytes(self.max_payload_bytes)
    }
}

/// Counts sends in metrics and records a failure on the span.
fn record_sent<C: Command>(
    span: &tracing::Span,
    sent: Result<Vec<SendOutcome>>,
) -> Result<Vec<SendOutcome>> {
    match &sent {
        Ok(outcomes) => {
            let duplicates = outcomes.iter().filter(|o| o.is_duplicate()).count() as u64;
            let labels = [("domain", C::DOMAIN), ("command_type", C::NAME)];
            metrics::counter!("cmdbus_commands_sent_total", &labels)
                .increment(outcomes.len() as u64 - duplicates);
            if duplicates > 0 {
                metrics::counter!("cmdbus_commands_duplicate_total", &labels).increment(duplicates);
            }
        }
        Err(error) => {
            span.record("error", tracing::field::display(error));
        }
    }
    sent
}

/// Validates and encodes `command` (payloads up to `max_payload_bytes`).
pub(crate) fn prepare<C: Command>(
    command: &C,
    options: SendOptions,
    max_payload_bytes: usize,
) -> Result<NewCommand> {
    let payload = serde_json::value::to_raw_value(command).map_err(|source| Error::Encode {
        domain: C::DOMAIN,
        command_type: C::NAME,
        source,
    })?;
    let reply_to = options.reply_to.unwrap_or_else(|| DEFAULT_REPLY_QUEUE.to_owned());
    if reply_to.trim().is_empty() || reply_to.len() > 200 || reply_to.chars().any(char::is_control)
    {
        return Err(Error::InvalidName {
            kind: "reply queue",
            value: reply_to,
            reason: "it must be 1 to 200 bytes without control characters",
        });
    }
    let command_id = options.command_id.unwrap_or_else(Uuid::now_v7);
    let trace = options.traceparent.map_or_else(TraceParent::root, |parent| parent.child());
    let command = NewCommand::new(
        C::DOMAIN.to_owned(),
        C::NAME.to_owned(),
        command_id,
        options.correlation_id.unwrap_or(command_id),
        reply_to,
        options.max_attempts.unwrap_or(C::MAX_ATTEMPTS),
        payload,
    )
    .with_traceparent(Some(trace.to_string()))
    .with_due(options.due)
    .with_priority(options.priority.unwrap_or(C::PRIORITY));
    check_size(&command, max_payload_bytes)?;
    Ok(command)
}

/// Refuses a payload larger than `max_payload_bytes`.
pub(crate) fn check_size(command: &NewCommand, max_payload_bytes: usize) -> Result<()> {
    let size = command.payload.get().len();
    if size > max_payload_bytes {
        return Err(Error::PayloadTooLarge {
            domain: command.domain.clone(),
            command_type: command.command_type.clone(),
            size,
            limit: max_payload_bytes,
        });
    }
    Ok(())
}
