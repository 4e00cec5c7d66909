//! Every change of a command's status after it was leased, decided in one
//! place. A [`Transition`] is a plan — the new status, due time, attempts,
//! last error, audit events and reply — and a transport only stores it,
//! under a guard that says which state the plan was made for.
//!
//! **For backend authors**: apply a transition with
//! [`Transport::transitions_apply`](crate::Transport::transitions_apply);
//! never decide what follows an outcome yourself.

use std::time::Duration;

use serde_json::{json, value::RawValue};
use uuid::Uuid;

use crate::{
    AuditEvent, CommandStatus, Failure, LeaseRef, Operator, Outcome, OutcomeKind, PayloadEdit,
    ReplyStatus, TsqReason,
    reply::{canceled_reply_body, failed_reply_body},
};

/// A planned change of one command, applied all or nothing, only if the
/// command is still as [`guard`](Self::guard) says.
///
/// Audit rows are written with the command's attempt count *after* the
/// change (an operator retry's row says attempt 0; a release's says the
/// attempt it gave back was not used).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Transition {
    /// The command's domain.
    pub domain: String,
    /// The command's id.
    pub command_id: Uuid,
    /// The state this plan was made for.
    pub guard: Guard,
    /// The new status.
    pub status: CommandStatus,
    /// `Some(d)`: due at the store's now + `d`; `None`: the due time stays.
    pub due_in: Option<Duration>,
    /// What happens to the attempt count.
    pub attempts: AttemptsChange,
    /// `Some`: the new last error; `None`: it stays.
    pub last_error: Option<Failure>,
    /// Audit rows, in order.
    pub events: Vec<PlannedEvent>,
    /// The reply to store, if the sender gets one.
    pub reply: Option<PlannedReply>,
    /// Whether the command belongs to a tracked batch, when the planner
    /// knows (a worker does, from the lease); `None`: unknown. A backend may
    /// skip batch bookkeeping for a transition known not to need it.
    pub batch_member: Option<bool>,
}

/// Which state a [`Transition`] may be applied to; otherwise nothing changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    /// IN_PROGRESS under this lease.
    Lease(Uuid),
    /// IN_PROGRESS under this lease, and the lease has expired (a heartbeat
    /// that extended it first wins).
    ExpiredLease(Uuid),
    /// In this status (and not leased).
    Status(CommandStatus),
}

/// What a [`Transition`] does to the attempt count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptsChange {
    /// Unchanged.
    Keep,
    /// Back to 0 (an operator's retry starts afresh).
    Reset,
    /// One less: the lease counted an attempt that never ran.
    GiveBack,
}

/// One audit row of a [`Transition`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PlannedEvent {
    /// The event.
    pub event: AuditEvent,
    /// Its details.
    pub details: serde_json::Value,
    /// The store adds the command's new due time to `details` as `due_at`
    /// (the plan knows the delay; only the store knows its clock).
    pub with_due_at: bool,
}

impl PlannedEvent {
    fn new(event: AuditEvent, details: serde_json::Value) -> Self {
        Self { event, details, with_due_at: false }
    }
}

/// The reply a [`Transition`] stores for the sender.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PlannedReply {
    /// Its status.
    pub status: ReplyStatus,
    /// Its body.
    pub body: Box<RawValue>,
}

/// A lease that ran out before its worker recorded an outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpiredLease {
    /// The lease.
    pub lease: LeaseRef,
    /// The command's type (its retry policy decides the backoff).
    pub command_type: String,
    /// Attempts counted so far, the expired one included.
    pub attempts: u32,
    /// The command's attempt limit.
    pub max_attempts: u32,
}

impl ExpiredLease {
    /// Builds one; for backends.
    pub fn new(lease: LeaseRef, command_type: String, attempts: u32, max_attempts: u32) -> Self {
        Self { lease, command_type, attempts, max_attempts }
    }
}

/// An operator's decision about a command in the troubleshooting queue.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OperatorAction {
    /// Back to PENDING, attempts reset, due now.
    Retry,
    /// CANCELED; the sender gets a CANCELED reply with the reason.
    Cancel {
        /// Why (shown to the sender and in the audit trail).
        reason: String,
    },
    /// COMPLETED; the sender gets a SUCCESS reply with `result`.
    Complete {
        /// The reply body.
        result: Box<RawValue>,
    },
}

