#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets `#[command]` / `#[handler]` emit `::cmdbus::…` paths inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as cmdbus;

pub mod backend;
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

pub use bus::{Bus, DEFAULT_MAX_PAYLOAD_BYTES};
pub use catalog::{
    Catalog, CatalogEntry, CommandType, LIVE_WITHIN, Registered, SERVED_EVERY, Served,
};
pub use classify::{Classifier, Classify};
pub use cmdbus_macros::{Command, Payload, command, handler, reply};
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
pub use registry::{HandlerRegistration, Registry};
pub use reply::{DEFAULT_REPLY_QUEUE, NotCompleted, Reply, ReplyStatus, TypedReply};
pub use report::Report;
pub use retry::RetryPolicy;
pub use schedule::{MissedTicks, Schedule, Tick};
pub use sent::Sent;
pub use status::{AuditEntry, AuditEvent, CommandStatus};
pub use trace::TraceParent;
pub use transport::Transport;
pub use troubleshooting::{BulkOutcome, Troubleshooting, TsqCount, TsqFilter, TypedItem};
// Backend-author items, public in `backend`, by their short names inside the crate.
pub(crate) use backend::{
    AttemptsChange, BulkAction, BulkPlan, CommandsLease, Due, ExpiredLease, Guard, LeaseExtend,
    LeaseRef, LeasedCommand, NewCommand, OperatorAction, Outcome, OutcomeKind, Polled, QueueStats,
    RecordResult, Transition, TsqItem, TsqReason, WakeSender, WakeUps,
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
