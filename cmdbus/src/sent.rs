//! What `send` returns: the outcome, typed by the command that was sent, so
//! its reply, record and audit trail need no turbofish, domain or loose id.

use std::{fmt, marker::PhantomData, time::Duration};

use uuid::Uuid;

use crate::{AuditEntry, Bus, Command, CommandRecord, Result, SendOutcome, Transport, TypedReply};

/// A command of type `C` that was sent (or found already sent) on a bus.
///
/// ```
/// # use cmdbus::{HandlerError, testing::MemoryBus};
/// #[cmdbus::command(domain = "sent-doc", reply = u32)]
/// struct Count {}
///
/// #[cmdbus::handler]
/// async fn count(_cmd: Count) -> Result<u32, HandlerError> {
///     Ok(42)
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = MemoryBus::in_memory();
/// let worker = bus.worker().domain("sent-doc").start().await?;
/// let sent = bus.send(Count {}).await?;
/// let reply = sent.wait_reply(std::time::Duration::from_secs(5)).await?;
/// assert_eq!(reply.into_result()?, 42); // a FAILED or CANCELED reply is an error
/// assert_eq!(sent.audit_trail().await?.len(), 3); // SENT, RECEIVED, COMPLETED
/// worker.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Sent<C, T> {
    bus: Bus<T>,
    outcome: SendOutcome,
    command: PhantomData<fn() -> C>,
}

impl<C: Command, T: Transport> Sent<C, T> {
    /// The handle for `outcome` on `bus` (for backends' own send forms,
    /// such as sending inside a transaction).
    pub fn new(bus: Bus<T>, outcome: SendOutcome) -> Self {
        Self { bus, outcome, command: PhantomData }
    }

    /// The command's id (the existing command's, for a duplicate).
    pub fn command_id(&self) -> Uuid {
        self.outcome.command_id()
    }

    /// Whether the id existed already: the command was left untouched.
    pub fn is_duplicate(&self) -> bool {
        self.outcome.is_duplicate()
    }

    /// What the transport reported.
    pub fn outcome(&self) -> SendOutcome {
        self.outcome
    }

    /// Waits up to `timeout` for the reply, decoded as `C`'s reply type.
    pub async fn wait_reply(&self, timeout: Duration) -> Result<TypedReply<C::Reply>> {
        self.bus.wait_reply::<C>(self.command_id(), timeout).await
    }

    /// The command as stored now.
    pub async fn record(&self) -> Result<CommandRecord> {
        self.bus.command::<C>(self.command_id()).await
    }

    /// The command's audit trail, oldest first.
    pub async fn audit_trail(&self) -> Result<Vec<AuditEntry>> {
        self.bus.audit_trail::<C>(self.command_id()).await
    }
}

impl<C, T: Clone> Clone for Sent<C, T> {
    fn clone(&self) -> Self {
        Self { bus: self.bus.clone(), outcome: self.outcome, command: PhantomData }
    }
}

impl<C: Command, T> fmt::Debug for Sent<C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sent")
            .field("command", &format_args!("{}/{}", C::DOMAIN, C::NAME))
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}
