//! A process instance as stored: its state, what it waits for, and the
//! compensations it would run. Backends store and return it unchanged;
//! [`run`](super::run) alone decides what it becomes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, NewCommand, Result};

/// Where a process instance stands.
#[derive(crate::Payload, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ProcessStatus {
    /// Waiting for the replies of steps it sent.
    Running,
    /// No step outstanding; waiting for a timeout.
    Waiting,
    /// A step failed: running the compensations of completed steps, newest
    /// first, each awaited.
    Compensating,
    /// Ended: every step done.
    Completed,
    /// Ended: a step failed and every compensation completed.
    Compensated,
    /// A compensation failed or was canceled: an operator retries it or
    /// abandons the process.
    Stuck,
    /// Ended by an operator.
    Abandoned,
}

impl ProcessStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::Running,
        Self::Waiting,
        Self::Compensating,
        Self::Completed,
        Self::Compensated,
        Self::Stuck,
        Self::Abandoned,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Waiting => "WAITING",
            Self::Compensating => "COMPENSATING",
            Self::Completed => "COMPLETED",
            Self::Compensated => "COMPENSATED",
            Self::Stuck => "STUCK",
            Self::Abandoned => "ABANDONED",
        }
    }

    /// Parses a stored or typed name (any case).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownProcessStatus`] naming the valid ones.
    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| Error::UnknownProcessStatus { value: value.to_owned() })
    }

    /// Whether the process has ended (nothing it receives changes it).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated | Self::Abandoned)
    }
}

impl std::fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command a process sent and waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMember {
    /// Its domain.
    pub domain: String,
    /// Its id.
    pub command_id: Uuid,
    /// Its type (which reaction its reply goes to).
    pub command_type: String,
}

/// What a process waits for: a step (the commands one reaction sent,
/// tracked as a batch) or a timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Awaited {
    /// A step: its batch id and members, in the order sent.
    Step {
        /// The step's batch.
        id: Uuid,
        /// Its commands.
        members: Vec<StepMember>,
    },
    /// A timeout: the id of the event command due when it fires.
    Timer {
        /// The timeout's event command.
        id: Uuid,
    },
}

impl Awaited {
    /// The step's batch id or the timer's command id.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Step { id, .. } | Self::Timer { id } => *id,
        }
    }
}

/// A command kept to be sent later (a compensation), without an id yet:
/// each send of it gets a new one, so an operator's retry is a new command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCommand {
    /// Domain.
    pub domain: String,
    /// Type.
    pub command_type: String,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Priority.
    pub priority: i16,
    /// Payload.
    pub payload: serde_json::Value,
}

impl StoredCommand {
    pub(crate) fn of(command: NewCommand) -> Result<Self> {
        let payload = serde_json::from_str(command.payload.get())
            .map_err(|e| Error::backend("keeping a compensation", e))?;
        Ok(Self {
            domain: command.domain,
            command_type: command.command_type,
            max_attempts: command.max_attempts,
            priority: command.priority,
            payload,
        })
    }

    pub(crate) fn to_new(&self, correlation_id: Uuid, reply_to: &str) -> Result<NewCommand> {
        let command_id = Uuid::now_v7();
        let payload = serde_json::value::to_raw_value(&self.payload)
            .map_err(|e| Error::backend("encoding a compensation", e))?;
        Ok(NewCommand::new(
            self.domain.clone(),
            self.command_type.clone(),
            command_id,
            correlation_id,
            reply_to.to_owned(),
            self.max_attempts,
            payload,
        )
        .with_priority(self.priority))
    }
}

