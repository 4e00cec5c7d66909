//! What a handler knows about the command it runs and can do besides.

use std::{any::Any, fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::{
    Command, Error, LeaseExtend, LeaseRef, LeasedCommand, NewBatch, NewCommand, Reply, Result,
    SendOptions, SendOutcome, TraceParent, Transport, process::ProcessRecord,
};

/// The object-safe slice of a transport a handler may use: its lease and
/// its unit of work.
pub(crate) trait HandlerBackend: Send + Sync {
    fn extend(&self, params: LeaseExtend) -> BoxFuture<'_, Result<Option<DateTime<Utc>>>>;
    fn begin(&self) -> BoxFuture<'_, Result<Box<dyn Any + Send>>>;
    fn send_in<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        commands: Vec<NewCommand>,
    ) -> BoxFuture<'a, Result<Vec<SendOutcome>>>;
    fn batch_in<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        batch: NewBatch,
    ) -> BoxFuture<'a, Result<Vec<SendOutcome>>>;
    fn process_load<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        process_type: &'a str,
        process_id: Uuid,
    ) -> BoxFuture<'a, Result<Option<ProcessRecord>>>;
    fn process_save<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        record: ProcessRecord,
    ) -> BoxFuture<'a, Result<()>>;
    fn reply_get<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        domain: &'a str,
        command_id: Uuid,
    ) -> BoxFuture<'a, Result<Option<Reply>>>;
}

impl<T: Transport> HandlerBackend for T {
    fn extend(&self, params: LeaseExtend) -> BoxFuture<'_, Result<Option<DateTime<Utc>>>> {
        Box::pin(self.lease_extend(params))
    }

    fn begin(&self) -> BoxFuture<'_, Result<Box<dyn Any + Send>>> {
        Box::pin(self.unit_of_work_begin())
    }

    fn send_in<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        commands: Vec<NewCommand>,
    ) -> BoxFuture<'a, Result<Vec<SendOutcome>>> {
        Box::pin(self.commands_send_in(unit_of_work, commands))
    }

    fn batch_in<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        batch: NewBatch,
    ) -> BoxFuture<'a, Result<Vec<SendOutcome>>> {
        Box::pin(self.batch_open_in(unit_of_work, batch))
    }

    fn process_load<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        process_type: &'a str,
        process_id: Uuid,
    ) -> BoxFuture<'a, Result<Option<ProcessRecord>>> {
        Box::pin(self.process_load_in(unit_of_work, process_type, process_id))
    }

    fn process_save<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        record: ProcessRecord,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.process_save_in(unit_of_work, record))
    }

    fn reply_get<'a>(
        &'a self,
        unit_of_work: &'a mut (dyn Any + Send),
        domain: &'a str,
        command_id: Uuid,
    ) -> BoxFuture<'a, Result<Option<Reply>>> {
        Box::pin(self.reply_get_in(unit_of_work, domain, command_id))
    }
}

/// The second argument of a handler.
///
/// ```
/// use cmdbus::{HandlerContext, HandlerError, command, handler};
///
/// #[command(domain = "reports", reply = ())]
/// struct BuildReport { month: u32 }
///
/// #[handler]
/// async fn build(cmd: BuildReport, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
///     tracing::info!(attempt = ctx.attempt(), month = cmd.month, "building");
///     Ok(())
/// }
/// ```
pub struct HandlerContext {
    lease: LeaseRef,
    command_type: String,
    correlation_id: Uuid,
    attempt: u32,
    max_attempts: u32,
    lease_expires_at: DateTime<Utc>,
    traceparent: TraceParent,
    control: Option<Arc<dyn HandlerBackend>>,
    backend: Option<Arc<dyn Any + Send + Sync>>,
    unit_of_work: Option<Box<dyn Any + Send>>,
    /// Commands sent through [`send`](HandlerContext::send), in order.
    sent: Vec<NewCommand>,
    max_payload_bytes: usize,
}

