//! An in-memory [`Transport`] with the same semantics as the Postgres one:
//! idempotent send, leases with a visibility timeout, attempts counted at
//! lease time, audit trail, replies. For users' unit tests; nothing survives
//! the process.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::{json, value::RawValue};
use uuid::Uuid;

use crate::backend::{AttemptsChange, Due, Guard, TsqItem, WakeSender, validate_commands};
use crate::{
    AuditEntry, AuditEvent, BatchMembers, BatchOutcome, BatchStatus, BulkAction, BulkOutcome,
    BulkPlan, Catalog, CatalogEntry, CommandRecord, CommandStatus, CommandType, CommandsLease,
    Cursor, ExpiredLease, Failure, FlowTarget, LeaseExtend, LeaseRef, LeasedCommand, Limit,
    LimitChange, NewBatch, NewCommand, Operator, Page, Pause, PayloadEdit, Polled, QueueStats,
    Registered, Reply, ReplyStatus, Result, SendOutcome, Transition, Transport, TsqCount,
    TsqFilter, WakeUps,
    process::{ProcessFilter, ProcessRecord},
};

/// The in-memory transport. Clones share one store.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    state: Arc<Mutex<State>>,
    work: WakeSender,
    replies: WakeSender,
}

#[derive(Default)]
struct State {
    /// Commands in send order (the key is a sequence number).
    commands: BTreeMap<u64, Stored>,
    by_id: HashMap<(String, Uuid), u64>,
    audit: Vec<AuditEntry>,
    replies: Vec<(Reply, bool)>,
    next_seq: u64,
    pauses: Vec<Pause>,
    limits: Vec<HeldLimit>,
    catalog: Vec<CatalogEntry>,
    batches: HashMap<Uuid, StoredBatch>,
    processes: BTreeMap<(String, Uuid), ProcessRecord>,
}

/// A tracked batch: its counts so far and what to send when it ends.
struct StoredBatch {
    outcome: BatchOutcome,
    remaining: u64,
    completion: Option<NewCommand>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// A limit and, for a rate limit, its token bucket.
struct HeldLimit {
    limit: Limit,
    tokens: f64,
    refilled_at: DateTime<Utc>,
}

impl HeldLimit {
    /// Tokens available now (a rate limit's bucket refilled up to its burst).
    fn available(&self, now: DateTime<Utc>) -> Option<f64> {
        let rate = self.limit.per_second?;
        let elapsed = (now - self.refilled_at).to_std().unwrap_or_default().as_secs_f64();
        Some((self.tokens + elapsed * rate).min(Limit::burst(rate)))
    }
}

struct Stored {
    command: NewCommand,
    status: CommandStatus,
    attempts: u32,
    due_at: DateTime<Utc>,
    lease: Option<(Uuid, DateTime<Utc>)>,
    last_error: Option<Failure>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Stored {
    fn record(&self) -> CommandRecord {
        CommandRecord::new(
            self.command.clone(),
            self.status,
            self.attempts,
            self.last_error.clone(),
            self.created_at,
            self.updated_at,
        )
        .with_due_at(self.due_at)
    }
}

/// A handler's unit of work in memory: the commands it sent, stored only
/// when its completion is.
#[derive(Default)]
struct MemoryUnitOfWork {
    staged: Vec<NewCommand>,
    batches: Vec<NewBatch>,
    processes: Vec<ProcessRecord>,
}

impl MemoryUnitOfWork {
    fn of(unit_of_work: &mut (dyn Any + Send)) -> Result<&mut Self> {
        unit_of_work.downcast_mut::<Self>().ok_or(crate::Error::UnitOfWorkUnsupported)
    }
}

impl State {
    /// Opens a tracked batch: its new members stored, counted in it.
    fn open_batch(&mut self, batch: NewBatch, now: DateTime<Utc>) -> Result<Vec<SendOutcome>> {
        let batch_id = batch.batch_id;
        if self.batches.contains_key(&batch_id) {
            let duplicate = |c: &NewCommand| SendOutcome::Duplicate { command_id: c.command_id };
            return Ok(batch.members.iter().map(duplicate).collect());
        }
        let new = |c: &NewCommand| !self.by_id.contains_key(&(c.domain.clone(), c.command_id));
        if !batch.members.iter().any(new) {
            return Err(crate::Error::InvalidBatch {
                batch_id,
                reason: "every member exists already",
            });
        }
        let outcomes: Vec<SendOutcome> =
            batch.members.into_iter().map(|member| self.insert(member, now)).collect();
        let total = outcomes.iter().filter(|o| !o.is_duplicate()).count() as u64;
        let members = batch.member_ids.then(BatchMembers::default);
        let outcome = BatchOutcome { batch_id, total, members, ..BatchOutcome::default() };
        let stored = StoredBatch {
            outcome,
            remaining: total,
            completion: batch.completion,
            created_at: now,
            finished_at: None,
        };
        self.batches.insert(batch_id, stored);
        Ok(outcomes)
    }