impl OperatorAction {
    /// Completes with a JSON result.
    pub fn complete_json(result: &serde_json::Value) -> Self {
        // A `Value` always serializes.
        let result =
            serde_json::value::to_raw_value(result).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self::Complete { result }
    }

    /// The name used in logs and bulk-action records: `retry`, `cancel`, `complete`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel { .. } => "cancel",
            Self::Complete { .. } => "complete",
        }
    }
}

impl Transition {
    fn new(domain: String, command_id: Uuid, guard: Guard, status: CommandStatus) -> Self {
        Self {
            domain,
            command_id,
            guard,
            status,
            due_in: None,
            attempts: AttemptsChange::Keep,
            last_error: None,
            events: Vec::new(),
            reply: None,
            batch_member: None,
        }
    }

    fn event(mut self, event: AuditEvent, details: serde_json::Value) -> Self {
        self.events.push(PlannedEvent::new(event, details));
        self
    }

    fn failed(self, failure: &Failure) -> Self {
        let details = serde_json::to_value(failure).unwrap_or_default();
        let mut planned = self.event(AuditEvent::Failed, details);
        planned.last_error = Some(failure.clone());
        planned
    }

    fn reply(mut self, status: ReplyStatus, body: Box<RawValue>) -> Self {
        self.reply = Some(PlannedReply { status, body });
        self
    }

    /// To the troubleshooting queue; the attempt that used up the last
    /// retry says so first.
    fn troubleshoot(self, reason: TsqReason) -> Self {
        let exhausted = matches!(reason, TsqReason::RetriesExhausted | TsqReason::LeaseExpired);
        let planned =
            if exhausted { self.event(AuditEvent::RetryExhausted, json!({})) } else { self };
        planned.event(AuditEvent::MovedToTsq, json!({ "reason": reason.as_str() }))
    }

    /// Due again after `delay`, with a RETRY_SCHEDULED row saying when.
    fn retry_after(mut self, delay: Duration) -> Self {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.due_in = Some(delay);
        self.events.push(PlannedEvent {
            event: AuditEvent::RetryScheduled,
            details: json!({ "delay_ms": millis }),
            with_due_at: true,
        });
        self
    }

    /// What the outcome of a leased attempt changes.
    pub fn of_outcome(outcome: &Outcome) -> Self {
        let lease = &outcome.lease;
        let start = |status| Self {
            batch_member: outcome.batch_member,
            ..Self::new(
                lease.domain.clone(),
                lease.command_id,
                Guard::Lease(lease.lease_id),
                status,
            )
        };
        match &outcome.kind {
            OutcomeKind::Completed { reply } => start(CommandStatus::Completed)
                .event(AuditEvent::Completed, json!({}))
                .reply(ReplyStatus::Success, reply.clone()),
            OutcomeKind::Failed { failure } => start(CommandStatus::Failed)
                .failed(failure)
                .reply(ReplyStatus::Failed, failed_reply_body(failure)),
            OutcomeKind::Retry { failure, delay } => {
                start(CommandStatus::Pending).failed(failure).retry_after(*delay)
            }
            OutcomeKind::Troubleshoot { failure, reason } => {
                start(CommandStatus::InTroubleshootingQueue).failed(failure).troubleshoot(*reason)
            }
        }
    }

    /// Whether applying it may end a member of a tracked batch (then the
    /// batch is counted down): it ends the command, which is a member or
    /// may be.
    pub fn may_end_batch_member(&self) -> bool {
        self.status.is_terminal() && self.batch_member != Some(false)
    }

    /// Gives a lease back unused (a worker shutting down): PENDING, due now,
    /// the attempt returned.
    pub fn release(lease: &LeaseRef) -> Self {
        let mut planned = Self::new(
            lease.domain.clone(),
            lease.command_id,
            Guard::Lease(lease.lease_id),
            CommandStatus::Pending,
        )
        .event(AuditEvent::Released, json!({}));
        planned.due_in = Some(Duration::ZERO);
        planned.attempts = AttemptsChange::GiveBack;
        planned
    }

