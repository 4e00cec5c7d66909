//! LISTEN/NOTIFY wake-ups.
//!
//! Sends never NOTIFY inside their own transaction: a NOTIFY takes a global
//! lock through the commit's WAL flush and roughly halves single-send
//! throughput. Instead, after the commit, the sender pokes the [`Notifier`],
//! which coalesces pokes and issues one `pg_notify` per domain for all the
//! sends that arrived while the previous one ran. A lost wake-up is covered
//! by the worker's fallback poll.

use std::{collections::BTreeSet, time::Duration};

use cmdbus::{WakeSender, WakeUps};
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Under sustained sends, at most one NOTIFY per domain per window.
const NOTIFY_WINDOW: Duration = Duration::from_millis(1);

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
                    let domains: BTreeSet<String> = batch.drain(..).collect();
                    for domain in domains {
                        let sent = sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(&channel)
                            .bind(&domain)
                            .execute(&pool)
                            .await;
                        if let Err(error) = sent {
                            debug!(%error, "cmdbus: NOTIFY failed; workers fall back to polling");
                        }
                    }
                    tokio::time::sleep(NOTIFY_WINDOW).await;
                    while let Ok(domain) = receiver.try_recv() {
                        batch.push(domain);
                    }
                    if batch.is_empty() {
                        break;
                    }
                }
            }
        });
        Self { pokes }
    }

    /// Asks for a wake-up of `domain`'s workers (after the send committed).
    pub(crate) fn poke(&self, domain: &str) {
        let _ = self.pokes.send(domain.to_owned());
    }
}

/// Subscribes to wake-ups for `domains` on a dedicated connection (LISTEN
/// does not survive a transaction-mode pooler). The listener reconnects by
/// itself; after each reconnection it wakes the worker once, since
/// notifications sent while it was away are lost.
pub(crate) async fn listen(
    pool: &PgPool,
    channel: &str,
    domains: &[String],
) -> cmdbus::Result<WakeUps> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(|e| cmdbus::Error::backend("connecting the LISTEN connection", e))?;
    listener.listen(channel).await.map_err(|e| cmdbus::Error::backend("LISTEN", e))?;
    let sender = WakeSender::new();
    let wakeups = sender.subscribe();
    let domains: BTreeSet<String> = domains.iter().cloned().collect();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = sender.closed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        if domains.contains(notification.payload()) {
                            sender.wake();
                        }
                    }
                    // The connection dropped; the next try_recv reconnects.
                    Ok(None) => sender.wake(),
                    Err(error) => {
                        warn!(%error, "cmdbus: LISTEN connection failed; retrying");
                        sender.wake();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
    });
    Ok(wakeups)
}
