//! The backend contract.
//!
//! **For backend authors.** Applications use [`Bus`](crate::Bus) and
//! [`Worker`](crate::Worker); they never call these methods. The contract may
//! change between minor versions while cmdbus is 0.x. Every backend must pass
//! the conformance suite (`cmdbus::conformance`, feature `conformance`).
//!
//! Methods are named `<noun>_<verb>`; parameters that may grow are
//! `#[non_exhaustive]` structs.

use std::{any::Any, future::Future, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    AuditEntry, BatchStatus, BulkAction, BulkOutcome, BulkPlan, Catalog, CommandRecord,
    CommandType, Cursor, ExpiredLease, Failure, FlowTarget, LeasedCommand, Limit, LimitChange,
    NewBatch, NewCommand, Operator, Page, Pause, PayloadEdit, Registered, Reply, Result,
    SendOutcome, Transition, TsqCount, TsqFilter, WakeUps,
    process::{ProcessFilter, ProcessRecord},
};

/// Expired leases taken back per rescue round.
const RESCUE_BATCH: usize = 1000;

fn recorded(applied: bool) -> RecordResult {
    if applied { RecordResult::Recorded } else { RecordResult::LeaseLost }
}

fn count(applied: &[bool]) -> u64 {
    applied.iter().filter(|a| **a).count() as u64
}