    /// Stores a command as PENDING with its SENT audit row, unless its id
    /// is taken in its domain.
    fn insert(&mut self, command: NewCommand, now: DateTime<Utc>) -> SendOutcome {
        let command_id = command.command_id;
        let key = (command.domain.clone(), command_id);
        if self.by_id.contains_key(&key) {
            return SendOutcome::Duplicate { command_id };
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.audit(&command, AuditEvent::Sent, 0, json!({}));
        self.by_id.insert(key, seq);
        let due_at = match command.due {
            Due::After(delay) => now + delay,
            Due::At(at) => at,
            _ => now,
        };
        let stored = Stored {
            command,
            status: CommandStatus::Pending,
            attempts: 0,
            due_at,
            lease: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        self.commands.insert(seq, stored);
        SendOutcome::Accepted { command_id }
    }

    fn paused(&self, command: &NewCommand) -> bool {
        self.pauses.iter().any(|p| p.target.covers(&command.domain, &command.command_type))
    }

    /// The candidates (in lease order) that fit every limit, counting what
    /// is leased already and what this lease takes before them; rate limits
    /// spend their tokens. Also how long until a rate limit that held work
    /// back has a token again.
    fn within_limits(
        &mut self,
        candidates: impl Iterator<Item = u64>,
        now: DateTime<Utc>,
    ) -> (Vec<u64>, Option<Duration>) {
        let mut in_flight: Vec<usize> = self
            .limits
            .iter()
            .map(|held| {
                let leased = |c: &&Stored| {
                    c.status == CommandStatus::InProgress
                        && held.limit.target.covers(&c.command.domain, &c.command.command_type)
                };
                self.commands.values().filter(leased).count()
            })
            .collect();
        let mut tokens: Vec<Option<f64>> = self.limits.iter().map(|h| h.available(now)).collect();
        let mut held_back = false;
        let picked: Vec<u64> = candidates
            .filter(|seq| {
                let Some(c) = self.commands.get(seq) else { return false };
                let applies: Vec<usize> = (0..self.limits.len())
                    .filter(|i| {
                        self.limits[*i]
                            .limit
                            .target
                            .covers(&c.command.domain, &c.command.command_type)
                    })
                    .collect();
                let fits = applies.iter().all(|i| {
                    let room = self.limits[*i]
                        .limit
                        .max_in_flight
                        .is_none_or(|max| in_flight[*i] < max as usize);
                    room && tokens[*i].is_none_or(|t| t >= 1.0)
                });
                if fits {
                    for i in &applies {
                        in_flight[*i] += 1;
                        if let Some(t) = tokens[*i].as_mut() {
                            *t -= 1.0;
                        }
                    }
                } else {
                    held_back = true;
                }
                fits
            })
            .collect();
        let mut wait = None;
        for (held, left) in self.limits.iter_mut().zip(tokens) {
            let (Some(left), Some(rate)) = (left, held.limit.per_second) else { continue };
            held.tokens = left;
            held.refilled_at = now;
            if held_back && left < 1.0 {
                let until = Duration::from_secs_f64((1.0 - left) / rate);
                wait = Some(wait.map_or(until, |w: Duration| w.min(until)));
            }
        }
        (picked, wait)
    }

    /// Whether a worker may lease `c` now: PENDING, due, not paused.
    fn leasable(&self, c: &Stored, now: DateTime<Utc>) -> bool {
        c.status == CommandStatus::Pending && c.due_at <= now && !self.paused(&c.command)
    }

    fn audit(
        &mut self,
        command: &NewCommand,
        event: AuditEvent,
        attempt: u32,
        details: serde_json::Value,
    ) {
        self.audit.push(AuditEntry::new(
            command.domain.clone(),
            command.command_id,
            event,
            attempt,
            Utc::now(),
            details,
        ));
    }

    fn held(&mut self, lease: &LeaseRef) -> Option<u64> {
        let seq = *self.by_id.get(&(lease.domain.clone(), lease.command_id))?;
        let stored = self.commands.get(&seq)?;
        let current = stored.status == CommandStatus::InProgress
            && stored.lease.is_some_and(|(id, _)| id == lease.lease_id);
        current.then_some(seq)
    }

    fn reply(&mut self, command: &NewCommand, status: ReplyStatus, body: Box<RawValue>) {
        let reply = Reply::new(
            command.domain.clone(),
            command.command_id,
            command.correlation_id,
            command.reply_to.clone(),
            status,
            body,
            Utc::now(),
        );
        self.replies.push((reply, false));
    }

    /// Stores a transition if its guard holds; returns whether it did.
    fn apply(&mut self, transition: &Transition) -> bool {
        let key = (transition.domain.clone(), transition.command_id);
        let Some(seq) = self.by_id.get(&key).copied() else { return false };
        let Some(mut stored) = self.commands.remove(&seq) else { return false };
        let now = Utc::now();
        let lease_is = |lease_id: Uuid, expired: bool| {
            stored.status == CommandStatus::InProgress
                && stored.lease.is_some_and(|(id, at)| id == lease_id && (!expired || at <= now))
        };
        let holds = match transition.guard {
            Guard::Lease(lease_id) => lease_is(lease_id, false),
            Guard::ExpiredLease(lease_id) => lease_is(lease_id, true),
            Guard::Status(status) => stored.status == status,
        };
        if holds {
            stored.status = transition.status;
            stored.lease = None;
            stored.updated_at = now;
            if let Some(due_in) = transition.due_in {
                stored.due_at = now + due_in;
            }
            stored.attempts = match transition.attempts {
                AttemptsChange::Keep => stored.attempts,
                AttemptsChange::Reset => 0,
                AttemptsChange::GiveBack => stored.attempts.saturating_sub(1),
            };
            if let Some(failure) = &transition.last_error {
                stored.last_error = Some(failure.clone());
            }
            for planned in &transition.events {
                let mut details = planned.details.clone();
                if let (true, Some(map)) = (planned.with_due_at, details.as_object_mut()) {
                    map.insert("due_at".into(), json!(stored.due_at));
                }
                self.audit(&stored.command, planned.event, stored.attempts, details);
            }
            if let Some(reply) = &transition.reply {
                self.reply(&stored.command, reply.status, reply.body.clone());
            }
        }
        let ended = (holds && transition.status.is_terminal()).then_some(stored.command.batch_id);
        self.commands.insert(seq, stored);
        if let Some(Some(batch_id)) = ended {
            self.count_down(batch_id, transition.command_id, transition.status, now);
        }
        holds
    }

    /// A member of `batch_id` ended as `status`; the last one stores the
    /// batch's completion command, under the same lock.
    fn count_down(
        &mut self,
        batch_id: Uuid,
        command_id: Uuid,
        status: CommandStatus,
        now: DateTime<Utc>,
    ) {
        let Some(batch) = self.batches.get_mut(&batch_id) else { return };
        batch.remaining = batch.remaining.saturating_sub(1);
        let outcome = &mut batch.outcome;
        let members = outcome.members.as_mut();
        let (count, ids) = match status {
            CommandStatus::Completed => (&mut outcome.completed, members.map(|m| &mut m.completed)),
            CommandStatus::Failed => (&mut outcome.failed, members.map(|m| &mut m.failed)),
            _ => (&mut outcome.canceled, members.map(|m| &mut m.canceled)),
        };
        *count += 1;
        if let Some(ids) = ids {
            ids.push(command_id);
        }
        if batch.remaining > 0 {
            return;
        }
        batch.finished_at = Some(now);
        let Some(mut completion) = batch.completion.clone() else { return };
        // A payload that no longer reads as JSON is sent as it was stored.
        if let Ok(payload) = NewBatch::completion_payload(&completion.payload, &batch.outcome) {
            completion.payload = payload;
        }
        self.insert(completion, now);
    }
}

impl MemoryTransport {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later calls would misread, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every command, in send order.
    pub fn commands(&self) -> Vec<CommandRecord> {
        self.lock().commands.values().map(Stored::record).collect()
    }

    /// Whether no command is running and none is due now.
    pub fn is_idle(&self) -> bool {
        let now = Utc::now();
        let state = self.lock();
        state
            .commands
            .values()
            .all(|c| c.status != CommandStatus::InProgress && !state.leasable(c, now))
    }

    /// Whether every command has settled: none PENDING or running.
    pub fn is_settled(&self) -> bool {
        self.lock()
            .commands
            .values()
            .all(|c| !matches!(c.status, CommandStatus::Pending | CommandStatus::InProgress))
    }

    /// How long until the next PENDING command not yet due becomes due;
    /// `None` when there is none.
    pub fn next_due_in(&self) -> Option<Duration> {
        let now = Utc::now();
        let state = self.lock();
        let next = state
            .commands
            .values()
            .filter(|c| c.status == CommandStatus::Pending && c.due_at > now)
            .map(|c| c.due_at)
            .min()?;
        (next - now).to_std().ok()
    }

    /// Moves the store's clock forward by `by` for everything waiting on
    /// it: PENDING commands (retries after their backoff, delayed sends)
    /// become due that much sooner, and workers are woken. Tests use it to
    /// skip backoff instead of sleeping through it.
    pub fn advance(&self, by: Duration) {
        let by = chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX);
        let mut state = self.lock();
        for c in state.commands.values_mut().filter(|c| c.status == CommandStatus::Pending) {
            c.due_at = c.due_at.checked_sub_signed(by).unwrap_or(DateTime::<Utc>::MIN_UTC);
        }
        drop(state);
        self.work.wake();
    }

    /// Applies `transitions` under `state`'s lock, then wakes workers (some
    /// became due) and reply waiters (some replied) once it is released.
    fn apply_locked(
        &self,
        mut state: MutexGuard<'_, State>,
        transitions: &[Transition],
    ) -> Vec<bool> {
        let (mut due_now, mut replied) = (false, false);
        let applied: Vec<bool> = transitions
            .iter()
            .map(|transition| {
                let done = state.apply(transition);
                due_now |= done && transition.makes_due_now();
                replied |= done && transition.reply.is_some();
                done
            })
            .collect();
        drop(state);
        if due_now {
            self.work.wake();
        }
        if replied {
            self.replies.wake();
        }
        applied
    }

    /// TSQ items `filter` selects, most recently failed first.
    fn tsq_items(state: &State, filter: &TsqFilter) -> Vec<CommandRecord> {
        let mut items: Vec<CommandRecord> =
            state.commands.values().map(Stored::record).filter(|r| filter.matches(r)).collect();
        items.sort_by_key(|r| std::cmp::Reverse((r.updated_at, r.command_id)));
        items
    }
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport").field("commands", &self.lock().commands.len()).finish()
    }
}

impl Transport for MemoryTransport {
    async fn commands_send(&self, commands: Vec<NewCommand>) -> Result<Vec<SendOutcome>> {
        // All or none: refuse the batch before storing any of it.
        validate_commands(&commands)?;
        let outcomes = {
            let mut state = self.lock();
            let now = Utc::now();
            commands.into_iter().map(|command| state.insert(command, now)).collect()
        };
        // Woken after the "commit", never before.
        self.work.wake();
        Ok(outcomes)
    }