impl HandlerContext {
    pub(crate) fn for_lease<T: Transport>(
        command: &LeasedCommand,
        transport: &T,
        max_payload_bytes: usize,
    ) -> Self {
        let shared = Arc::new(transport.clone());
        Self {
            control: Some(Arc::clone(&shared) as Arc<dyn HandlerBackend>),
            backend: Some(shared),
            max_payload_bytes,
            ..Self::detached(command)
        }
    }

    /// A context bound to no transport, for calling a handler directly in a
    /// unit test: `extend_lease` succeeds without effect, and commands the
    /// handler [sends](Self::send) are only recorded ([`sent`](Self::sent)).
    pub(crate) fn detached(command: &LeasedCommand) -> Self {
        Self {
            lease: LeaseRef::of(command),
            command_type: command.command_type.clone(),
            correlation_id: command.correlation_id,
            attempt: command.attempt,
            max_attempts: command.max_attempts,
            lease_expires_at: command.lease_expires_at,
            traceparent: command
                .traceparent
                .map_or_else(TraceParent::root, |parent| parent.child()),
            control: None,
            backend: None,
            unit_of_work: None,
            sent: Vec::new(),
            max_payload_bytes: crate::DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// The command's id.
    pub fn command_id(&self) -> Uuid {
        self.lease.command_id
    }

    /// The command's correlation id.
    pub fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// The command's domain.
    pub fn domain(&self) -> &str {
        &self.lease.domain
    }

    /// The command's type name.
    pub fn command_type(&self) -> &str {
        &self.command_type
    }

    /// This attempt's number (1 for the first), crashed attempts included.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed for this command.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a transient failure now sends the command to the troubleshooting queue.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// This handler run's trace context: a child of the sender's. Pass it to
    /// [`SendOptions::traceparent`](crate::SendOptions::traceparent) when the
    /// handler sends commands of its own.
    pub fn traceparent(&self) -> TraceParent {
        self.traceparent
    }

    /// When the lease runs out unless extended.
    pub fn lease_expires_at(&self) -> DateTime<Utc> {
        self.lease_expires_at
    }

    /// Keeps the command leased for `by` from now, for long work. Fails with
    /// [`Error::LeaseLost`] if the lease expired meanwhile (another worker may
    /// have the command): stop the work.
    pub async fn extend_lease(&mut self, by: Duration) -> Result<DateTime<Utc>> {
        let Some(control) = &self.control else {
            self.lease_expires_at = Utc::now() + by;
            return Ok(self.lease_expires_at);
        };
        match control.extend(LeaseExtend::new(self.lease.clone(), by)).await? {
            Some(expires_at) => {
                self.lease_expires_at = expires_at;
                Ok(expires_at)
            }
            None => Err(Error::LeaseLost { command_id: self.lease.command_id }),
        }
    }

    /// Sends a follow-up command as part of this handler's unit of work: it
    /// is stored only when the handler succeeds and its completion is
    /// recorded, in one transaction — never when it fails, so a retried
    /// handler does not send twice. It shares this command's correlation
    /// id and continues its trace. On PostgreSQL it joins the handler
    /// transaction (`cmdbus_pg::PgHandlerContext::transaction`); in memory
    /// it is kept aside until the completion. An id already used in its
    /// domain is a [duplicate](SendOutcome::Duplicate), as with
    /// [`Bus::send`](crate::Bus::send).
    ///
    /// ```
    /// use cmdbus::{Command, HandlerContext, HandlerError, handler};
    ///
    /// #[derive(Command)]
    /// #[command(domain = "orders")]
    /// struct PlaceOrder { order: String }
    ///
    /// #[derive(Command)]
    /// #[command(domain = "shipping")]
    /// struct Ship { order: String }
    ///
    /// #[handler]
    /// async fn place(cmd: PlaceOrder, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    ///     ctx.send(Ship { order: cmd.order }).await?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Bus::send`](crate::Bus::send), and [`Error::UnitOfWorkUnsupported`]
    /// when the transport has no units of work.
    pub async fn send<C: Command>(&mut self, command: C) -> Result<SendOutcome> {
        self.send_with(command, SendOptions::new()).await
    }

    /// [`send`](Self::send) with options (its own id, correlation, delay, …).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_with<C: Command>(
        &mut self,
        command: C,
        mut options: SendOptions,
    ) -> Result<SendOutcome> {
        options.correlation_id.get_or_insert(self.correlation_id);
        options.traceparent.get_or_insert(self.traceparent);
        let prepared = crate::bus::prepare(&command, options, self.max_payload_bytes)?;
        let outcome = if self.control.is_some() {
            let (control, unit_of_work) = self.unit_of_work().await?;
            let mut outcomes = control.send_in(unit_of_work, vec![prepared.clone()]).await?;
            outcomes.pop().ok_or_else(|| Error::backend("send", "transport returned no outcome"))?
        } else if self.sent.iter().any(|c| c.same_command(&prepared)) {
            SendOutcome::Duplicate { command_id: prepared.command_id }
        } else {
            SendOutcome::Accepted { command_id: prepared.command_id }
        };
        if !outcome.is_duplicate() {
            self.sent.push(prepared);
        }
        Ok(outcome)
    }

    /// The commands of type `C` this handler has [sent](Self::send) so far,
    /// for assertions in unit tests.
    pub fn sent<C: Command>(&self) -> Vec<C> {
        self.sent
            .iter()
            .filter(|c| c.domain == C::DOMAIN && c.command_type == C::NAME)
            .filter_map(|c| serde_json::from_str(c.payload.get()).ok())
            .collect()
    }

    /// The transport and this handler's unit of work, begun on first use.
    async fn unit_of_work(
        &mut self,
    ) -> Result<(Arc<dyn HandlerBackend>, &mut (dyn Any + Send + 'static))> {
        let control = self.control.clone().ok_or(Error::UnitOfWorkUnsupported)?;
        let unit_of_work = match &mut self.unit_of_work {
            Some(unit_of_work) => unit_of_work,
            empty => empty.insert(control.begin().await?),
        };
        Ok((control, &mut **unit_of_work))
    }

    pub(crate) async fn open_batch_in(&mut self, batch: NewBatch) -> Result<Vec<SendOutcome>> {
        let (control, unit_of_work) = self.unit_of_work().await?;
        control.batch_in(unit_of_work, batch).await
    }

    pub(crate) async fn process_load(
        &mut self,
        process_type: &str,
        process_id: Uuid,
    ) -> Result<Option<ProcessRecord>> {
        let (control, unit_of_work) = self.unit_of_work().await?;
        control.process_load(unit_of_work, process_type, process_id).await
    }

    pub(crate) async fn process_save(&mut self, record: ProcessRecord) -> Result<()> {
        let (control, unit_of_work) = self.unit_of_work().await?;
        control.process_save(unit_of_work, record).await
    }

    pub(crate) async fn reply_get(
        &mut self,
        domain: &str,
        command_id: Uuid,
    ) -> Result<Option<Reply>> {
        let (control, unit_of_work) = self.unit_of_work().await?;
        control.reply_get(unit_of_work, domain, command_id).await
    }

    pub(crate) fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    pub(crate) fn lease_ref(&self) -> &LeaseRef {
        &self.lease
    }

    pub(crate) fn backend_any(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.backend.as_deref()
    }

    pub(crate) fn unit_of_work_any(&mut self) -> Option<&mut (dyn Any + Send)> {
        self.unit_of_work.as_deref_mut()
    }

    pub(crate) fn install_unit_of_work(&mut self, unit_of_work: Box<dyn Any + Send>) {
        self.unit_of_work = Some(unit_of_work);
    }

    pub(crate) fn take_unit_of_work(&mut self) -> Option<Box<dyn Any + Send>> {
        self.unit_of_work.take()
    }
}

impl fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerContext")
            .field("lease", &self.lease)
            .field("command_type", &self.command_type)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("unit_of_work", &self.unit_of_work.is_some())
            .field("sent", &self.sent.len())
            .finish_non_exhaustive()
    }
}