/// A storage backend for the bus.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Stores commands, each with a SENT audit row, all or none. A command
    /// whose (domain, id) exists is left untouched and reported
    /// [`SendOutcome::Duplicate`]. Outcomes are in input order. Workers
    /// serving the domains are woken after the commit, never before.
    fn commands_send(
        &self,
        commands: Vec<NewCommand>,
    ) -> impl Future<Output = Result<Vec<SendOutcome>>> + Send;

    /// Leases up to `params.limit` due commands of `params.domains`: PENDING
    /// commands whose due time has come, highest priority first, then oldest
    /// due, then send order (the first `params.oldest_first` of the batch
    /// oldest due first whatever their priority). Each lease counts an attempt and
    /// records a RECEIVED event. No command is leased twice at once. In the
    /// same round trip, says how long until the next command of the domains
    /// that is not due yet becomes due, so an idle worker sleeps exactly
    /// that long (`None` when there is none).
    fn commands_poll(&self, params: CommandsLease) -> impl Future<Output = Result<Polled>> + Send;

    /// [`commands_poll`](Self::commands_poll) without the next due time.
    fn commands_lease(
        &self,
        params: CommandsLease,
    ) -> impl Future<Output = Result<Vec<LeasedCommand>>> + Send {
        async move { Ok(self.commands_poll(params).await?.commands) }
    }

    /// Applies transitions planned by the core, each all or nothing and only
    /// if its [`Guard`](crate::backend::Guard) still holds; in input order, `true` where applied.
    /// Workers serving a domain are woken for transitions that
    /// [make a command due now](Transition::makes_due_now), reply waiters for
    /// stored replies. A backend stores plans; it never decides them.
    fn transitions_apply(
        &self,
        transitions: Vec<Transition>,
    ) -> impl Future<Output = Result<Vec<bool>>> + Send;

    /// Begins a unit of work for a handler: what it writes and sends inside
    /// it is stored only when [`transition_apply_in`](Self::transition_apply_in)
    /// commits it with the handler's completion; dropped, it rolls back.
    /// Backends without handler transactions keep the default, which refuses.
    fn unit_of_work_begin(&self) -> impl Future<Output = Result<Box<dyn Any + Send>>> + Send {
        async { Err(crate::Error::UnitOfWorkUnsupported) }
    }

    /// Sends commands inside a unit of work from
    /// [`unit_of_work_begin`](Self::unit_of_work_begin): stored (and workers
    /// woken) only if it commits. Outcomes as [`commands_send`](Self::commands_send).
    fn commands_send_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        commands: Vec<NewCommand>,
    ) -> impl Future<Output = Result<Vec<SendOutcome>>> + Send {
        let _ = (unit_of_work, commands);
        async { Err(crate::Error::UnitOfWorkUnsupported) }
    }

    /// Opens a tracked batch inside a unit of work (a process's step):
    /// stored only if it commits. Outcomes as [`batch_open`](Self::batch_open).
    fn batch_open_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        batch: NewBatch,
    ) -> impl Future<Output = Result<Vec<SendOutcome>>> + Send {
        let _ = (unit_of_work, batch);
        async { Err(crate::Error::UnitOfWorkUnsupported) }
    }

    /// A command's reply, read inside a unit of work (a process reads its
    /// steps' replies on the connection it holds). The default reads it
    /// outside.
    fn reply_get_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        domain: &str,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<Reply>>> + Send {
        let _ = unit_of_work;
        self.reply_wait(domain, command_id, Duration::ZERO)
    }

    /// A process instance, locked against other events of it until the
    /// unit of work ends; `None` before it starts.
    fn process_load_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        process_type: &str,
        process_id: Uuid,
    ) -> impl Future<Output = Result<Option<ProcessRecord>>> + Send {
        let _ = (unit_of_work, process_type, process_id);
        async { Err(crate::Error::UnitOfWorkUnsupported) }
    }

    /// Stores a process instance inside a unit of work: inserted at version
    /// 1, else updated only from version `record.version - 1` (an error
    /// otherwise, so a lost race retries the event).
    fn process_save_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        record: ProcessRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (unit_of_work, record);
        async { Err(crate::Error::UnitOfWorkUnsupported) }
    }

    /// A process instance as stored.
    fn process_get(
        &self,
        process_type: &str,
        process_id: Uuid,
    ) -> impl Future<Output = Result<Option<ProcessRecord>>> + Send;

    /// Process instances passing `filter`, newest first, after `after`.
    fn processes_list(
        &self,
        filter: &ProcessFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ProcessRecord>>> + Send;

    /// Applies one transition inside the unit of work the handler opened
    /// through its context, and commits it if applied.
    fn transition_apply_in(
        &self,
        unit_of_work: Box<dyn Any + Send>,
        transition: Transition,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (unit_of_work, transition);
        async { Err(crate::Error::UnitOfWorkUnsupported) }
    }

    /// Up to `limit` leases that have expired, any domain.
    fn leases_expired(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ExpiredLease>>> + Send;

    /// Records outcomes of leased commands (status, audit rows, reply), each
    /// only if its lease is still current; in input order.
    fn commands_record(
        &self,
        outcomes: &[Outcome],
    ) -> impl Future<Output = Result<Vec<RecordResult>>> + Send {
        let transitions = outcomes.iter().map(Transition::of_outcome).collect();
        async move { Ok(self.transitions_apply(transitions).await?.into_iter().map(recorded).collect()) }
    }

    /// Records one outcome inside the handler's unit of work and commits it.
    fn command_record_in(
        &self,
        unit_of_work: Box<dyn Any + Send>,
        outcome: Outcome,
    ) -> impl Future<Output = Result<RecordResult>> + Send {
        let transition = Transition::of_outcome(&outcome);
        async move { Ok(recorded(self.transition_apply_in(unit_of_work, transition).await?)) }
    }

    /// Pushes a lease's expiry to now + `params.extend_by`; `None` if the lease
    /// is no longer held.
    fn lease_extend(
        &self,
        params: LeaseExtend,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>>> + Send;

    /// The worker's heartbeat: pushes the expiry of every lease in `leases`
    /// to now + `extend_by`, in one round trip. Returns the leases that are
    /// no longer held (expired and rescued, or taken over), in input order.
    fn leases_extend(
        &self,
        leases: Vec<LeaseRef>,
        extend_by: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<LeaseRef>>> + Send;

    /// Gives leased commands back without an outcome (graceful shutdown):
    /// PENDING, due now, the unused attempt returned, RELEASED audited.
    /// Returns how many were still held.
    fn leases_release(&self, leases: Vec<LeaseRef>) -> impl Future<Output = Result<u64>> + Send {
        let transitions = leases.iter().map(Transition::release).collect();
        async move { Ok(count(&self.transitions_apply(transitions).await?)) }
    }

    /// Takes back expired leases, due again at once (or to the
    /// troubleshooting queue after the last attempt), with a LEASE_EXPIRED
    /// audit row. Returns how many were rescued. Workers use
    /// [`leases_rescue_with`](Self::leases_rescue_with) and their retry policies.
    fn leases_rescue(&self) -> impl Future<Output = Result<u64>> + Send {
        self.leases_rescue_with(|_| Duration::ZERO)
    }

    /// [`leases_rescue`](Self::leases_rescue), each command due again after
    /// `backoff(lease)`.
    fn leases_rescue_with(
        &self,
        backoff: impl Fn(&ExpiredLease) -> Duration + Send,
    ) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let expired = self.leases_expired(RESCUE_BATCH).await?;
            if expired.is_empty() {
                return Ok(0);
            }
            let transitions = expired.iter().map(|e| Transition::rescue(e, backoff(e))).collect();
            Ok(count(&self.transitions_apply(transitions).await?))
        }
    }

    /// One command, if it exists.
    fn command_get(
        &self,
        domain: &str,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<CommandRecord>>> + Send;

    /// Opens a tracked batch in one round trip, all or none: its members
    /// (each with `batch_id` set; an id that exists already is a duplicate
    /// and not a member) and the batch with its member count and completion
    /// command. A batch whose id exists changes nothing: every member is
    /// reported a duplicate. A batch none of whose members is new is
    /// refused ([`Error::InvalidBatch`](crate::Error::InvalidBatch)).
    ///
    /// Applying a transition that ends a member (COMPLETED, FAILED,
    /// CANCELED) must count it down in the same transaction; the one that
    /// ends the last member stores the completion command, its payload from
    /// [`NewBatch::completion_payload`](crate::backend::NewBatch::completion_payload).
    fn batch_open(&self, batch: NewBatch) -> impl Future<Output = Result<Vec<SendOutcome>>> + Send;

    /// A batch's members by status, or `None` for an unknown batch.
    fn batch_get(&self, batch_id: Uuid)
    -> impl Future<Output = Result<Option<BatchStatus>>> + Send;

    /// Every command with this id, whichever domain holds it (ids are unique
    /// per domain only).
    fn commands_find(
        &self,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Vec<CommandRecord>>> + Send;

    /// Troubleshooting-queue items `filter` selects (see
    /// [`TsqFilter::matches`]), most recently failed first (`updated_at`,
    /// then id, descending), at most `limit` (already within 1–1000) after
    /// `after`, with the cursor of the next page.
    fn tsq_page(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<Page<CommandRecord>>> + Send;

    /// Items `filter` selects per domain, type and error code, ordered by those.
    fn tsq_counts(&self, filter: &TsqFilter) -> impl Future<Output = Result<Vec<TsqCount>>> + Send;

    /// One bulk operator action, atomically: selects the items `filter`
    /// selects (locking them and skipping any another operator holds,
    /// unless `action.dry_run`), asks `plan` for their transitions (it may
    /// refuse them all), applies those unless `action.dry_run`, and records
    /// the action with its operator and filter. Reports it with
    /// [`BulkOutcome::of`].
    fn tsq_act(
        &self,
        filter: &TsqFilter,
        action: BulkAction<'_>,
        plan: BulkPlan<'_>,
    ) -> impl Future<Output = Result<BulkOutcome>> + Send;

    /// Stores an operator's payload edit with `transition` (the retry it
    /// comes with), atomically, only if the command is still in the
    /// troubleshooting queue with the payload `edit.before`. `false` when
    /// that guard refuses; nothing changed then.
    fn tsq_edit(
        &self,
        edit: &PayloadEdit,
        transition: Transition,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// A command's audit trail, oldest first.
    fn audit_list(
        &self,
        domain: &str,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;

    /// Waits up to `timeout` for a command's reply; `None` if none came.
    fn reply_wait(
        &self,
        domain: &str,
        command_id: Uuid,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<Reply>>> + Send;

    /// Takes (removes) up to `limit` replies from a reply queue, oldest first.
    fn replies_take(
        &self,
        reply_to: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Reply>>> + Send;

    /// Pauses `target` (no lease takes its commands until resumed), recorded
    /// with the operator and reason. `false` if it was paused already.
    fn flow_pause(
        &self,
        target: &FlowTarget,
        operator: &Operator,
        reason: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Resumes `target` and wakes its workers. `false` if it was not paused.
    fn flow_resume(
        &self,
        target: &FlowTarget,
        operator: &Operator,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The pauses in force.
    fn flow_pauses(&self) -> impl Future<Output = Result<Vec<Pause>>> + Send;

    /// Changes the fleet-wide limits of `target` (how many of its commands
    /// are leased at once, how many per second), recorded with the
    /// operator. Leases honour them atomically across workers. `false` when
    /// removing limits that did not exist.
    fn flow_limit(
        &self,
        target: &FlowTarget,
        change: LimitChange,
        operator: &Operator,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The limits in force.
    fn flow_limits(&self) -> impl Future<Output = Result<Vec<Limit>>> + Send;

    /// Heals a backend's kept count of leased commands per limit (workers
    /// call it with their maintenance). Backends that count on every lease
    /// keep the default, which does nothing.
    fn limits_recount(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Records command types in the catalog: a definition seen before
    /// (same schemas and policy) is stamped as seen now, a changed one
    /// becomes the type's next version. `served`: the caller is a worker
    /// with handlers for these types, so they are stamped served now too.
    /// Outcomes in input order.
    fn catalog_register(
        &self,
        types: Vec<CommandType>,
        served: bool,
    ) -> impl Future<Output = Result<Vec<Registered>>> + Send;

    /// Every version of every recorded command type.
    fn catalog_list(&self) -> impl Future<Output = Result<Catalog>> + Send;

    /// A subscription that fires when commands of `domains` may be due.
    fn wakeups(&self, domains: &[String]) -> impl Future<Output = Result<WakeUps>> + Send;

    /// Due PENDING commands per domain of `domains`, counted up to
    /// [`QUEUE_DEPTH_COUNTED_UP_TO`], and how long the oldest has waited
    /// (for metrics and health).
    fn queue_stats(
        &self,
        domains: &[String],
    ) -> impl Future<Output = Result<Vec<QueueStats>>> + Send;
}

/// Parameters of [`Transport::commands_lease`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommandsLease {
    /// Domains to lease from.
    pub domains: Vec<String>,
    /// At most this many commands.
    pub limit: usize,
    /// How long the lease lasts.
    pub visibility_timeout: Duration,
    /// Who leases (recorded for operators).
    pub worker_id: String,
    /// How many of the batch are taken oldest-due-first whatever their
    /// priority (the worker's guard against starving low priorities); the
    /// rest go by priority, then due time, then send order.
    pub oldest_first: usize,
}

impl CommandsLease {
    /// Builds the parameters.
    pub fn new(
        domains: Vec<String>,
        limit: usize,
        visibility_timeout: Duration,
        worker_id: String,
    ) -> Self {
        Self { domains, limit, visibility_timeout, worker_id, oldest_first: 0 }
    }

    /// Takes `n` of the batch oldest-due-first, whatever their priority.
    #[must_use]
    pub fn with_oldest_first(mut self, n: usize) -> Self {
        self.oldest_first = n;
        self
    }
}

/// What [`Transport::commands_poll`] found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Polled {
    /// The commands leased.
    pub commands: Vec<LeasedCommand>,
    /// How long until the next command of the domains that is not due yet
    /// becomes due; `None` when there is none (or the batch was full).
    pub next_due_in: Option<Duration>,
}

impl Polled {
    /// Builds the result; for backends.
    pub fn new(commands: Vec<LeasedCommand>, next_due_in: Option<Duration>) -> Self {
        Self { commands, next_due_in }
    }
}

/// Parameters of [`Transport::lease_extend`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LeaseExtend {
    /// The lease.
    pub lease: LeaseRef,
    /// New expiry: now + this.
    pub extend_by: Duration,
}

impl LeaseExtend {
    /// Builds the parameters.
    pub fn new(lease: LeaseRef, extend_by: Duration) -> Self {
        Self { lease, extend_by }
    }
}

/// Names one lease of one command.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LeaseRef {
    /// Domain.
    pub domain: String,
    /// Command id.
    pub command_id: Uuid,
    /// Lease id from [`LeasedCommand::lease_id`].
    pub lease_id: Uuid,
}

impl LeaseRef {
    /// Builds a reference.
    pub fn new(domain: String, command_id: Uuid, lease_id: Uuid) -> Self {
        Self { domain, command_id, lease_id }
    }

    /// The lease of a leased command.
    pub fn of(command: &LeasedCommand) -> Self {
        Self::new(command.domain.clone(), command.command_id, command.lease_id)
    }
}

/// What happened to one leased command.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The lease the outcome is recorded under.
    pub lease: LeaseRef,
    /// The attempt that produced it.
    pub attempt: u32,
    /// What happened.
    pub kind: OutcomeKind,
    /// Whether the command belongs to a tracked batch, if known.
    pub batch_member: Option<bool>,
}

impl Outcome {
    /// Builds an outcome.
    pub fn new(lease: LeaseRef, attempt: u32, kind: OutcomeKind) -> Self {
        Self { lease, attempt, kind, batch_member: None }
    }

    /// The outcome of `command`'s attempt, which knows whether it is in a batch.
    pub fn of(command: &LeasedCommand, kind: OutcomeKind) -> Self {
        Self {
            batch_member: Some(command.batch_id.is_some()),
            ..Self::new(LeaseRef::of(command), command.attempt, kind)
        }
    }
}

/// The decision for one attempt, made by the worker's executor.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// COMPLETED; COMPLETED audit; SUCCESS reply with `reply`.
    Completed {
        /// The handler's reply, serialized.
        reply: Box<RawValue>,
    },
    /// FAILED (business rule); FAILED audit; FAILED reply.
    Failed {
        /// Why.
        failure: Failure,
    },
    /// PENDING due after `delay`; FAILED + RETRY_SCHEDULED audit.
    Retry {
        /// Why.
        failure: Failure,
        /// When the next attempt is due.
        delay: Duration,
    },
    /// IN_TROUBLESHOOTING_QUEUE; FAILED (+ RETRY_EXHAUSTED) + MOVED_TO_TSQ audit; no reply.
    Troubleshoot {
        /// Why.
        failure: Failure,
        /// What sent it there.
        reason: TsqReason,
    },
}

/// Why a command entered the troubleshooting queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TsqReason {
    /// A permanent error (including a payload that no longer decodes).
    Permanent,
    /// Transient errors used up every attempt.
    RetriesExhausted,
    /// No handler for its type in the worker that leased it.
    NoHandler,
    /// Its lease expired on the last attempt (the worker kept dying).
    LeaseExpired,
}

impl TsqReason {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::RetriesExhausted => "retries_exhausted",
            Self::NoHandler => "no_handler",
            Self::LeaseExpired => "lease_expired",
        }
    }
}

/// Whether an outcome was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordResult {
    /// Recorded.
    Recorded,
    /// The lease was no longer held (expired and taken by another worker,
    /// or released); nothing was written.
    LeaseLost,
}

/// Due work waiting in one domain.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Domain.
    pub domain: String,
    /// PENDING commands that are due, at most [`QUEUE_DEPTH_COUNTED_UP_TO`].
    pub due: u64,
    /// How long the oldest due command has been due.
    pub oldest_due_age: Duration,
}

/// How far [`Transport::queue_stats`] counts a backlog. Every worker samples
/// its queues every rescue interval; counting all of a million due commands
/// took PostgreSQL ~0.3 s each time, while a deeper backlog tells an
/// operator nothing a count of ten thousand does not.
pub const QUEUE_DEPTH_COUNTED_UP_TO: u64 = 10_000;

impl QueueStats {
    /// Builds the stats; for backends.
    pub fn new(domain: String, due: u64, oldest_due_age: Duration) -> Self {
        Self { domain, due, oldest_due_age }
    }
}