    async fn unit_of_work_begin(&self) -> Result<Box<dyn Any + Send>> {
        Ok(Box::new(MemoryUnitOfWork::default()))
    }

    async fn commands_send_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        commands: Vec<NewCommand>,
    ) -> Result<Vec<SendOutcome>> {
        let unit_of_work = MemoryUnitOfWork::of(unit_of_work)?;
        validate_commands(&commands)?;
        let state = self.lock();
        Ok(commands
            .into_iter()
            .map(|command| {
                let command_id = command.command_id;
                let stored = state.by_id.contains_key(&(command.domain.clone(), command_id));
                if stored || unit_of_work.staged.iter().any(|c| c.same_command(&command)) {
                    return SendOutcome::Duplicate { command_id };
                }
                unit_of_work.staged.push(command);
                SendOutcome::Accepted { command_id }
            })
            .collect())
    }

    async fn transition_apply_in(
        &self,
        unit_of_work: Box<dyn Any + Send>,
        transition: Transition,
    ) -> Result<bool> {
        let unit_of_work = unit_of_work
            .downcast::<MemoryUnitOfWork>()
            .map_err(|_| crate::Error::UnitOfWorkUnsupported)?;
        let mut state = self.lock();
        // Process saves are checked first: a lost race stores nothing.
        for record in &unit_of_work.processes {
            let key = (record.process_type.clone(), record.process_id);
            let stored = state.processes.get(&key).map_or(0, |p| p.version);
            if stored + 1 != record.version {
                return Err(crate::Error::backend(
                    "saving a process",
                    format!("{} {} changed meanwhile", record.process_type, record.process_id),
                ));
            }
        }
        let applied = state.apply(&transition);
        if applied {
            // The commit: what the handler sent is stored with its completion.
            let now = Utc::now();
            for command in unit_of_work.staged {
                state.insert(command, now);
            }
            for batch in unit_of_work.batches {
                // A step's batch and members have fresh ids: this stores it.
                let _ = state.open_batch(batch, now);
            }
            for mut record in unit_of_work.processes {
                record.updated_at = now;
                state.processes.insert((record.process_type.clone(), record.process_id), record);
            }
        }
        drop(state);
        if applied {
            self.work.wake();
            if transition.reply.is_some() {
                self.replies.wake();
            }
        }
        Ok(applied)
    }