    /// Takes back an expired lease: the lost attempt counts, so the command
    /// is retried after `backoff` or, after its last attempt, goes to the
    /// troubleshooting queue.
    pub fn rescue(expired: &ExpiredLease, backoff: Duration) -> Self {
        let lease = &expired.lease;
        let guard = Guard::ExpiredLease(lease.lease_id);
        let (domain, id) = (lease.domain.clone(), lease.command_id);
        if expired.attempts >= expired.max_attempts {
            let mut planned = Self::new(domain, id, guard, CommandStatus::InTroubleshootingQueue)
                .event(AuditEvent::LeaseExpired, json!({}))
                .troubleshoot(TsqReason::LeaseExpired);
            planned.last_error = Some(Failure::lease_expired());
            planned
        } else {
            let planned = Self::new(domain, id, guard, CommandStatus::Pending)
                .event(AuditEvent::LeaseExpired, json!({}));
            if backoff.is_zero() {
                // Due again at once: nothing is scheduled, so nothing to say.
                Self { due_in: Some(Duration::ZERO), ..planned }
            } else {
                planned.retry_after(backoff)
            }
        }
    }

    /// An operator's action on a command in the troubleshooting queue.
    pub fn operator(
        domain: String,
        command_id: Uuid,
        action: &OperatorAction,
        operator: &Operator,
    ) -> Self {
        let guard = Guard::Status(CommandStatus::InTroubleshootingQueue);
        match action {
            OperatorAction::Retry => {
                let mut planned = Self::new(domain, command_id, guard, CommandStatus::Pending)
                    .event(AuditEvent::OperatorRetry, json!({ "operator": operator }));
                planned.due_in = Some(Duration::ZERO);
                planned.attempts = AttemptsChange::Reset;
                planned
            }
            OperatorAction::Cancel { reason } => {
                Self::new(domain, command_id, guard, CommandStatus::Canceled)
                    .event(
                        AuditEvent::OperatorCancel,
                        json!({ "operator": operator, "reason": reason }),
                    )
                    .reply(ReplyStatus::Canceled, canceled_reply_body(reason, operator.as_str()))
            }
            OperatorAction::Complete { result } => {
                let shown: serde_json::Value =
                    serde_json::from_str(result.get()).unwrap_or_default();
                Self::new(domain, command_id, guard, CommandStatus::Completed)
                    .event(
                        AuditEvent::OperatorComplete,
                        json!({ "operator": operator, "result": shown }),
                    )
                    .reply(ReplyStatus::Success, result.clone())
            }
        }
    }

    /// An operator's retry of a command whose payload they corrected: the
    /// retry's audit row lists the changes.
    pub fn operator_edit(edit: &PayloadEdit, operator: &Operator) -> Self {
        let mut planned =
            Self::operator(edit.domain.clone(), edit.command_id, &OperatorAction::Retry, operator);
        for event in &mut planned.events {
            event.details["payload_changes"] = json!(edit.changes);
        }
        planned
    }

    /// An operator cancels a command before it starts (PENDING, due now or
    /// scheduled): CANCELED, with a CANCELED reply.
    pub fn cancel_before_start(
        domain: String,
        command_id: Uuid,
        operator: &Operator,
        reason: &str,
    ) -> Self {
        let action = OperatorAction::Cancel { reason: reason.to_owned() };
        let planned = Self::operator(domain, command_id, &action, operator);
        Self { guard: Guard::Status(CommandStatus::Pending), ..planned }
    }

    /// Whether workers should be woken once it is applied: the command is
    /// due now.
    pub fn makes_due_now(&self) -> bool {
        self.status == CommandStatus::Pending && self.due_in.is_some_and(|d| d.is_zero())
    }

