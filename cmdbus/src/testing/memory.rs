//! An in-memory [`Transport`] with the same semantics as the Postgres one:
//! idempotent send, leases with a visibility timeout, attempts counted at
//! lease time, audit trail, replies. For users' unit tests; nothing survives
//! the process.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::{json, value::RawValue};
use uuid::Uuid;

use crate::{
    AuditEntry, AuditEvent, CommandRecord, CommandStatus, CommandsLease, Failure, LeaseExtend,
    LeaseRef, LeasedCommand, NewCommand, Operator, Outcome, OutcomeKind, QueueStats, RecordResult,
    Reply, ReplyStatus, Result, SendOutcome, Transport, TsqReason, WakeSender, WakeUps,
    canceled_reply_body, failed_reply_body,
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
    }
}

impl State {
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
        self.lock().commands.values().all(|c| {
            c.status != CommandStatus::InProgress
                && !(c.status == CommandStatus::Pending && c.due_at <= now)
        })
    }

    /// Moves a command from the troubleshooting queue back to PENDING with
    /// its attempts reset, as an operator would.
    pub fn tsq_retry(&self, domain: &str, command_id: Uuid, operator: &Operator) -> Result<()> {
        self.operator_action(domain, command_id, CommandStatus::Pending, |state, stored| {
            stored.attempts = 0;
            stored.due_at = Utc::now();
            state.audit(
                &stored.command,
                AuditEvent::OperatorRetry,
                0,
                json!({ "operator": operator }),
            );
        })?;
        self.work.wake();
        Ok(())
    }

    /// Cancels a command in the troubleshooting queue with a CANCELED reply.
    pub fn tsq_cancel(
        &self,
        domain: &str,
        command_id: Uuid,
        operator: &Operator,
        reason: &str,
    ) -> Result<()> {
        self.operator_action(domain, command_id, CommandStatus::Canceled, |state, stored| {
            let details = json!({ "operator": operator, "reason": reason });
            state.audit(&stored.command, AuditEvent::OperatorCancel, stored.attempts, details);
            state.reply(
                &stored.command,
                ReplyStatus::Canceled,
                canceled_reply_body(reason, operator.as_str()),
            );
        })?;
        self.replies.wake();
        Ok(())
    }

    fn operator_action(
        &self,
        domain: &str,
        command_id: Uuid,
        to: CommandStatus,
        apply: impl FnOnce(&mut State, &mut Stored),
    ) -> Result<()> {
        let mut state = self.lock();
        let seq = *state
            .by_id
            .get(&(domain.to_owned(), command_id))
            .ok_or_else(|| crate::Error::NotFound { domain: domain.to_owned(), command_id })?;
        let Some(mut stored) = state.commands.remove(&seq) else {
            return Err(crate::Error::NotFound { domain: domain.to_owned(), command_id });
        };
        // Operators act only on the troubleshooting queue, whatever else the
        // state machine allows (a worker may retry an IN_PROGRESS command; an
        // operator may not).
        let result = if stored.status == CommandStatus::InTroubleshootingQueue {
            stored.status.transition(to).map(|to| {
                stored.status = to;
                stored.updated_at = Utc::now();
                apply(&mut state, &mut stored);
            })
        } else {
            Err(crate::Error::IllegalTransition { from: stored.status, to })
        };
        state.commands.insert(seq, stored);
        result
    }
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport").field("commands", &self.lock().commands.len()).finish()
    }
}