    async fn commands_poll(&self, params: CommandsLease) -> Result<Polled> {
        let now = Utc::now();
        let expires = now + params.visibility_timeout;
        let mut state = self.lock();
        // Oldest due first (send order within an instant) ...
        let mut due: Vec<(DateTime<Utc>, u64, i16)> = state
            .commands
            .iter()
            .filter(|(_, c)| params.domains.contains(&c.command.domain) && state.leasable(c, now))
            .map(|(seq, c)| (c.due_at, *seq, c.command.priority))
            .collect();
        due.sort_unstable();
        // ... for the oldest-first share, then by priority for the rest.
        let oldest = params.oldest_first.min(params.limit).min(due.len());
        let mut rest = due.split_off(oldest);
        rest.sort_by_key(|(at, seq, priority)| (std::cmp::Reverse(*priority), *at, *seq));
        let candidates: Vec<u64> =
            due.into_iter().chain(rest).map(|(_, seq, _)| seq).take(params.limit).collect();
        let (picked, limited_for) = state.within_limits(candidates.into_iter(), now);
        let mut leased = Vec::new();
        for seq in picked {
            let Some(stored) = state.commands.get_mut(&seq) else { continue };
            let lease_id = Uuid::new_v4();
            stored.status = CommandStatus::InProgress;
            stored.attempts += 1;
            stored.lease = Some((lease_id, expires));
            stored.updated_at = now;
            let command = LeasedCommand::new(
                stored.command.clone(),
                stored.attempts,
                lease_id,
                expires,
                stored.created_at,
            );
            let details = json!({ "worker": params.worker_id });
            let (cmd, attempt) = (stored.command.clone(), stored.attempts);
            state.audit(&cmd, AuditEvent::Received, attempt, details);
            leased.push(command);
        }
        let next_due_in = state
            .commands
            .values()
            .filter(|c| {
                c.status == CommandStatus::Pending
                    && c.due_at > now
                    && params.domains.contains(&c.command.domain)
                    && !state.paused(&c.command)
            })
            .map(|c| (c.due_at - now).to_std().unwrap_or_default())
            .min();
        let next_due_in = match (next_due_in, limited_for) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Polled::new(leased, next_due_in))
    }

