//! What travels with a command: send options, the stored form, the leased form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{CommandStatus, Failure};

/// Options for [`Bus::send_with`](crate::Bus::send_with).
///
/// ```
/// use cmdbus::SendOptions;
/// let id = uuid::Uuid::now_v7();
/// let options = SendOptions::new().command_id(id).reply_to("orders").max_attempts(5);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SendOptions {
    pub(crate) command_id: Option<Uuid>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) reply_to: Option<String>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) traceparent: Option<crate::TraceParent>,
    pub(crate) due: Due,
    pub(crate) priority: Option<i16>,
}

/// When a command becomes due (workers take it no earlier).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Due {
    /// At once.
    #[default]
    Now,
    /// After this long, by the store's clock.
    After(std::time::Duration),
    /// At this instant.
    At(DateTime<Utc>),
}

impl SendOptions {
    /// Default options: generated id, correlation id = command id, default reply queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The command's id; sending the same id twice in one domain is idempotent.
    pub fn command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    /// Correlates the command with others (defaults to its own id).
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// The reply queue (default [`DEFAULT_REPLY_QUEUE`](crate::DEFAULT_REPLY_QUEUE)).
    pub fn reply_to(mut self, queue: impl Into<String>) -> Self {
        self.reply_to = Some(queue.into());
        self
    }

    /// Overrides the command type's `max_attempts` for this command (at least 1).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts.max(1));
        self
    }

    /// Delivers the command after `delay` (measured by the database's clock,
    /// so senders' clocks do not matter). Until then it is PENDING and
    /// scheduled; an operator may cancel it before it starts.
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.due = Due::After(delay);
        self
    }

    /// Overrides the command type's [`PRIORITY`](crate::Command::PRIORITY)
    /// for this command (higher is leased first).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Delivers the command at `at` (at once if that has passed).
    pub fn deliver_at(mut self, at: DateTime<Utc>) -> Self {
        self.due = Due::At(at);
        self
    }

    /// The sender's trace context (e.g. the current OpenTelemetry span, or
    /// [`HandlerContext::traceparent`](crate::HandlerContext::traceparent)
    /// when a handler sends). Without it each send starts a new trace.
    pub fn traceparent(mut self, parent: crate::TraceParent) -> Self {
        self.traceparent = Some(parent);
        self
    }
}

/// The result of a send: a new command, or an id that already existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    /// The command was stored.
    Accepted {
        /// Its id.
        command_id: Uuid,
    },
    /// A command with this id already exists in the domain; it was left untouched.
    Duplicate {
        /// The existing command's id.
        command_id: Uuid,
    },
}

impl SendOutcome {
    /// The command's id in either case.
    pub fn command_id(&self) -> Uuid {
        match *self {
            Self::Accepted { command_id } | Self::Duplicate { command_id } => command_id,
        }
    }

    /// Whether the id already existed.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

/// A command ready to be stored; what a transport receives. For backend authors.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewCommand {
    /// Domain.
    pub domain: String,
    /// Command type name.
    pub command_type: String,
    /// Id, unique per domain.
    pub command_id: Uuid,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// Reply queue.
    pub reply_to: String,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// JSON payload.
    pub payload: Box<RawValue>,
    /// The send span's W3C trace context.
    pub traceparent: Option<String>,
    /// When it becomes due.
    pub due: Due,
    /// Its priority within the domain (higher first).
    pub priority: i16,
    /// The tracked batch it belongs to, if any.
    pub batch_id: Option<Uuid>,
}

impl NewCommand {
    /// Whether both name the same command (ids are unique per domain).
    pub(crate) fn same_command(&self, other: &NewCommand) -> bool {
        self.command_id == other.command_id && self.domain == other.domain
    }