impl Transport for MemoryTransport {
    async fn commands_send(&self, commands: Vec<NewCommand>) -> Result<Vec<SendOutcome>> {
        let mut outcomes = Vec::with_capacity(commands.len());
        {
            // All or none: refuse the batch before storing any of it.
            for command in &commands {
                crate::validate_domain(&command.domain)?;
                crate::validate_command_type(&command.command_type)?;
            }
            let mut state = self.lock();
            for command in commands {
                let key = (command.domain.clone(), command.command_id);
                if state.by_id.contains_key(&key) {
                    outcomes.push(SendOutcome::Duplicate { command_id: command.command_id });
                    continue;
                }
                let now = Utc::now();
                let seq = state.next_seq;
                state.next_seq += 1;
                state.audit(&command, AuditEvent::Sent, 0, json!({}));
                outcomes.push(SendOutcome::Accepted { command_id: command.command_id });
                state.by_id.insert(key, seq);
                let stored = Stored {
                    command,
                    status: CommandStatus::Pending,
                    attempts: 0,
                    due_at: now,
                    lease: None,
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                };
                state.commands.insert(seq, stored);
            }
        }
        // Woken after the "commit", never before.
        self.work.wake();
        Ok(outcomes)
    }

    async fn commands_lease(&self, params: CommandsLease) -> Result<Vec<LeasedCommand>> {
        let now = Utc::now();
        let expires = now + params.visibility_timeout;
        let mut state = self.lock();
        let mut due: Vec<(DateTime<Utc>, u64)> = state
            .commands
            .iter()
            .filter(|(_, c)| {
                c.status == CommandStatus::Pending
                    && c.due_at <= now
                    && params.domains.contains(&c.command.domain)
            })
            .map(|(seq, c)| (c.due_at, *seq))
            .collect();
        due.sort_unstable();
        let mut leased = Vec::new();
        for (_, seq) in due.into_iter().take(params.limit) {
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
        Ok(leased)
    }

    async fn commands_record(&self, outcomes: &[Outcome]) -> Result<Vec<RecordResult>> {
        let mut results = Vec::with_capacity(outcomes.len());
        let mut replied = false;
        {
            let mut state = self.lock();
            for outcome in outcomes {
                let Some(seq) = state.held(&outcome.lease) else {
                    results.push(RecordResult::LeaseLost);
                    continue;
                };
                let Some(mut stored) = state.commands.remove(&seq) else { continue };
                replied |= apply_outcome(&mut state, &mut stored, outcome);
                state.commands.insert(seq, stored);
                results.push(RecordResult::Recorded);
            }
        }
        if replied {
            self.replies.wake();
        }
        Ok(results)
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

    async fn leases_release(&self, leases: Vec<LeaseRef>) -> Result<u64> {
        let mut released = 0;
        {
            let mut state = self.lock();
            for lease in &leases {
                let Some(seq) = state.held(lease) else { continue };
                let Some(mut stored) = state.commands.remove(&seq) else { continue };
                stored.status = CommandStatus::Pending;
                stored.attempts = stored.attempts.saturating_sub(1);
                stored.lease = None;
                stored.due_at = Utc::now();
                stored.updated_at = stored.due_at;
                state.audit(&stored.command, AuditEvent::Released, stored.attempts, json!({}));
                state.commands.insert(seq, stored);
                released += 1;
            }
        }
        self.work.wake();
        Ok(released)
    }

    async fn leases_rescue(&self) -> Result<u64> {
        let now = Utc::now();
        let mut rescued = 0;
        {
            let mut state = self.lock();
            let expired: Vec<u64> = state
                .commands
                .iter()
                .filter(|(_, c)| {
                    c.status == CommandStatus::InProgress
                        && c.lease.is_some_and(|(_, at)| at <= now)
                })
                .map(|(seq, _)| *seq)
                .collect();
            for seq in expired {
                let Some(mut stored) = state.commands.remove(&seq) else { continue };
                let attempt = stored.attempts;
                state.audit(&stored.command, AuditEvent::LeaseExpired, attempt, json!({}));
                stored.lease = None;
                stored.updated_at = now;
                if attempt >= stored.command.max_attempts {
                    let failure = Failure::lease_expired();
                    troubleshoot(
                        &mut state,
                        &mut stored,
                        failure,
                        TsqReason::LeaseExpired,
                        attempt,
                    );
                } else {
                    stored.status = CommandStatus::Pending;
                    stored.due_at = now;
                }
                state.commands.insert(seq, stored);
                rescued += 1;
            }
        }
        if rescued > 0 {
            self.work.wake();
        }
        Ok(rescued)
    }

    async fn command_get(&self, domain: &str, command_id: Uuid) -> Result<Option<CommandRecord>> {
        let state = self.lock();
        let seq = state.by_id.get(&(domain.to_owned(), command_id));
        Ok(seq.and_then(|seq| state.commands.get(seq)).map(Stored::record))
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

    async fn wakeups(&self, _domains: &[String]) -> Result<WakeUps> {
        Ok(self.work.subscribe())
    }

    async fn queue_stats(&self, domains: &[String]) -> Result<Vec<QueueStats>> {
        let now = Utc::now();
        let mut stats: BTreeMap<String, QueueStats> = BTreeMap::new();
        for c in self.lock().commands.values() {
            if c.status != CommandStatus::Pending
                || c.due_at > now
                || !domains.contains(&c.command.domain)
            {
                continue;
            }
            let age = (now - c.due_at).to_std().unwrap_or_default();
            let entry = stats
                .entry(c.command.domain.clone())
                .or_insert_with(|| QueueStats::new(c.command.domain.clone(), 0, Duration::ZERO));
            entry.due += 1;
            entry.oldest_due_age = entry.oldest_due_age.max(age);
        }
        Ok(stats.into_values().collect())
    }

    async fn next_due_in(&self, domains: &[String]) -> Result<Option<Duration>> {
        let now = Utc::now();
        Ok(self
            .lock()
            .commands
            .values()
            .filter(|c| c.status == CommandStatus::Pending && domains.contains(&c.command.domain))
            .map(|c| (c.due_at - now).to_std().unwrap_or_default())
            .min())
    }
}

fn failure_details(failure: &Failure) -> serde_json::Value {
    serde_json::to_value(failure).unwrap_or_default()
}

fn troubleshoot(
    state: &mut State,
    stored: &mut Stored,
    failure: Failure,
    reason: TsqReason,
    attempt: u32,
) {
    if reason == TsqReason::RetriesExhausted || reason == TsqReason::LeaseExpired {
        state.audit(&stored.command, AuditEvent::RetryExhausted, attempt, json!({}));
    }
    state.audit(
        &stored.command,
        AuditEvent::MovedToTsq,
        attempt,
        json!({ "reason": reason.as_str() }),
    );
    stored.status = CommandStatus::InTroubleshootingQueue;
    stored.last_error = Some(failure);
}

/// Applies one outcome; returns whether a reply was written.
fn apply_outcome(state: &mut State, stored: &mut Stored, outcome: &Outcome) -> bool {
    let attempt = outcome.attempt;
    let now = Utc::now();
    stored.lease = None;
    stored.updated_at = now;
    match &outcome.kind {
        OutcomeKind::Completed { reply } => {
            stored.status = CommandStatus::Completed;
            state.audit(&stored.command, AuditEvent::Completed, attempt, json!({}));
            state.reply(&stored.command, ReplyStatus::Success, reply.clone());
            true
        }
        OutcomeKind::Failed { failure } => {
            stored.status = CommandStatus::Failed;
            state.audit(&stored.command, AuditEvent::Failed, attempt, failure_details(failure));
            state.reply(&stored.command, ReplyStatus::Failed, failed_reply_body(failure));
            stored.last_error = Some(failure.clone());
            true
        }
        OutcomeKind::Retry { failure, delay } => {
            stored.status = CommandStatus::Pending;
            stored.due_at = now + *delay;
            state.audit(&stored.command, AuditEvent::Failed, attempt, failure_details(failure));
            let details = json!({ "delay_ms": delay.as_millis() as u64, "due_at": stored.due_at });
            state.audit(&stored.command, AuditEvent::RetryScheduled, attempt, details);
            stored.last_error = Some(failure.clone());
            false
        }
        OutcomeKind::Troubleshoot { failure, reason } => {
            state.audit(&stored.command, AuditEvent::Failed, attempt, failure_details(failure));
            troubleshoot(state, stored, failure.clone(), *reason, attempt);
            false
        }
    }
}
