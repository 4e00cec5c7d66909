//! A process's events are commands of one type, named after the process
//! and in its domain: starting it, a step ending, a timeout firing, an
//! operator's retry or abandon. Each runs as a handler in its own
//! transaction, so a process moves one event at a time, exactly once.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Process, ProcessStatus};
use crate::{BatchOutcome, Command};

/// The queue process steps reply to: their replies are read by the process
/// (by id), never taken from a queue.
pub const PROCESS_REPLY_QUEUE: &str = "cmdbus.process";

/// Attempts of an event: it fails only when the database does, so it is
/// retried generously, then waits in the troubleshooting queue with the
/// process unchanged.
pub(crate) const EVENT_MAX_ATTEMPTS: u32 = 10;

/// What happened to a process instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    /// Start it with this state (the event's id is the process id, so
    /// starting twice starts once).
    Start { process_id: Uuid, state: serde_json::Value },
    /// A step's commands have all ended (the step's batch completion).
    Step { process_id: Uuid, batch: BatchOutcome },
    /// A timeout fired.
    Timeout { process_id: Uuid, timer: Uuid, timeout: serde_json::Value },
    /// An operator sends the stuck compensation again.
    Retry { process_id: Uuid, operator: String },
    /// An operator ends the process.
    Abandon { process_id: Uuid, reason: String, operator: String },
}

impl Event {
    pub(crate) fn process_id(&self) -> Uuid {
        match self {
            Self::Start { process_id, .. }
            | Self::Step { process_id, .. }
            | Self::Timeout { process_id, .. }
            | Self::Retry { process_id, .. }
            | Self::Abandon { process_id, .. } => *process_id,
        }
    }
}

/// The command that carries an event of process `P`: type `P::NAME` in
/// domain `P::DOMAIN`. Applications start processes with
/// [`Bus::start_process`](crate::Bus::start_process); operators see these
/// commands (and their audit trails) as the process's history.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent, bound = "")]
#[schemars(transparent, bound = "")]
pub struct ProcessEvent<P> {
    pub(crate) event: Event,
    #[serde(skip)]
    #[schemars(skip)]
    _process: PhantomData<fn() -> P>,
}

impl<P> ProcessEvent<P> {
    pub(crate) fn new(event: Event) -> Self {
        Self { event, _process: PhantomData }
    }
}

impl<P> std::fmt::Debug for ProcessEvent<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.event.fmt(f)
    }
}

/// What handling one event did: the event command's reply.
#[derive(crate::Payload, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// The process.
    pub process_id: Uuid,
    /// Where it stands after the event.
    pub status: ProcessStatus,
    /// Why the event changed nothing (a duplicate, or the process had
    /// ended); `None` when it moved the process.
    pub ignored: Option<String>,
}

impl<P: Process> Command for ProcessEvent<P> {
    const DOMAIN: &'static str = P::DOMAIN;
    const NAME: &'static str = P::NAME;
    type Reply = ProcessReport;
    const MAX_ATTEMPTS: u32 = EVENT_MAX_ATTEMPTS;

    /// Short backoffs: an event fails when a worker crashed under it or
    /// the database hiccupped, and the whole process waits for it.
    fn retry_policy() -> crate::RetryPolicy {
        crate::RetryPolicy::default()
            .with_max_attempts(EVENT_MAX_ATTEMPTS)
            .with_backoff_millis(&[100, 500, 2_000, 10_000])
    }
}
