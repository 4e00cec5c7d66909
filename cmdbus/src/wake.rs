//! Wake-ups: how a transport tells a waiting worker "there may be work".
//!
//! A counter in a `watch` channel: a wake-up that arrives while the worker
//! is busy is not lost (the worker sees the counter moved), and any number
//! of wake-ups while busy collapse into one.

use tokio::sync::watch;

/// The transport's side: call [`wake`](Self::wake) when work may be available.
#[derive(Clone, Debug)]
pub struct WakeSender(watch::Sender<u64>);

impl WakeSender {
    /// A sender with no subscribers yet.
    pub fn new() -> Self {
        Self(watch::Sender::new(0))
    }

    /// Wakes every subscribed worker.
    pub fn wake(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves when every subscription is gone.
    pub async fn closed(&self) {
        self.0.closed().await;
    }

    /// A new subscription.
    pub fn subscribe(&self) -> WakeUps {
        WakeUps(Some(self.0.subscribe()))
    }
}

impl Default for WakeSender {
    fn default() -> Self {
        Self::new()
    }
}

/// The worker's side: resolves when woken since the last call.
#[derive(Debug)]
pub struct WakeUps(Option<watch::Receiver<u64>>);

impl WakeUps {
    /// A subscription that never fires (polling only).
    pub fn never() -> Self {
        Self(None)
    }

    /// Waits for the next wake-up. If the sender is gone this never resolves,
    /// and the worker's fallback poll takes over.
    pub async fn next(&mut self) {
        if let Some(receiver) = &mut self.0 {
            if receiver.changed().await.is_ok() {
                return;
            }
            self.0 = None;
        }
        std::future::pending::<()>().await;
    }
}
