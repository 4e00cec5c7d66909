//! The command state machine and the audit events that record its transitions.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

/// Where a command is in its life.
///
/// ```text
/// PENDING → IN_PROGRESS → COMPLETED | FAILED | PENDING (retry) | IN_TROUBLESHOOTING_QUEUE
/// IN_TROUBLESHOOTING_QUEUE → PENDING (operator retry) | CANCELED | COMPLETED
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum CommandStatus {
    /// Waiting to be leased (possibly not yet due).
    Pending,
    /// Leased by a worker.
    InProgress,
    /// Handled successfully; a SUCCESS reply was sent.
    Completed,
    /// Refused by a business rule; a FAILED reply was sent.
    Failed,
    /// Failed permanently or ran out of attempts; waits for an operator.
    InTroubleshootingQueue,
    /// Canceled by an operator; a CANCELED reply was sent.
    Canceled,
}

impl CommandStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [CommandStatus; 6] = [
        Self::Pending,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::InTroubleshootingQueue,
        Self::Canceled,
    ];

    /// The stored name, e.g. `IN_TROUBLESHOOTING_QUEUE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::InTroubleshootingQueue => "IN_TROUBLESHOOTING_QUEUE",
            Self::Canceled => "CANCELED",
        }
    }

    /// Whether nothing more will happen to the command.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }

    /// Whether the state machine allows going from `self` to `next`.
    pub const fn can_become(self, next: CommandStatus) -> bool {
        use CommandStatus::*;
        matches!(
            (self, next),
            (Pending, InProgress | Canceled)
                | (InProgress, Completed | Failed | Pending | InTroubleshootingQueue)
                | (InTroubleshootingQueue, Pending | Canceled | Completed)
        )
    }

    /// Checks the transition to `next`, refusing an illegal one with a clear error.
    ///
    /// ```
    /// use cmdbus::CommandStatus::*;
    /// assert_eq!(Pending.transition(InProgress).unwrap(), InProgress);
    /// assert!(Completed.transition(Pending).is_err());
    /// ```
    pub fn transition(self, next: CommandStatus) -> Result<CommandStatus, Error> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(Error::IllegalTransition { from: self, to: next })
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CommandStatus {
    type Err = Error;

    /// Parses a stored name, case-insensitively (`pending`, `IN_PROGRESS`, `tsq`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let upper = s.trim().to_ascii_uppercase().replace('-', "_");
        if upper == "TSQ" {
            return Ok(Self::InTroubleshootingQueue);
        }
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == upper)
            .ok_or_else(|| Error::UnknownStatus { value: s.to_owned() })
    }
}

/// One kind of row in the append-only audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The command was accepted.
    Sent,
    /// A worker leased it (one per attempt).
    Received,
    /// The handler succeeded.
    Completed,
    /// An attempt failed (any kind); details carry the error.
    Failed,
    /// A retry was scheduled; details carry the delay.
    RetryScheduled,
    /// The last attempt failed transiently.
    RetryExhausted,
    /// The command entered the troubleshooting queue; details carry the reason.
    MovedToTsq,
    /// A lease expired (the worker died or stalled) and the command was rescued.
    LeaseExpired,
    /// A worker shutting down gave the command back without running it.
    Released,
    /// An operator sent it back to PENDING.
    OperatorRetry,
    /// An operator canceled it.
    OperatorCancel,
    /// An operator completed it with a result.
    OperatorComplete,
}

impl AuditEvent {
    /// Every event.
    pub const ALL: [AuditEvent; 12] = [
        Self::Sent,
        Self::Received,
        Self::Completed,
        Self::Failed,
        Self::RetryScheduled,
        Self::RetryExhausted,
        Self::MovedToTsq,
        Self::LeaseExpired,
        Self::Released,
        Self::OperatorRetry,
        Self::OperatorCancel,
        Self::OperatorComplete,
    ];

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == value)
    }

    /// The stored name, e.g. `MOVED_TO_TSQ`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "SENT",
            Self::Received => "RECEIVED",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::RetryScheduled => "RETRY_SCHEDULED",
            Self::RetryExhausted => "RETRY_EXHAUSTED",
            Self::MovedToTsq => "MOVED_TO_TSQ",
            Self::LeaseExpired => "LEASE_EXPIRED",
            Self::Released => "RELEASED",
            Self::OperatorRetry => "OPERATOR_RETRY",
            Self::OperatorCancel => "OPERATOR_CANCEL",
            Self::OperatorComplete => "OPERATOR_COMPLETE",
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a command's audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The command's domain.
    pub domain: String,
    /// The command's id.
    pub command_id: Uuid,
    /// What happened.
    pub event: AuditEvent,
    /// The attempt it happened in (0 before the first lease).
    pub attempt: u32,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Event-specific details: error, delay, reason, operator.
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// Builds an entry; for backends.
    pub fn new(
        domain: String,
        command_id: Uuid,
        event: AuditEvent,
        attempt: u32,
        at: DateTime<Utc>,
        details: serde_json::Value,
    ) -> Self {
        Self { domain, command_id, event, attempt, at, details }
    }
}

#[cfg(test)]
mod tests {
    use super::CommandStatus::{self, *};

    #[test]
    fn only_the_documented_transitions_are_legal() {
        let legal = [
            (Pending, InProgress),
            (Pending, Canceled),
            (InProgress, Completed),
            (InProgress, Failed),
            (InProgress, Pending),
            (InProgress, InTroubleshootingQueue),
            (InTroubleshootingQueue, Pending),
            (InTroubleshootingQueue, Canceled),
            (InTroubleshootingQueue, Completed),
        ];
        for from in CommandStatus::ALL {
            for to in CommandStatus::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                assert_eq!(from.transition(to).is_ok(), expected);
            }
        }
        let error = Completed.transition(Pending).unwrap_err().to_string();
        assert_eq!(error, "illegal status transition from COMPLETED to PENDING");
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for status in CommandStatus::ALL {
            assert_eq!(status.as_str().parse::<CommandStatus>().unwrap(), status);
            assert_eq!(status.to_string().to_lowercase().parse::<CommandStatus>().unwrap(), status);
        }
        assert_eq!("tsq".parse::<CommandStatus>().unwrap(), InTroubleshootingQueue);
        assert!("DONE".parse::<CommandStatus>().is_err());
        for event in super::AuditEvent::ALL {
            assert_eq!(super::AuditEvent::parse(event.as_str()), Some(event));
            assert_eq!(event.to_string(), event.as_str());
        }
        assert_eq!(super::AuditEvent::parse("NOPE"), None);
        assert!(Completed.is_terminal() && !InTroubleshootingQueue.is_terminal());
    }
}
