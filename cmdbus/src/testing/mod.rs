//! Helpers for testing code that uses cmdbus, without a database.
//!
//! ```
//! use cmdbus::{HandlerError, command, handler, testing::MemoryBus};
//!
//! #[command(domain = "docs-testing", reply = String)]
//! struct Greet { name: String }
//!
//! #[handler]
//! async fn greet(cmd: Greet) -> Result<String, HandlerError> {
//!     Ok(format!("hello {}", cmd.name))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cmdbus::Result<()> {
//! let bus = MemoryBus::in_memory();
//! let sent = bus.send(Greet { name: "ada".into() }).await?;
//! assert_eq!(cmdbus::testing::sent::<Greet>(&bus)[0].name, "ada");
//!
//! let worker = bus.worker().domain("docs-testing").start().await?;
//! let reply = bus.wait_reply::<Greet>(sent.command_id(), std::time::Duration::from_secs(5)).await?;
//! assert_eq!(reply.success().as_deref(), Some("hello ada"));
//! worker.shutdown().await;
//! # Ok(()) }
//! ```

mod memory;

use std::time::Duration;

pub use memory::MemoryTransport;

use crate::{Bus, Command, HandlerContext, LeasedCommand};

/// A bus over the in-memory transport.
pub type MemoryBus = Bus<MemoryTransport>;

impl Bus<MemoryTransport> {
    /// A bus over a fresh in-memory store.
    pub fn in_memory() -> Self {
        Bus::new(MemoryTransport::new())
    }
}

/// Every command of type `C` sent on `bus`, decoded, in send order.
pub fn sent<C: Command>(bus: &MemoryBus) -> Vec<C> {
    bus.transport()
        .commands()
        .into_iter()
        .filter(|c| c.domain == C::DOMAIN && c.command_type == C::NAME)
        .filter_map(|c| serde_json::from_str(c.payload.get()).ok())
        .collect()
}

/// Asserts that at least one `C` was sent and returns them all.
///
/// # Panics
///
/// When no command of type `C` was sent: this is a test assertion.
#[track_caller]
pub fn assert_sent<C: Command>(bus: &MemoryBus) -> Vec<C> {
    let sent = sent::<C>(bus);
    assert!(!sent.is_empty(), "expected a {}/{} command to have been sent", C::DOMAIN, C::NAME);
    sent
}

/// A context for calling a handler of `C` directly in a unit test
/// (attempt 1 of the type's `max_attempts`, not bound to any transport).
pub fn context<C: Command>() -> HandlerContext {
    context_at::<C>(1)
}

/// [`context`] at attempt `attempt` (1-based), e.g. the last one, where a
/// handler may give up differently:
///
/// ```
/// # #[cmdbus::command(domain = "payments", max_attempts = 3)] struct Debit {}
/// let ctx = cmdbus::testing::context_at::<Debit>(3);
/// assert!(ctx.is_last_attempt());
/// ```
pub fn context_at<C: Command>(attempt: u32) -> HandlerContext {
    HandlerContext::detached(&LeasedCommand::detached::<C>(attempt))
}

/// Runs a worker for `domains` until every command has settled (completed,
/// failed, canceled, or in the troubleshooting queue), retries included,
/// without waiting out their backoff: whenever nothing is due, the clock of
/// the store is [advanced](MemoryTransport::advance) to the next due
/// command. Returns whether all settled before `timeout` (real time).
///
/// ```
/// # use cmdbus::{HandlerError, testing::MemoryBus};
/// #[cmdbus::command(domain = "settle-doc", max_attempts = 3, backoff = ["1h"])]
/// struct Flaky {}
///
/// #[cmdbus::handler]
/// async fn flaky(_cmd: Flaky, ctx: &mut cmdbus::HandlerContext) -> Result<(), HandlerError> {
///     if ctx.is_last_attempt() { Ok(()) } else { Err(HandlerError::transient("busy", "try later")) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = MemoryBus::in_memory();
/// let id = bus.send(Flaky {}).await.unwrap().command_id();
/// let settled = cmdbus::testing::run_until_settled(&bus, &["settle-doc"], std::time::Duration::from_secs(5));
/// assert!(settled.await.unwrap(), "two hours of backoff, skipped");
/// assert_eq!(bus.command::<Flaky>(id).await.unwrap().attempts, 3);
/// # }
/// ```
pub async fn run_until_settled(
    bus: &MemoryBus,
    domains: &[&str],
    timeout: Duration,
) -> crate::Result<bool> {
    run_until(bus, domains, timeout, |transport| {
        if transport.is_idle()
            && let Some(wait) = transport.next_due_in()
        {
            transport.advance(wait);
        }
        transport.is_settled()
    })
    .await
}

/// Runs a worker for `domains` until the store is idle (nothing running,
/// nothing due) or `timeout` passes; returns whether it became idle.
/// Commands due later (retries after their backoff) are left PENDING: use
/// [`run_until_settled`] to run them too.
pub async fn run_until_idle(
    bus: &MemoryBus,
    domains: &[&str],
    timeout: Duration,
) -> crate::Result<bool> {
    run_until(bus, domains, timeout, MemoryTransport::is_idle).await
}

/// Runs a worker for `domains`, checking `reached` every few milliseconds,
/// until it says so or `timeout` passes.
async fn run_until(
    bus: &MemoryBus,
    domains: &[&str],
    timeout: Duration,
    mut reached: impl FnMut(&MemoryTransport) -> bool,
) -> crate::Result<bool> {
    let mut builder = bus.worker().poll_interval(Duration::from_millis(10));
    for domain in domains {
        builder = builder.domain(*domain);
    }
    let worker = builder.start().await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut done = false;
    while !done && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        done = reached(bus.transport());
    }
    worker.shutdown().await;
    Ok(done)
}