    async fn transitions_apply(&self, transitions: Vec<Transition>) -> Result<Vec<bool>> {
        Ok(self.apply_locked(self.lock(), &transitions))
    }

    async fn leases_expired(&self, limit: usize) -> Result<Vec<ExpiredLease>> {
        let now = Utc::now();
        Ok(self
            .lock()
            .commands
            .values()
            .filter_map(|c| {
                let (lease_id, expires) =
                    c.lease.filter(|_| c.status == CommandStatus::InProgress)?;
                (expires <= now).then(|| {
                    let lease =
                        LeaseRef::new(c.command.domain.clone(), c.command.command_id, lease_id);
                    ExpiredLease::new(
                        lease,
                        c.command.command_type.clone(),
                        c.attempts,
                        c.command.max_attempts,
                    )
                })
            })
            .take(limit)
            .collect())
    }

    async fn lease_extend(&self, params: LeaseExtend) -> Result<Option<DateTime<Utc>>> {
        let mut state = self.lock();
        let Some(seq) = state.held(&params.lease) else { return Ok(None) };
        let expires = Utc::now() + params.extend_by;
        if let Some(stored) = state.commands.get_mut(&seq) {
            stored.lease = stored.lease.map(|(id, _)| (id, expires));
        }
        Ok(Some(expires))
    }

