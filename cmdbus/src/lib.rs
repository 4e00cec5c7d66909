#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets `#[command]` / `#[handler]` emit `::cmdbus::…` paths inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as cmdbus;

pub mod backend;
mod batch;
mod bus;
mod catalog;
mod classify;
mod command;
mod command_key;
mod context;
mod envelope;
mod error;
mod executor;
mod field_check;
mod flow;
mod handler_error;
mod name;
mod operator;
mod page;
mod payload_edit;
pub mod process;
mod registry;
mod reply;
mod report;
mod retry;
mod schedule;
mod sent;
mod status;
mod telemetry;
mod trace;
mod transition;
mod transport;
mod troubleshooting;
mod wake;
mod worker;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod testing;

pub use batch::{Batch, BatchMembers, BatchOutcome, BatchStatus, OpenedBatch};
pub use bus::{Bus, DEFAULT_MAX_PAYLOAD_BYTES};
pub use catalog::{
    Catalog, CatalogEntry, CommandType, LIVE_WITHIN, Registered, SERVED_EVERY, Served,
};
pub use classify::{Classifier, Classify};
/// Declares a struct or enum as a command: `#[derive(Command)]` with its
/// keys in `#[command(...)]`. The keys, their defaults, what is generated
/// and runnable examples are on the [`Command`](trait@Command) trait.
#[doc(inline)]
pub use cmdbus_macros::Command;
/// Serialization and a JSON schema for a type carried inside commands or
/// replies (a nested field type, a reply type), with no serde or schemars
/// dependency in your crate. Structs and enums, not unions or generics;
/// `#[serde]` and `#[schemars]` attributes are honoured.
///
/// ```
/// use cmdbus::{Command, Payload};
///
/// #[derive(Payload)]
/// struct Address { city: String }
///
/// #[derive(Command)]
/// #[command(domain = "shipping")]
/// struct Ship { to: Address }
/// ```
#[doc(inline)]
pub use cmdbus_macros::Payload;
/// Declares a process manager; see [`process`] for a whole example.
///
/// `#[process(domain = "...", steps(A, B), compensations(C))]`: `domain`
/// (required) is where its events run; `name` (default: the type's name)
/// is the stored process type; `steps` are the commands it sends and
/// reacts to (each needs a [`Reacts`] impl); `compensations` are the
/// commands it may run to undo a step. Also derives serialization, as
/// [`Payload`](derive@Payload) does.
#[doc(inline)]
pub use cmdbus_macros::Process;
/// The attribute form of [`#[derive(Command)]`](derive@Command), kept for
/// existing code: `#[command(domain = "...", ...)]` alone on the type, same
/// keys (see the [`Command`](trait@Command) trait).
#[doc(inline)]
pub use cmdbus_macros::command;
/// Registers an async function as the handler of one command type.
///
/// # Signature
///
/// `async fn name(cmd: C) -> Result<R, E>`, or with the context as a
/// second argument, `async fn name(cmd: C, ctx: &mut HandlerContext) -> Result<R, E>`:
///
/// - `C` is a [`Command`]; `R` is its `Reply` (another type is a compile
///   error at the return type);
/// - `E` is [`HandlerError`] or any error `?` converts (every
///   `std::error::Error`): the worker's [`Classifier`] decides whether
///   it is transient (retried) or permanent (troubleshooting queue);
/// - the [`HandlerContext`] is optional: take it for the attempt number, the
///   lease, follow-up commands ([`HandlerContext::send`]) or a backend's
///   transaction.
///
/// The attribute takes no arguments; a sync function, a method, generics or
/// a missing return type are compile errors at the mistake.
///
/// # What it generates
///
/// The function stays as written, so a unit test calls it directly (with
/// `cmdbus::testing::context`). Beside it, a registration collected at
/// link time (`inventory`): a worker serving `C`'s domain finds it with no
/// list to maintain. Two handlers for one command type are refused when a
/// worker starts, naming both.
///
/// ```
/// use cmdbus::{Command, HandlerContext, HandlerError, handler};
///
/// #[derive(Command)]
/// #[command(domain = "docs-handler", reply = u32)]
/// struct Count { items: Vec<String> }
///
/// #[handler]
/// async fn count(cmd: Count) -> Result<u32, HandlerError> {
///     u32::try_from(cmd.items.len()).map_err(|e| HandlerError::permanent("too_many", e.to_string()))
/// }
///
/// #[derive(Command)]
/// #[command(domain = "docs-handler")]
/// struct Audit {}
///
/// #[handler]
/// async fn audit(_cmd: Audit, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
///     tracing::info!(attempt = ctx.attempt(), "auditing");
///     Ok(())
/// }
/// ```
#[doc(inline)]
pub use cmdbus_macros::handler;
/// The attribute form of [`#[derive(Payload)]`](derive@Payload) for reply
/// and nested types, kept for existing code.
#[doc(inline)]
pub use cmdbus_macros::reply;
pub use command::Command;
pub use command_key::CommandKey;
pub use context::HandlerContext;
pub use envelope::{CommandRecord, SendOptions, SendOutcome};
pub use error::{Error, Result, SchemaError};
pub use flow::{FlowTarget, Limit, LimitChange, Pause};
pub use handler_error::{ErrorKind, Failure, HandlerError};
pub use name::{validate_command_type, validate_domain};
pub use operator::Operator;
pub use page::{Cursor, MAX_PAGE, Page};
pub use payload_edit::{FieldChange, PayloadEdit};
pub use process::{Process, ProcessStatus, Reacts, Steps};
pub use registry::{HandlerRegistration, Registry};
pub use reply::{DEFAULT_REPLY_QUEUE, NotCompleted, Reply, ReplyStatus, TypedReply};
pub use report::Report;
pub use retry::RetryPolicy;
pub use schedule::{MissedTicks, Schedule, Tick};
pub use sent::Sent;
pub use status::{AuditEntry, AuditEvent, CommandStatus};
pub use trace::TraceParent;
pub use transport::{QUEUE_DEPTH_COUNTED_UP_TO, Transport};
pub use troubleshooting::{BulkOutcome, Troubleshooting, TsqCount, TsqFilter, TypedItem};
// Backend-author items, public in `backend`, by their short names inside the crate.
pub(crate) use backend::{
    BulkAction, BulkPlan, CommandsLease, ExpiredLease, LeaseExtend, LeaseRef, LeasedCommand,
    NewBatch, NewCommand, OperatorAction, Outcome, OutcomeKind, Polled, QueueStats, RecordResult,
    Transition, TsqReason, WakeUps,
};
pub use worker::{ShutdownReport, Worker, WorkerBuilder, WorkerHealth};

/// What the macros' generated code needs. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use futures_util::future::BoxFuture;
    pub use inventory;
    pub use schemars;
    pub use serde;
    pub use serde_json::value::RawValue;

    pub use crate::registry::{ErasedResult, HandlerOutput, HandlerRegistration, decode};

    /// The derives' field-type check.
    pub mod field_check {
        pub use crate::field_check::{Field, IsPayload, NotPayload};
    }
}
