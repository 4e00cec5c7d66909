//! Process managers (sagas): a type whose state is stored in the database
//! and which moves one event at a time — a step's replies, a timeout, an
//! operator's action — sending the next commands in the same transaction
//! as its new state.
//!
//! A process declares the commands it sends as steps (it reacts to each
//! one's reply) and compensations (run by the bus when the process fails,
//! newest first, each awaited):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cmdbus::Result<()> {
//! use cmdbus::{Command, HandlerError, Process, TypedReply, handler};
//! use cmdbus::process::{Process as _, Reacts, Steps};
//!
//! #[derive(Command)]
//! #[command(domain = "docs-orders", reply = String)]
//! struct Reserve { sku: String }
//!
//! #[derive(Command)]
//! #[command(domain = "docs-orders")]
//! struct Release { reservation: String }
//!
//! #[derive(Process)]
//! #[process(domain = "docs-orders", steps(Reserve), compensations(Release))]
//! struct Order { sku: String, reservation: Option<String> }
//!
//! impl cmdbus::process::Process for Order {
//!     type Timeout = ();
//!     fn start(&mut self, steps: &mut Steps<Self>) {
//!         steps.send(Reserve { sku: self.sku.clone() });
//!     }
//! }
//!
//! impl Reacts<Reserve> for Order {
//!     fn on_reply(&mut self, reply: TypedReply<String>, steps: &mut Steps<Self>) {
//!         match reply {
//!             TypedReply::Success(reservation) => {
//!                 steps.compensate_with(Release { reservation: reservation.clone() });
//!                 self.reservation = Some(reservation);
//!             }
//!             _ => steps.fail("no stock"),
//!         }
//!     }
//! }
//!
//! #[handler]
//! async fn reserve(cmd: Reserve) -> Result<String, HandlerError> { Ok(format!("r-{}", cmd.sku)) }
//! #[handler]
//! async fn release(_: Release) -> Result<(), HandlerError> { Ok(()) }
//!
//! let bus = cmdbus::testing::MemoryBus::in_memory();
//! let id = uuid::Uuid::now_v7();
//! bus.start_process(id, Order { sku: "tea".into(), reservation: None }).await?;
//! cmdbus::testing::run_until_idle(&bus, &["docs-orders"], std::time::Duration::from_secs(5)).await?;
//! let order = bus.process::<Order>(id).await?;
//! assert_eq!(order.status, cmdbus::ProcessStatus::Completed);
//! assert_eq!(order.state.reservation.as_deref(), Some("r-tea"));
//! # Ok(()) }
//! ```
//!
//! Each event is a command of type `Order` in the process's domain,
//! handled by the bus: workers serving the domain run the process. Every
//! command a process sends carries its correlation id, so
//! [`CommandQuery`](crate)-style queries by correlation id show all of it.

mod event;
mod operate;
mod record;
mod run;

use std::{marker::PhantomData, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use event::{PROCESS_REPLY_QUEUE, ProcessEvent, ProcessReport};
pub use operate::{ProcessAction, ProcessView, Processes};
pub use record::{Awaited, ProcessFilter, ProcessRecord, ProcessStatus, StepMember, StoredCommand};
#[doc(hidden)]
pub use run::{handle as __handle, react as __react};

use crate::{Command, HandlerError, NewCommand, SendOptions, TypedReply};

/// What `#[derive(Process)]` implements: the process's name and domain,
/// and which reaction each step's reply goes to.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a process type",
    label = "not a process type",
    note = "declare it with `#[derive(cmdbus::Process)]` and `#[process(domain = \"...\", steps(...))]`"
)]
pub trait ProcessType: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The domain its events run in (workers serving it run the process).
    const DOMAIN: &'static str;
    /// Its name: the stored process type, and its events' command type.
    const NAME: &'static str;

    /// Gives `reply` (of a step of type `command_type` in `domain`) to
    /// its reaction; `false` if no step has that type.
    #[doc(hidden)]
    fn react(
        &mut self,
        domain: &str,
        command_type: &str,
        reply: &crate::Reply,
        steps: &mut Steps<Self>,
    ) -> Result<bool, HandlerError>;
}

/// A process manager: what it does when it starts and when a timeout
/// fires. Its reactions to replies are [`Reacts`] impls, one per step.
pub trait Process: ProcessType {
    /// What a timeout carries back (`()` when the process has none).
    type Timeout: Serialize + DeserializeOwned + Send + 'static;

    /// Sends the first steps.
    fn start(&mut self, steps: &mut Steps<Self>);

    /// A timeout set with [`Steps::timeout_after`] fired (and the process
    /// had not ended). By default, does nothing.
    fn on_timeout(&mut self, timeout: Self::Timeout, steps: &mut Steps<Self>) {
        let _ = (timeout, steps);
    }
}

