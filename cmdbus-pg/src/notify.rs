//! LISTEN/NOTIFY wake-ups.
//!
//! A NOTIFY inside a transaction takes a global lock through the commit's WAL
//! flush, serializing concurrent sends' commits. So only a lone send (no
//! other send of the transport running) notifies inside its own statement
//! (the fastest wake-up); concurrent sends poke the [`Notifier`] after
//! commit, which coalesces pokes
//! into at most one `pg_notify` per domain per window. A lost wake-up is covered
//! by the worker's fallback poll. Replies work the same way on a second
//! channel, so `wait_reply` returns as soon as the reply is committed.

use std::{collections::BTreeSet, time::Duration};

use crate::pool_timeout::{Explain, explain};
use cmdbus::backend::{WakeSender, WakeUps};
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Under sustained sends, at most one NOTIFY per domain per window. Each
/// NOTIFY is a statement that takes PostgreSQL's global notify lock; at 1 ms
/// they cost 8 single senders ~18% of their throughput and the send→start
/// p50 at 500/s was 2.9-3.3 ms instead of 1.3-1.5 ms (more wake-ups, more
/// empty leases). A lone send still notifies inside its own statement.
const NOTIFY_WINDOW: Duration = Duration::from_millis(5);

/// Coalesces wake-ups and sends them after commit.
#[derive(Debug)]
pub(crate) struct Notifier {
    pokes: mpsc::UnboundedSender<String>,
}

impl Notifier {
    pub(crate) fn spawn(pool: PgPool, channel: String) -> Self {
        let (pokes, mut receiver) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            // Wait for a poke; notify at once (an idle worker wakes without
            // delay); then, while pokes keep coming, notify at most once per
            // window: a busy worker needs one wake-up, not one per send.
            while receiver.recv_many(&mut batch, 1024).await > 0 {
                loop {
                    let payloads: BTreeSet<String> = batch.drain(..).collect();
                    for payload in payloads {
                        let sent = sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(&channel)
                            .bind(&payload)
                            .execute(&pool)
                            .await;
                        if let Err(error) = sent {
                            debug!(error = %cmdbus::Report::new(&error), "cmdbus: NOTIFY failed; workers fall back to polling");
                        }
                    }
                    tokio::time::sleep(NOTIFY_WINDOW).await;
                    while let Ok(payload) = receiver.try_recv() {
                        batch.push(payload);
                    }
                    if batch.is_empty() {
                        break;
                    }
                }
            }
        });
        Self { pokes }
    }

    /// Asks for a notification with `payload` (after the change committed).
    pub(crate) fn poke(&self, payload: &str) {
        let _ = self.pokes.send(payload.to_owned());
    }
}

/// Listens on `channel` on a dedicated connection (LISTEN does not survive a
/// transaction-mode pooler) and wakes subscribers on each notification whose
/// payload `wanted` accepts. The listener reconnects by itself; after each
/// reconnection it wakes subscribers once, since notifications sent while it
/// was away are lost. It stops when no subscription is left.
pub(crate) async fn listen(
    pool: &PgPool,
    channel: &str,
    wanted: impl Fn(&str) -> bool + Send + 'static,
) -> cmdbus::Result<(WakeSender, WakeUps)> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .explained(pool, "connecting the LISTEN connection")
        .await?;
    listener.listen(channel).await.map_err(|e| cmdbus::Error::backend("LISTEN", e))?;
    let sender = WakeSender::new();
    let wakeups = sender.subscribe();
    let task_sender = sender.clone();
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = task_sender.closed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        if wanted(notification.payload()) {
                            task_sender.wake();
                        }
                    }
                    // The connection dropped; the next try_recv reconnects.
                    Ok(None) => task_sender.wake(),
                    // The application is closing the pool: let it.
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        let error = explain(&pool, "receiving notifications", error).await;
                        warn!(error = %error.report(), "cmdbus: LISTEN connection failed; retrying");
                        task_sender.wake();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
    });
    Ok((sender, wakeups))
}
