//! The connection pool [`PgBus::connect`](crate::PgBus::connect) opens.
//!
//! sqlx checks every connection with a round trip to the server before it
//! hands it out (`test_before_acquire`), so each send, lease and completion
//! waits for two round trips instead of one (it checks again, in the
//! background, as a connection returns to the pool). A connection used a
//! moment ago is almost always still there, so only one idle longer than
//! [`CHECK_IDLE_AFTER`] is checked, as HikariCP does. What is given up:
//! after the server drops a connection used within that window (a restart,
//! an operator's `pg_terminate_backend`), the next statement on it fails
//! once, as one running at the cut would, and the pool opens a new
//! connection for the one after. Workers retry leases and completions by
//! themselves; a sender retries a failed send with the same command id
//! (idempotent).

use std::time::Duration;

use sqlx::{Connection, postgres::PgPoolOptions};

/// A connection idle longer than this is checked before it is handed out.
/// Below the idle timeouts that cut connections quietly (NAT tables,
/// firewalls, poolers: a minute and more); above the gap between two
/// statements of a worker or sender in steady use.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_millis(500);

/// Pool options for a bus: up to 16 connections, 10 s to acquire one, and
/// only connections idle longer than [`CHECK_IDLE_AFTER`] checked first.
/// Start from these when [building](crate::PgBus::builder) a bus over a
/// pool of your own:
///
/// ```no_run
/// # async fn run() -> cmdbus::Result<()> {
/// let pool = cmdbus_pg::pool_options()
///     .max_connections(40)
///     .connect_lazy("postgres://app@db/app")
///     .map_err(|e| cmdbus::Error::backend("connecting", e))?;
/// let bus = cmdbus_pg::PgBus::builder(pool).schema("cmdbus").build().await?;
/// # Ok(()) }
/// ```
#[must_use]
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_IDLE_AFTER {
                    // An error discards this connection; the pool opens another.
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}