/// Marks `C` as a command process `Self` may send: listed in
/// `#[process(steps(...))]` or `#[process(compensations(...))]`.
#[diagnostic::on_unimplemented(
    message = "`{C}` is not a command `{Self}` sends",
    label = "not listed by `{Self}`",
    note = "list it in `#[process(steps(...))]` (to react to its reply) or `#[process(compensations(...))]` on `{Self}`"
)]
pub trait Sends<C: Command> {}

/// How process `Self` reacts to the reply of its step `C`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not react to the reply of `{C}`",
    label = "no reaction to `{C}`",
    note = "a step's reply drives the process: implement `cmdbus::process::Reacts<{C}>` for `{Self}`"
)]
pub trait Reacts<C: Command>: Process + Sends<C> {
    /// `C` ended: completed with its reply, failed, or was canceled.
    fn on_reply(&mut self, reply: TypedReply<C::Reply>, steps: &mut Steps<Self>);
}

/// What a process does next, collected while it reacts and stored with
/// its new state when the reaction's transaction commits.
pub struct Steps<P> {
    process_id: Uuid,
    correlation_id: Uuid,
    pub(crate) sent: Vec<NewCommand>,
    pub(crate) compensations: Vec<StoredCommand>,
    pub(crate) timers: Vec<(Duration, serde_json::Value)>,
    pub(crate) failed: Option<String>,
    pub(crate) completed: bool,
    pub(crate) error: Option<crate::Error>,
    _process: PhantomData<fn() -> P>,
}

impl<P: Process> Steps<P> {
    pub(crate) fn new(process_id: Uuid, correlation_id: Uuid) -> Self {
        Self {
            process_id,
            correlation_id,
            sent: Vec::new(),
            compensations: Vec::new(),
            timers: Vec::new(),
            failed: None,
            completed: false,
            error: None,
            _process: PhantomData,
        }
    }

    /// The process instance.
    pub fn process_id(&self) -> Uuid {
        self.process_id
    }

    /// The correlation id every command it sends carries.
    pub fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// Sends step `C`; its reply comes back to [`Reacts<C>`]. Commands sent
    /// by one reaction form one step: the process hears back when all of
    /// them have ended (a member in the troubleshooting queue holds it).
    pub fn send<C: Command>(&mut self, command: C) -> &mut Self
    where
        P: Reacts<C>,
    {
        self.send_with(command, SendOptions::new())
    }

    /// [`send`](Self::send) with options (delay, priority, attempts); the
    /// correlation id and reply queue are the process's.
    pub fn send_with<C: Command>(&mut self, command: C, options: SendOptions) -> &mut Self
    where
        P: Reacts<C>,
    {
        let options = options.correlation_id(self.correlation_id).reply_to(PROCESS_REPLY_QUEUE);
        match crate::bus::prepare(&command, options, usize::MAX) {
            Ok(prepared) => self.sent.push(prepared),
            Err(error) => self.record_error(error),
        }
        self
    }

    /// Undoes a completed step if the process fails later: compensations
    /// run newest first, each awaited, each with a new id.
    pub fn compensate_with<C: Command>(&mut self, command: C) -> &mut Self
    where
        P: Sends<C>,
    {
        match crate::bus::prepare(&command, SendOptions::new(), usize::MAX)
            .and_then(StoredCommand::of)
        {
            Ok(stored) => self.compensations.push(stored),
            Err(error) => self.record_error(error),
        }
        self
    }

    /// Fires [`Process::on_timeout`] after `delay`, unless the process has
    /// ended by then. Durable: a command due then, not a timer in memory.
    pub fn timeout_after(&mut self, delay: Duration, timeout: P::Timeout) -> &mut Self {
        match serde_json::to_value(&timeout) {
            Ok(timeout) => self.timers.push((delay, timeout)),
            Err(source) => self.record_error(crate::Error::Encode {
                domain: P::DOMAIN,
                command_type: P::NAME,
                source,
            }),
        }
        self
    }

    /// Fails the process: nothing this reaction sent is sent, timeouts are
    /// dropped, and the compensations of completed steps run.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.failed = Some(reason.into());
    }

    /// Ends the process as completed now, even with steps or timeouts
    /// outstanding (their events are then ignored); what this reaction
    /// sent is not sent.
    pub fn complete(&mut self) {
        self.completed = true;
    }

    fn record_error(&mut self, error: crate::Error) {
        self.error.get_or_insert(error);
    }
}

impl<P> std::fmt::Debug for Steps<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps")
            .field("process_id", &self.process_id)
            .field("sent", &self.sent.len())
            .field("compensations", &self.compensations.len())
            .field("timers", &self.timers.len())
            .field("failed", &self.failed)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}
