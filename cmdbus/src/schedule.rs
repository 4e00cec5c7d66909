//! Periodic commands: a command sent once per tick of a fixed period,
//! however many workers declare the schedule. Ticks are aligned to the Unix
//! epoch, and each tick's command id is derived from the schedule and the
//! tick, so every worker sends the same id and idempotent send keeps one.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tracing::warn;
use uuid::Uuid;

use crate::{Command, NewCommand, Result, SendOptions, Transport};

/// The ids of periodic commands: UUIDv5 of `domain/schedule/tick` in this namespace.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_23b8_5d0e_4a8e_9a51_c0de_b05c_4ed1);

/// One tick of a schedule, handed to the closure that builds its command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tick {
    /// Ticks since the Unix epoch (`at / period`).
    pub index: u64,
    /// When it is due.
    pub at: DateTime<Utc>,
}

/// What a worker does about ticks that passed while no worker ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissedTicks {
    /// Nothing: the schedule resumes with the next tick (no catch-up storm).
    #[default]
    Skip,
    /// Sends the latest missed tick once, then resumes.
    SendLatest,
}

/// A command type sent every `period`, declared at worker start with
/// [`WorkerBuilder::schedule`](crate::WorkerBuilder::schedule).
///
/// ```
/// use std::time::Duration;
/// # #[derive(cmdbus::Command)]
/// # #[command(domain = "billing")]
/// # struct CloseTheDay { day: u64 }
/// let nightly = cmdbus::Schedule::every("close-the-day", Duration::from_secs(86_400), |tick| {
///     CloseTheDay { day: tick.index }
/// });
/// ```
pub struct Schedule {
    name: String,
    period: Duration,
    missed: MissedTicks,
    domain: &'static str,
    make: Arc<dyn Fn(Tick, SendOptions) -> Result<NewCommand> + Send + Sync>,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("period", &self.period)
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

impl Schedule {
    /// Sends `make(tick)` every `period` (at least 1 ms), named `name`
    /// (unique per domain: it is part of every tick's command id).
    pub fn every<C: Command>(
        name: impl Into<String>,
        period: Duration,
        make: impl Fn(Tick) -> C + Send + Sync + 'static,
    ) -> Self {
        let period = period.max(Duration::from_millis(1));
        let make = move |tick: Tick, options: SendOptions| {
            crate::bus::prepare(&make(tick), options, crate::DEFAULT_MAX_PAYLOAD_BYTES)
        };
        Self {
            name: name.into(),
            period,
            missed: MissedTicks::Skip,
            domain: C::DOMAIN,
            make: Arc::new(make),
        }
    }

    /// What to do about ticks missed while no worker ran (default: skip them).
    #[must_use]
    pub fn missed_ticks(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    fn period_ms(&self) -> u64 {
        u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn tick(&self, index: u64) -> Tick {
        let ms = index.saturating_mul(self.period_ms());
        let at = DateTime::<Utc>::UNIX_EPOCH
            + TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX));
        Tick { index, at }
    }

    /// The command id of tick `index`: the same in every worker.
    pub fn command_id(&self, index: u64) -> Uuid {
        Uuid::new_v5(&NAMESPACE, format!("{}/{}/{index}", self.domain, self.name).as_bytes())
    }

    /// The index of the latest tick at or before `now`.
    fn index_at(&self, now: DateTime<Utc>) -> u64 {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        ms / self.period_ms()
    }

    /// Sends tick `index` (a duplicate when another worker was first).
    async fn send<T: Transport>(&self, transport: &T, index: u64) {
        let options = SendOptions::new().command_id(self.command_id(index));
        let sent = match (self.make)(self.tick(index), options) {
            Ok(command) => transport.commands_send(vec![command]).await.map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            warn!(schedule = %self.name, tick = index, error = %error.report(), "cmdbus: sending a periodic command failed");
        }
    }

    /// Sends this schedule's ticks until `stopped` fires.
    pub(crate) async fn run<T: Transport>(self, transport: T, mut stopped: watch::Receiver<bool>) {
        let now = Utc::now();
        let mut next = self.index_at(now) + 1;
        if self.missed == MissedTicks::SendLatest {
            self.send(&transport, next - 1).await;
        }
        loop {
            let wait = (self.tick(next).at - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
            self.send(&transport, next).await;
            // After a stall (a suspended process), send only the latest tick
            // that passed, not every one.
            next = (next + 1).max(self.index_at(Utc::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(crate::Command)]
    #[command(domain = "schedule-unit")]
    struct Ping {
        index: u64,
    }

    #[test]
    fn ticks_align_to_the_epoch_and_ids_are_the_same_everywhere() {
        let schedule =
            Schedule::every("ping", Duration::from_secs(60), |tick| Ping { index: tick.index });
        let at = DateTime::parse_from_rfc3339("2026-11-27T10:00:30Z").expect("time").to_utc();
        let index = schedule.index_at(at);
        assert_eq!(schedule.tick(index).at.to_rfc3339(), "2026-11-27T10:00:00+00:00");
        let again =
            Schedule::every("ping", Duration::from_secs(60), |tick| Ping { index: tick.index });
        assert_eq!(schedule.command_id(index), again.command_id(index));
        assert_ne!(schedule.command_id(index), schedule.command_id(index + 1));
        let other =
            Schedule::every("pong", Duration::from_secs(60), |tick| Ping { index: tick.index });
        assert_ne!(schedule.command_id(index), other.command_id(index));
        let command = (schedule.make)(schedule.tick(7), SendOptions::new()).expect("encodes");
        assert_eq!(command.payload.get(), r#"{"index":7}"#);
        assert_eq!(
            Schedule::every("x", Duration::ZERO, |t| Ping { index: t.index }).period_ms(),
            1
        );
        assert!(format!("{schedule:?}").contains("ping"));
    }
}