    /// Builds a command from already-validated parts. Prefer
    /// [`Bus::prepare`](crate::Bus::prepare), which validates and encodes.
    pub fn new(
        domain: String,
        command_type: String,
        command_id: Uuid,
        correlation_id: Uuid,
        reply_to: String,
        max_attempts: u32,
        payload: Box<RawValue>,
    ) -> Self {
        Self {
            domain,
            command_type,
            command_id,
            correlation_id,
            reply_to,
            max_attempts,
            payload,
            traceparent: None,
            due: Due::Now,
            priority: 0,
            batch_id: None,
        }
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets when the command becomes due.
    #[must_use]
    pub fn with_due(mut self, due: Due) -> Self {
        self.due = due;
        self
    }

    /// Sets the trace context stored with the command.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }
}

/// A command a worker holds a lease on. For backend authors.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LeasedCommand {
    /// Domain.
    pub domain: String,
    /// Command type name.
    pub command_type: String,
    /// Id.
    pub command_id: Uuid,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// Reply queue.
    pub reply_to: String,
    /// JSON payload as stored.
    pub payload: Box<RawValue>,
    /// This attempt's number, counted at lease time (1 for the first).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Identifies this lease; outcomes recorded under a stale lease are refused.
    pub lease_id: Uuid,
    /// When the lease runs out unless extended.
    pub lease_expires_at: DateTime<Utc>,
    /// When the command was sent.
    pub created_at: DateTime<Utc>,
    /// The sender's trace context, if it was valid.
    pub traceparent: Option<crate::TraceParent>,
    /// The tracked batch it belongs to, if any.
    pub batch_id: Option<Uuid>,
}

impl LeasedCommand {
    /// Builds a leased command; for backends.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        command: NewCommand,
        attempt: u32,
        lease_id: Uuid,
        lease_expires_at: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            domain: command.domain,
            command_type: command.command_type,
            command_id: command.command_id,
            correlation_id: command.correlation_id,
            reply_to: command.reply_to,
            payload: command.payload,
            attempt,
            max_attempts: command.max_attempts,
            lease_id,
            lease_expires_at,
            created_at,
            traceparent: command.traceparent.and_then(|t| t.parse().ok()),
            batch_id: command.batch_id,
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl LeasedCommand {
    /// A leased `C` with a `null` payload at `attempt`, bound to no store.
    pub(crate) fn detached<C: crate::Command>(attempt: u32) -> Self {
        let id = Uuid::now_v7();
        let command = NewCommand::new(
            C::DOMAIN.to_owned(),
            C::NAME.to_owned(),
            id,
            id,
            crate::DEFAULT_REPLY_QUEUE.to_owned(),
            C::MAX_ATTEMPTS,
            RawValue::NULL.to_owned(),
        );
        let now = Utc::now();
        Self::new(command, attempt, Uuid::new_v4(), now + std::time::Duration::from_secs(30), now)
    }
}

/// A command as stored, for queries and operators.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommandRecord {
    /// Domain.
    pub domain: String,
    /// Command type name.
    pub command_type: String,
    /// Id.
    pub command_id: Uuid,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// Reply queue.
    pub reply_to: String,
    /// Current status.
    pub status: CommandStatus,
    /// Attempts used so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// JSON payload as stored (kept even when it no longer decodes).
    pub payload: Box<RawValue>,
    /// The last failure, if any.
    pub last_error: Option<Failure>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it is (or was last) due: a PENDING command with a due time in
    /// the future is scheduled.
    pub due_at: DateTime<Utc>,
    /// The tracked batch it belongs to, if any.
    #[serde(default)]
    pub batch_id: Option<Uuid>,
}

impl CommandRecord {
    /// Builds a record from a stored command; for backends.
    pub fn new(
        command: NewCommand,
        status: CommandStatus,
        attempts: u32,
        last_error: Option<Failure>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            domain: command.domain,
            command_type: command.command_type,
            command_id: command.command_id,
            correlation_id: command.correlation_id,
            reply_to: command.reply_to,
            status,
            attempts,
            max_attempts: command.max_attempts,
            payload: command.payload,
            last_error,
            created_at,
            updated_at,
            due_at: created_at,
            batch_id: command.batch_id,
        }
    }

    /// Sets the due time (defaults to `created_at`); for backends.
    #[must_use]
    pub fn with_due_at(mut self, due_at: DateTime<Utc>) -> Self {
        self.due_at = due_at;
        self
    }

    /// Whether it is PENDING and not yet due.
    pub fn is_scheduled(&self, now: DateTime<Utc>) -> bool {
        self.status == CommandStatus::Pending && self.due_at > now
    }
}
