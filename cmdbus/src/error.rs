//! Errors of bus operations (sending, leasing, waiting, starting workers).
//! Handler failures are [`HandlerError`](crate::HandlerError), not this.

use std::time::Duration;

use uuid::Uuid;

use crate::CommandStatus;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong on the bus.
///
/// `Display` says what failed at this level; the cause (the database's
/// error, serde's message) is the [`source`](std::error::Error::source).
/// Print both with [`Error::report`]:
///
/// ```
/// # fn log(error: &cmdbus::Error) {
/// eprintln!("sending failed: {}", error.report());
/// // sending failed: sending a command: error communicating with database: Connection refused (os error 111)
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command could not be serialized.
    #[error("cannot encode command {domain}/{command_type}")]
    Encode {
        /// Domain of the command.
        domain: &'static str,
        /// Type of the command.
        command_type: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A serialized command is larger than the bus accepts.
    #[error("command {domain}/{command_type} is {size} bytes, over the {limit}-byte payload limit")]
    PayloadTooLarge {
        /// Domain of the command.
        domain: String,
        /// Type of the command.
        command_type: String,
        /// Size of the serialized payload.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// An operator's result does not match the reply schema the catalog
    /// holds for the command's type: storing it would give the sender a
    /// SUCCESS reply it cannot decode.
    #[error(
        "the result does not match the reply of {domain}/{command_type} (catalog version {version}): {}",
        problems.join("; ")
    )]
    ResultMismatch {
        /// Domain of the command.
        domain: String,
        /// Type of the command.
        command_type: String,
        /// The catalog version whose reply schema was used.
        version: u32,
        /// Each problem, with where in the result it is.
        problems: Vec<String>,
    },
    /// An operator's edited payload does not match the payload schema the
    /// catalog holds for the command's type: the handler could not decode it.
    #[error(
        "the edited payload does not match {domain}/{command_type} (catalog version {version}): {}",
        problems.join("; ")
    )]
    PayloadMismatch {
        /// Domain of the command.
        domain: String,
        /// Type of the command.
        command_type: String,
        /// The catalog version whose payload schema was used.
        version: u32,
        /// Each problem, with the field it is in.
        problems: Vec<String>,
    },
    /// An edited payload cannot be checked: the catalog holds no payload
    /// schema for the command's type.
    #[error(
        "no payload schema is recorded for {domain}/{command_type}, so an edit cannot be checked: \
         start a sender or worker of that type once (they record it), or edit it unchecked"
    )]
    UnknownPayloadSchema {
        /// Domain of the command.
        domain: String,
        /// Type of the command.
        command_type: String,
    },
    /// An operator's payload edit was not stored, for the reason given.
    #[error("command {command_id} in domain {domain:?} was not edited: {reason}")]
    EditRefused {
        /// Its domain.
        domain: String,
        /// Its id.
        command_id: Uuid,
        /// Why, in an operator's words.
        reason: &'static str,
    },
    /// A JSON result cannot be checked: the catalog holds no reply schema
    /// for the command's type.
    #[error(
        "no reply schema is recorded for {domain}/{command_type}, so the result cannot be checked: \
         start a sender or worker of that type once (they record it), or complete it unchecked"
    )]
    UnknownReplySchema {
        /// Domain of the command.
        domain: String,
        /// Type of the command.
        command_type: String,
    },
    /// A schedule that cannot run: its cron expression or time zone does
    /// not parse.
    #[error("schedule {schedule:?} is invalid: {reason}")]
    InvalidSchedule {
        /// The schedule's name.
        schedule: String,
        /// What is wrong.
        reason: String,
    },
    /// A tracked batch that cannot be opened as given.
    #[error("batch {batch_id} cannot be opened: {reason}")]
    InvalidBatch {
        /// The batch.
        batch_id: Uuid,
        /// What is wrong.
        reason: &'static str,
    },
    /// No tracked batch has this id.
    #[error("no batch {batch_id}")]
    UnknownBatch {
        /// The batch looked for.
        batch_id: Uuid,
    },
    /// A domain, command type or schema name breaks the naming rules.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        /// What kind of name ("domain", "command type", "schema").
        kind: &'static str,
        /// The name as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Two handlers are registered for one command type.
    #[error("two handlers for command {domain}/{command_type}: `{first}` and `{second}`")]
    DuplicateHandler {
        /// Domain of the command.
        domain: String,
        /// Type of the command.
        command_type: String,
        /// The first handler (path and location).
        first: String,
        /// The second handler (path and location).
        second: String,
    },
    /// A worker was asked to serve a domain that has no handler in this binary.
    #[error(
        "worker asked to serve domain {domain:?}, which has no handler; domains with handlers: {known:?}"
    )]
    NoHandlers {
        /// The requested domain.
        domain: String,
        /// Domains that do have handlers.
        known: Vec<String>,
    },
    /// A worker was started without any domain to serve.
    #[error("worker has no domain to serve; call .domain(\"...\")")]
    NoDomains,
    /// A status transition the state machine does not allow.
    #[error("illegal status transition from {from} to {to}")]
    IllegalTransition {
        /// Current status.
        from: CommandStatus,
        /// Requested status.
        to: CommandStatus,
    },
    /// A status name that does not exist.
    #[error("unknown command status {value:?}")]
    UnknownStatus {
        /// The name as given.
        value: String,
    },
    /// A process status name that does not exist.
    #[error(
        "unknown process status {value:?}; expected one of: RUNNING, WAITING, COMPENSATING, COMPLETED, COMPENSATED, STUCK, ABANDONED"
    )]
    UnknownProcessStatus {
        /// The name as given.
        value: String,
    },
    /// No process instance of this type with this id.
    #[error("no process {process_type} {process_id}")]
    UnknownProcess {
        /// The process type.
        process_type: String,
        /// The instance asked for.
        process_id: Uuid,
    },
    /// An operator action on a process that its status does not allow.
    #[error("process {process_type} {process_id} is {status}: {reason}")]
    ProcessRefused {
        /// The process type.
        process_type: String,
        /// The instance.
        process_id: Uuid,
        /// Where it stands.
        status: crate::ProcessStatus,
        /// Why the action is refused, in an operator's words.
        reason: &'static str,
    },
    /// No command with this id exists in the domain.
    #[error("no command {command_id} in domain {domain:?}")]
    NotFound {
        /// Domain searched.
        domain: String,
        /// Id searched.
        command_id: Uuid,
    },
    /// No command with this id exists in any domain.
    #[error("no command {command_id} in any domain")]
    UnknownCommandId {
        /// Id searched.
        command_id: Uuid,
    },
    /// An operator action on a command that is not in the troubleshooting
    /// queue (operators act only there).
    #[error(
        "command {command_id} in domain {domain:?} is {status}, not in the troubleshooting queue"
    )]
    NotInTroubleshootingQueue {
        /// Its domain.
        domain: String,
        /// Its id.
        command_id: Uuid,
        /// Where it is instead.
        status: CommandStatus,
    },
    /// Canceling before the start a command that is no longer PENDING
    /// (it started, or ended).
    #[error(
        "command {command_id} in domain {domain:?} is {status}, not pending: it can no longer be canceled before it starts"
    )]
    NotPending {
        /// Its domain.
        domain: String,
        /// Its id.
        command_id: Uuid,
        /// Where it is instead.
        status: CommandStatus,
    },
    /// The handler's lease is no longer held: it expired and the command may
    /// be running elsewhere. The handler should stop.
    #[error("the lease on command {command_id} was lost (expired or taken over)")]
    LeaseLost {
        /// The command.
        command_id: Uuid,
    },
    /// A command id exists in several domains; the domain must be given.
    #[error(
        "command id {command_id} exists in several domains ({domains:?}); name the domain of the one to act on"
    )]
    AmbiguousCommandId {
        /// The id.
        command_id: Uuid,
        /// The domains holding it.
        domains: Vec<String>,
    },
    /// No reply arrived within the wait.
    #[error("no reply to command {command_id} within {timeout:?}")]
    ReplyTimeout {
        /// The command waited for.
        command_id: Uuid,
        /// How long we waited.
        timeout: Duration,
    },
    /// A reply's payload does not decode into the expected reply type.
    #[error("reply to command {command_id} does not decode as {expected}")]
    ReplyDecode {
        /// The command the reply belongs to.
        command_id: Uuid,
        /// The expected Rust type.
        expected: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The handler's transaction could not be used by this transport.
    #[error("this transport does not support handler transactions")]
    UnitOfWorkUnsupported,
    /// The storage schema is missing or at a version this program cannot use.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The storage backend failed (connection, query, timeout).
    #[error("{context}")]
    Backend {
        /// What the bus was doing.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a storage schema cannot be used as it is. Each says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// No schema of that name exists (a mistyped name, or never migrated).
    #[error(
        "schema {schema:?} does not exist; check the schema name, or create it by migrating (`cmdbus migrate --create`)"
    )]
    Missing {
        /// The schema.
        schema: String,
    },
    /// The schema is older than this program needs, and this process was
    /// told not to migrate.
    #[error(
        "schema {schema:?} is at version {found}, this program needs {expected}; run the migrations (`cmdbus migrate`)"
    )]
    TooOld {
        /// The schema.
        schema: String,
        /// Its version (0: not migrated).
        found: i32,
        /// The version needed.
        expected: i32,
    },
    /// The schema was migrated by a newer cmdbus; this program must not use it.
    #[error(
        "schema {schema:?} is at version {found}, newer than this program supports ({supported}); upgrade this program (its cmdbus-pg, or the `cmdbus` CLI)"
    )]
    TooNew {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest this program knows.
        supported: i32,
    },
}

impl Error {
    /// This error and its causes on one line (see [`Report`](crate::Report)).
    pub fn report(&self) -> crate::Report<'_> {
        crate::Report::new(self)
    }

    /// Wraps a backend error with what the bus was doing; for backend authors.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend { context: context.into(), source: source.into() }
    }
}