    async fn leases_extend(
        &self,
        leases: Vec<LeaseRef>,
        extend_by: std::time::Duration,
    ) -> Result<Vec<LeaseRef>> {
        let mut state = self.lock();
        let expires = Utc::now() + extend_by;
        let mut lost = Vec::new();
        for lease in leases {
            match state.held(&lease).and_then(|seq| state.commands.get_mut(&seq)) {
                Some(stored) => stored.lease = stored.lease.map(|(id, _)| (id, expires)),
                None => lost.push(lease),
            }
        }
        Ok(lost)
    }

    async fn command_get(&self, domain: &str, command_id: Uuid) -> Result<Option<CommandRecord>> {
        let state = self.lock();
        let seq = state.by_id.get(&(domain.to_owned(), command_id));
        Ok(seq.and_then(|seq| state.commands.get(seq)).map(Stored::record))
    }

    async fn batch_open(&self, batch: NewBatch) -> Result<Vec<SendOutcome>> {
        validate_commands(batch.members.iter().chain(&batch.completion))?;
        let outcomes = self.lock().open_batch(batch, Utc::now())?;
        self.work.wake();
        Ok(outcomes)
    }

    async fn batch_open_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        batch: NewBatch,
    ) -> Result<Vec<SendOutcome>> {
        validate_commands(batch.members.iter().chain(&batch.completion))?;
        let unit_of_work = MemoryUnitOfWork::of(unit_of_work)?;
        let outcomes = batch
            .members
            .iter()
            .map(|c| SendOutcome::Accepted { command_id: c.command_id })
            .collect();
        unit_of_work.batches.push(batch);
        Ok(outcomes)
    }

    async fn process_load_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        process_type: &str,
        process_id: Uuid,
    ) -> Result<Option<ProcessRecord>> {
        MemoryUnitOfWork::of(unit_of_work)?;
        Ok(self.lock().processes.get(&(process_type.to_owned(), process_id)).cloned())
    }

    async fn process_save_in(
        &self,
        unit_of_work: &mut (dyn Any + Send),
        record: ProcessRecord,
    ) -> Result<()> {
        MemoryUnitOfWork::of(unit_of_work)?.processes.push(record);
        Ok(())
    }

    async fn process_get(
        &self,
        process_type: &str,
        process_id: Uuid,
    ) -> Result<Option<ProcessRecord>> {
        Ok(self.lock().processes.get(&(process_type.to_owned(), process_id)).cloned())
    }

    async fn processes_list(
        &self,
        filter: &ProcessFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<ProcessRecord>> {
        let state = self.lock();
        let mut rows: Vec<ProcessRecord> = state
            .processes
            .values()
            .filter(|p| filter.matches(p))
            .filter(|p| after.is_none_or(|c| c.precedes(p.created_at, p.process_id)))
            .cloned()
            .collect();
        rows.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.process_id)));
        rows.truncate(limit);
        Ok(rows)
    }

    async fn batch_get(&self, batch_id: Uuid) -> Result<Option<BatchStatus>> {
        let state = self.lock();
        let Some(batch) = state.batches.get(&batch_id) else { return Ok(None) };
        let mut status = BatchStatus::new(batch_id, batch.outcome.total, batch.created_at);
        status.finished_at = batch.finished_at;
        status.completion = batch.completion.as_ref().map(|c| (c.domain.clone(), c.command_id));
        for member in state.commands.values().filter(|c| c.command.batch_id == Some(batch_id)) {
            status.count(member.status, 1);
        }
        Ok(Some(status))
    }

    async fn commands_find(&self, command_id: Uuid) -> Result<Vec<CommandRecord>> {
        let state = self.lock();
        let found = state.commands.values().filter(|c| c.command.command_id == command_id);
        Ok(found.map(Stored::record).collect())
    }

    async fn tsq_page(
        &self,
        filter: &TsqFilter,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<CommandRecord>> {
        let items = Self::tsq_items(&self.lock(), filter);
        let after =
            |r: &CommandRecord| after.is_none_or(|c| c.precedes(r.updated_at, r.command_id));
        let rows = items.into_iter().filter(after).take(limit + 1).collect();
        Ok(Page::from_rows(rows, limit, |r| (r.updated_at, r.command_id)))
    }

    async fn tsq_counts(&self, filter: &TsqFilter) -> Result<Vec<TsqCount>> {
        let mut counts: BTreeMap<(String, String, Option<String>), i64> = BTreeMap::new();
        for r in Self::tsq_items(&self.lock(), filter) {
            let code = r.last_error.map(|e| e.code);
            *counts.entry((r.domain, r.command_type, code)).or_default() += 1;
        }
        Ok(counts.into_iter().map(|((d, t, c), n)| TsqCount::new(d, t, c, n)).collect())
    }

    async fn tsq_act(
        &self,
        filter: &TsqFilter,
        action: BulkAction<'_>,
        plan: BulkPlan<'_>,
    ) -> Result<BulkOutcome> {
        // One lock from selection to change: the action is atomic.
        let state = self.lock();
        let items: Vec<TsqItem> = Self::tsq_items(&state, filter)
            .into_iter()
            .map(|r| TsqItem::new(r.domain, r.command_id, r.command_type))
            .collect();
        let transitions = plan(&items)?;
        if action.dry_run {
            return Ok(BulkOutcome::of(&transitions, None));
        }
        let applied = self.apply_locked(state, &transitions);
        Ok(BulkOutcome::of(&transitions, Some(&applied)))
    }

    async fn tsq_edit(&self, edit: &PayloadEdit, transition: Transition) -> Result<bool> {
        let mut state = self.lock();
        let seq = state.by_id.get(&(edit.domain.clone(), edit.command_id)).copied();
        let Some(stored) = seq.and_then(|seq| state.commands.get_mut(&seq)) else {
            return Ok(false);
        };
        let same = |a: &RawValue, b: &RawValue| {
            serde_json::from_str::<serde_json::Value>(a.get()).ok()
                == serde_json::from_str::<serde_json::Value>(b.get()).ok()
        };
        if stored.status != CommandStatus::InTroubleshootingQueue
            || !same(&stored.command.payload, &edit.before)
        {
            return Ok(false);
        }
        stored.command.payload = edit.after.clone();
        // Still in the TSQ under the same lock: the retry's guard holds.
        Ok(self.apply_locked(state, &[transition]) == [true])
    }

    async fn audit_list(&self, domain: &str, command_id: Uuid) -> Result<Vec<AuditEntry>> {
        let state = self.lock();
        Ok(state
            .audit
            .iter()
            .filter(|e| e.domain == domain && e.command_id == command_id)
            .cloned()
            .collect())
    }

    async fn reply_wait(
        &self,
        domain: &str,
        command_id: Uuid,
        timeout: Duration,
    ) -> Result<Option<Reply>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.replies.subscribe();
        loop {
            let found = self
                .lock()
                .replies
                .iter()
                .find(|(r, _)| r.domain == domain && r.command_id == command_id)
                .map(|(r, _)| r.clone());
            if found.is_some() {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, changed.next()).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn replies_take(&self, reply_to: &str, limit: usize) -> Result<Vec<Reply>> {
        let mut state = self.lock();
        Ok(state
            .replies
            .iter_mut()
            .filter(|(r, taken)| !taken && r.reply_to == reply_to)
            .take(limit)
            .map(|(r, taken)| {
                *taken = true;
                r.clone()
            })
            .collect())
    }

    async fn flow_pause(
        &self,
        target: &FlowTarget,
        operator: &Operator,
        reason: &str,
    ) -> Result<bool> {
        let mut state = self.lock();
        if state.pauses.iter().any(|p| p.target == *target) {
            return Ok(false);
        }
        let pause =
            Pause::new(target.clone(), operator.as_str().to_owned(), reason.to_owned(), Utc::now());
        state.pauses.push(pause);
        Ok(true)
    }

    async fn flow_resume(&self, target: &FlowTarget, _operator: &Operator) -> Result<bool> {
        let resumed = {
            let mut state = self.lock();
            let before = state.pauses.len();
            state.pauses.retain(|p| p.target != *target);
            state.pauses.len() < before
        };
        if resumed {
            self.work.wake();
        }
        Ok(resumed)
    }

    async fn flow_pauses(&self) -> Result<Vec<Pause>> {
        Ok(self.lock().pauses.clone())
    }

    async fn flow_limit(
        &self,
        target: &FlowTarget,
        change: LimitChange,
        operator: &Operator,
    ) -> Result<bool> {
        let changed = {
            let mut state = self.lock();
            let now = Utc::now();
            let position = state.limits.iter().position(|h| h.limit.target == *target);
            let existing = position.map(|i| state.limits.remove(i));
            let kept = existing.as_ref().map(|h| h.limit.clone());
            let limit = Limit::new(target.clone(), operator.as_str().to_owned(), now);
            let limit = match change {
                LimitChange::MaxInFlight(max) => Some(
                    limit
                        .with_max_in_flight(Some(max))
                        .with_per_second(kept.and_then(|k| k.per_second)),
                ),
                LimitChange::PerSecond(rate) => Some(
                    limit
                        .with_per_second(Some(rate))
                        .with_max_in_flight(kept.and_then(|k| k.max_in_flight)),
                ),
                _ => None,
            };
            let removed = existing.is_some();
            let set = limit.is_some();
            if let Some(limit) = limit {
                let tokens = limit.per_second.map_or(0.0, Limit::burst);
                state.limits.push(HeldLimit { limit, tokens, refilled_at: now });
            }
            removed || set
        };
        // A raised or lifted limit may let waiting work run.
        self.work.wake();
        Ok(changed)
    }

    async fn flow_limits(&self) -> Result<Vec<Limit>> {
        Ok(self.lock().limits.iter().map(|h| h.limit.clone()).collect())
    }

    async fn catalog_register(
        &self,
        types: Vec<CommandType>,
        served: bool,
    ) -> Result<Vec<Registered>> {
        let now = Utc::now();
        let mut state = self.lock();
        let catalog = &mut state.catalog;
        let mut outcomes = Vec::with_capacity(types.len());
        for definition in types {
            let same_type = |e: &CatalogEntry| {
                e.definition.domain == definition.domain
                    && e.definition.command_type == definition.command_type
            };
            let known = catalog
                .iter_mut()
                .find(|e| same_type(e) && e.definition.same_definition(&definition));
            let (version, new_version) = match known {
                Some(entry) => {
                    entry.last_seen_at = now;
                    if served {
                        entry.last_served_at = Some(now);
                    }
                    (entry.version, false)
                }
                None => {
                    let version = catalog.iter().filter(|e| same_type(e)).map(|e| e.version).max();
                    let version = version.unwrap_or(0) + 1;
                    let entry = CatalogEntry::new(
                        definition.clone(),
                        version,
                        (now, now),
                        served.then_some(now),
                        served,
                    );
                    catalog.push(entry);
                    (version, true)
                }
            };
            let domain_served_at = catalog
                .iter()
                .filter(|e| e.definition.domain == definition.domain)
                .filter_map(|e| e.last_served_at)
                .max();
            outcomes.push(Registered::new(
                definition.domain,
                definition.command_type,
                version,
                new_version,
                domain_served_at,
            ));
        }
        Ok(outcomes)
    }

    async fn catalog_list(&self) -> Result<Catalog> {
        let live_since = Utc::now() - crate::LIVE_WITHIN;
        let mut entries = self.lock().catalog.clone();
        for entry in &mut entries {
            entry.live = entry.last_served_at.is_some_and(|at| at > live_since);
        }
        Ok(Catalog::new(entries))
    }

    async fn wakeups(&self, _domains: &[String]) -> Result<WakeUps> {
        Ok(self.work.subscribe())
    }

    async fn queue_stats(&self, domains: &[String]) -> Result<Vec<QueueStats>> {
        let now = Utc::now();
        let mut stats: BTreeMap<String, QueueStats> = BTreeMap::new();
        let state = self.lock();
        for c in state.commands.values() {
            if !domains.contains(&c.command.domain) || !state.leasable(c, now) {
                continue;
            }
            let age = (now - c.due_at).to_std().unwrap_or_default();
            let entry = stats
                .entry(c.command.domain.clone())
                .or_insert_with(|| QueueStats::new(c.command.domain.clone(), 0, Duration::ZERO));
            entry.due = (entry.due + 1).min(crate::QUEUE_DEPTH_COUNTED_UP_TO);
            entry.oldest_due_age = entry.oldest_due_age.max(age);
        }
        Ok(stats.into_values().collect())
    }
}