/// A process instance as a transport stores it. **For backend authors**
/// and operator tools; applications read [`ProcessView`](super::ProcessView).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProcessRecord {
    /// The process type's name.
    pub process_type: String,
    /// The instance.
    pub process_id: Uuid,
    /// The domain its events run in.
    pub domain: String,
    /// Where it stands.
    pub status: ProcessStatus,
    /// The correlation id every command it sends carries.
    pub correlation_id: Uuid,
    /// Its state, as the process type serializes it.
    pub state: serde_json::Value,
    /// Steps and timeouts outstanding.
    pub awaiting: Vec<Awaited>,
    /// Compensations of completed steps, oldest first (run newest first).
    pub compensations: Vec<StoredCommand>,
    /// Why it failed, is stuck or was abandoned.
    pub last_error: Option<serde_json::Value>,
    /// Bumped by every save; 0 before the first. A save of a version other
    /// than the stored one + 1 is refused (two events raced).
    pub version: i64,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl ProcessRecord {
    /// A record from stored columns; for backends.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        process_type: String,
        process_id: Uuid,
        domain: String,
        status: ProcessStatus,
        correlation_id: Uuid,
        state: serde_json::Value,
        version: i64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            process_type,
            process_id,
            domain,
            status,
            correlation_id,
            state,
            awaiting: Vec::new(),
            compensations: Vec::new(),
            last_error: None,
            version,
            created_at,
            updated_at,
        }
    }

    /// With what it waits for and the compensations it holds, from their
    /// stored JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if either does not decode.
    pub fn with_progress(
        mut self,
        awaiting: serde_json::Value,
        compensations: serde_json::Value,
        last_error: Option<serde_json::Value>,
    ) -> Result<Self> {
        self.awaiting = serde_json::from_value(awaiting)
            .map_err(|e| Error::backend("reading a process's awaited steps", e))?;
        self.compensations = serde_json::from_value(compensations)
            .map_err(|e| Error::backend("reading a process's compensations", e))?;
        self.last_error = last_error;
        Ok(self)
    }

    /// What it waits for, as stored.
    pub fn awaiting_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.awaiting).unwrap_or_default()
    }

    /// Its compensations, as stored.
    pub fn compensations_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.compensations).unwrap_or_default()
    }

    /// Removes and returns what it waited for under `id`; `None` when it
    /// was not waiting for it (a duplicate or stale event).
    pub(crate) fn take_awaited(&mut self, id: Uuid) -> Option<Awaited> {
        let at = self.awaiting.iter().position(|a| a.id() == id)?;
        Some(self.awaiting.remove(at))
    }
}

/// Which process instances [`Processes::list`](super::Processes::list) returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessFilter {
    /// Only this process type.
    pub process_type: Option<String>,
    /// Only these statuses (any when empty).
    pub statuses: Vec<ProcessStatus>,
    /// Only this correlation id.
    pub correlation_id: Option<Uuid>,
}

impl ProcessFilter {
    /// Every process.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only processes of type `name`.
    pub fn process_type(mut self, name: impl Into<String>) -> Self {
        self.process_type = Some(name.into());
        self
    }

    /// Only processes in `status` (may be given several times).
    pub fn status(mut self, status: ProcessStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Only the process with this correlation id.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Whether `record` passes (the in-memory transport's filter).
    pub fn matches(&self, record: &ProcessRecord) -> bool {
        self.process_type.as_deref().is_none_or(|t| t == record.process_type)
            && (self.statuses.is_empty() || self.statuses.contains(&record.status))
            && self.correlation_id.is_none_or(|c| c == record.correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_in_any_case_and_name_the_valid_ones() {
        for status in ProcessStatus::ALL {
            assert_eq!(ProcessStatus::parse(&status.as_str().to_lowercase()).unwrap(), status);
            assert_eq!(status.to_string(), status.as_str());
        }
        let error = ProcessStatus::parse("done").unwrap_err().to_string();
        assert!(error.contains("COMPENSATED"), "{error}");
        let terminal: Vec<_> = ProcessStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [ProcessStatus::Completed, ProcessStatus::Compensated, ProcessStatus::Abandoned]
        );
    }

    #[test]
    fn progress_round_trips_through_json_and_bad_json_is_an_error() {
        let now = Utc::now();
        let record = ProcessRecord::new(
            "P".into(),
            Uuid::now_v7(),
            "d".into(),
            ProcessStatus::Running,
            Uuid::now_v7(),
            serde_json::json!({}),
            1,
            now,
            now,
        );
        let mut with = record.clone();
        let member =
            StepMember { domain: "d".into(), command_id: Uuid::now_v7(), command_type: "C".into() };
        with.awaiting = vec![Awaited::Step { id: Uuid::now_v7(), members: vec![member] }];
        let back = record
            .clone()
            .with_progress(with.awaiting_json(), with.compensations_json(), None)
            .unwrap();
        assert_eq!(back, with);
        let error = record.with_progress(serde_json::json!(5), serde_json::json!([]), None);
        assert!(matches!(error, Err(Error::Backend { .. })));
    }

    #[test]
    fn filters_match_type_status_and_correlation() {
        let now = Utc::now();
        let correlation = Uuid::now_v7();
        let record = ProcessRecord::new(
            "Order".into(),
            Uuid::now_v7(),
            "d".into(),
            ProcessStatus::Stuck,
            correlation,
            serde_json::json!({}),
            1,
            now,
            now,
        );
        assert!(ProcessFilter::new().matches(&record));
        assert!(
            ProcessFilter::new()
                .process_type("Order")
                .status(ProcessStatus::Stuck)
                .matches(&record)
        );
        assert!(!ProcessFilter::new().process_type("Other").matches(&record));
        assert!(!ProcessFilter::new().status(ProcessStatus::Running).matches(&record));
        assert!(ProcessFilter::new().correlation_id(correlation).matches(&record));
        assert!(!ProcessFilter::new().correlation_id(Uuid::now_v7()).matches(&record));
    }
}