    /// Whether the command has ended for good once it is applied.
    pub fn finishes(&self) -> bool {
        self.status.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn lease() -> LeaseRef {
        LeaseRef::new("d".into(), Uuid::nil(), Uuid::from_u128(7))
    }

    fn events(t: &Transition) -> Vec<AuditEvent> {
        t.events.iter().map(|e| e.event).collect()
    }

    fn failure() -> Failure {
        Failure::new(ErrorKind::Transient, "E", "partner_down", "down", None)
    }

    #[test]
    fn outcomes_plan_their_status_events_and_reply() {
        let retry = Transition::of_outcome(&Outcome::new(
            lease(),
            1,
            OutcomeKind::Retry { failure: failure(), delay: Duration::from_millis(250) },
        ));
        assert_eq!(retry.guard, Guard::Lease(Uuid::from_u128(7)));
        assert_eq!(retry.status, CommandStatus::Pending);
        assert_eq!(retry.due_in, Some(Duration::from_millis(250)));
        assert_eq!(events(&retry), [AuditEvent::Failed, AuditEvent::RetryScheduled]);
        assert_eq!(retry.events[1].details, json!({ "delay_ms": 250 }));
        assert!(retry.events[1].with_due_at && retry.reply.is_none() && !retry.makes_due_now());

        let exhausted = Transition::of_outcome(&Outcome::new(
            lease(),
            3,
            OutcomeKind::Troubleshoot { failure: failure(), reason: TsqReason::RetriesExhausted },
        ));
        assert_eq!(
            events(&exhausted),
            [AuditEvent::Failed, AuditEvent::RetryExhausted, AuditEvent::MovedToTsq]
        );
        assert_eq!(exhausted.last_error, Some(failure()));
        assert!(!exhausted.finishes());

        let permanent = Transition::of_outcome(&Outcome::new(
            lease(),
            1,
            OutcomeKind::Troubleshoot { failure: failure(), reason: TsqReason::Permanent },
        ));
        assert_eq!(events(&permanent), [AuditEvent::Failed, AuditEvent::MovedToTsq]);

        let failed = Transition::of_outcome(&Outcome::new(
            lease(),
            1,
            OutcomeKind::Failed { failure: failure() },
        ));
        assert_eq!(failed.reply.as_ref().map(|r| r.status), Some(ReplyStatus::Failed));
        assert!(failed.finishes());
    }

    #[test]
    fn rescue_honours_the_backoff_until_the_last_attempt() {
        let expired = |attempts| ExpiredLease::new(lease(), "T".into(), attempts, 3);
        let again = Transition::rescue(&expired(1), Duration::from_secs(10));
        assert_eq!(again.guard, Guard::ExpiredLease(Uuid::from_u128(7)));
        assert_eq!(
            (again.status, again.due_in),
            (CommandStatus::Pending, Some(Duration::from_secs(10)))
        );
        assert_eq!(events(&again), [AuditEvent::LeaseExpired, AuditEvent::RetryScheduled]);
        assert!(again.last_error.is_none());
        let at_once = Transition::rescue(&expired(1), Duration::ZERO);
        assert_eq!(events(&at_once), [AuditEvent::LeaseExpired]);
        assert!(at_once.makes_due_now());

        let last = Transition::rescue(&expired(3), Duration::from_secs(10));
        assert_eq!(last.status, CommandStatus::InTroubleshootingQueue);
        assert_eq!(
            events(&last),
            [AuditEvent::LeaseExpired, AuditEvent::RetryExhausted, AuditEvent::MovedToTsq]
        );
        assert_eq!(last.last_error, Some(Failure::lease_expired()));
    }

    #[test]
    fn release_and_operator_retry_are_due_now() {
        let release = Transition::release(&lease());
        assert!(release.makes_due_now());
        assert_eq!(release.attempts, AttemptsChange::GiveBack);
        let operator = Operator::new("ana").expect("operator");
        let retry =
            Transition::operator("d".into(), Uuid::nil(), &OperatorAction::Retry, &operator);
        assert!(retry.makes_due_now());
        assert_eq!(retry.attempts, AttemptsChange::Reset);
        assert_eq!(retry.guard, Guard::Status(CommandStatus::InTroubleshootingQueue));
        let result = serde_json::value::to_raw_value(&json!({ "ok": true })).expect("json");
        let complete = Transition::operator(
            "d".into(),
            Uuid::nil(),
            &OperatorAction::Complete { result },
            &operator,
        );
        assert_eq!(
            complete.events[0].details,
            json!({ "operator": "ana", "result": { "ok": true } })
        );
        assert_eq!(OperatorAction::Retry.as_str(), "retry");
        let early = Transition::cancel_before_start("d".into(), Uuid::nil(), &operator, "late");
        assert_eq!(early.guard, Guard::Status(CommandStatus::Pending));
        assert_eq!(
            (early.status, early.events[0].event),
            (CommandStatus::Canceled, AuditEvent::OperatorCancel)
        );
    }
}
