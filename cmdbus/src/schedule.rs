//! Periodic commands: a command sent once per tick, however many workers
//! declare the schedule. Ticks come from a fixed period aligned to the Unix
//! epoch, or (feature `cron`) from a cron expression in a time zone. Each
//! tick's command id is derived from the schedule and the tick, so every
//! worker sends the same id and idempotent send keeps one.

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
    /// Which tick: for a fixed period, periods since the Unix epoch
    /// (`at / period`); for a cron schedule, `at` in seconds since the epoch.
    pub index: u64,
    /// When it is due.
    pub at: DateTime<Utc>,
}

/// When a schedule's ticks fall.
#[derive(Clone, Debug)]
enum Cadence {
    /// Every `period`, aligned to the Unix epoch (in milliseconds, at least 1).
    Every { period_ms: u64 },
    /// At the times a cron expression names in a time zone.
    #[cfg(feature = "cron")]
    Cron { expression: Box<croner::Cron>, zone: chrono_tz::Tz },
}

impl Cadence {
    /// The latest tick at or before `instant`, if any.
    fn at_or_before(&self, instant: DateTime<Utc>) -> Option<Tick> {
        match self {
            Self::Every { period_ms } => {
                let ms = u64::try_from(instant.timestamp_millis()).unwrap_or(0);
                Some(self.every_tick(ms / period_ms, *period_ms))
            }
            #[cfg(feature = "cron")]
            Self::Cron { expression, zone } => expression
                .find_previous_occurrence(&instant.with_timezone(zone), true)
                .ok()
                .and_then(|at| cron_tick(at.to_utc())),
        }
    }

    /// The first tick after `instant`, if any.
    fn after(&self, instant: DateTime<Utc>) -> Option<Tick> {
        match self {
            Self::Every { period_ms } => {
                let ms = u64::try_from(instant.timestamp_millis()).unwrap_or(0);
                Some(self.every_tick(ms / period_ms + 1, *period_ms))
            }
            #[cfg(feature = "cron")]
            Self::Cron { expression, zone } => expression
                .find_next_occurrence(&instant.with_timezone(zone), false)
                .ok()
                .and_then(|at| cron_tick(at.to_utc())),
        }
    }

    fn every_tick(&self, index: u64, period_ms: u64) -> Tick {
        let ms = index.saturating_mul(period_ms);
        let at = DateTime::<Utc>::UNIX_EPOCH
            + TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX));
        Tick { index, at }
    }
}

/// A cron occurrence as a tick: its index is the instant in Unix seconds.
#[cfg(feature = "cron")]
fn cron_tick(at: DateTime<Utc>) -> Option<Tick> {
    Some(Tick { index: u64::try_from(at.timestamp()).ok()?, at })
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

/// A command type sent every `period`, or (feature `cron`) on a cron
/// expression in a time zone; declared at worker start with
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
    cadence: Cadence,
    missed: MissedTicks,
    domain: &'static str,
    make: Arc<dyn Fn(Tick, SendOptions) -> Result<NewCommand> + Send + Sync>,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("cadence", &self.cadence)
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
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        Self::with_cadence(name.into(), Cadence::Every { period_ms }, make)
    }

    /// Sends `make(tick)` at the times the cron `expression` names in the
    /// IANA time zone `zone` (e.g. `"0 9 * * MON-FRI"` in
    /// `"Europe/Berlin"`: 09:00 Berlin time on weekdays, summer and winter).
    /// Five fields (minute to weekday), or six with seconds first; `L`, `#`
    /// and `W` as in Vixie cron. Across daylight-saving changes, a fixed
    /// time of day (`30 2 * * *`) that a spring-forward change skips runs
    /// once right after the gap, and one a fall-back change repeats runs
    /// once; interval patterns (`*/15 * * * *`) follow the wall clock.
    ///
    /// ```
    /// # #[derive(cmdbus::Command)]
    /// # #[command(domain = "billing")]
    /// # struct SendInvoices {}
    /// let weekday_mornings =
    ///     cmdbus::Schedule::cron("invoices", "0 9 * * MON-FRI", "Europe/Berlin", |_| SendInvoices {})?;
    /// # Ok::<(), cmdbus::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchedule`](crate::Error::InvalidSchedule) for an
    /// expression or zone that does not parse.
    #[cfg(feature = "cron")]
    pub fn cron<C: Command>(
        name: impl Into<String>,
        expression: &str,
        zone: &str,
        make: impl Fn(Tick) -> C + Send + Sync + 'static,
    ) -> Result<Self> {
        let name = name.into();
        let invalid =
            |reason: String| crate::Error::InvalidSchedule { schedule: name.clone(), reason };
        let parsed: croner::Cron = expression.parse().map_err(|e| {
            invalid(format!("the cron expression {expression:?} does not parse: {e}"))
        })?;
        let zone: chrono_tz::Tz = zone.parse().map_err(|_| {
            invalid(format!(
                "{zone:?} is not an IANA time zone (such as \"Europe/Berlin\" or \"UTC\")"
            ))
        })?;
        let cadence = Cadence::Cron { expression: Box::new(parsed), zone };
        Ok(Self::with_cadence(name, cadence, make))
    }

    fn with_cadence<C: Command>(
        name: String,
        cadence: Cadence,
        make: impl Fn(Tick) -> C + Send + Sync + 'static,
    ) -> Self {
        let make = move |tick: Tick, options: SendOptions| {
            crate::bus::prepare(&make(tick), options, crate::DEFAULT_MAX_PAYLOAD_BYTES)
        };
        Self { name, cadence, missed: MissedTicks::Skip, domain: C::DOMAIN, make: Arc::new(make) }
    }

    /// What to do about ticks missed while no worker ran (default: skip them).
    #[must_use]
    pub fn missed_ticks(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    /// The command id of tick `index`: the same in every worker.
    pub fn command_id(&self, index: u64) -> Uuid {
        Uuid::new_v5(&NAMESPACE, format!("{}/{}/{index}", self.domain, self.name).as_bytes())
    }

    /// Sends `tick` (a duplicate when another worker was first).
    async fn send<T: Transport>(&self, transport: &T, tick: Tick) {
        let index = tick.index;
        let options = SendOptions::new().command_id(self.command_id(index));
        let sent = match (self.make)(tick, options) {
            Ok(command) => transport.commands_send(vec![command]).await.map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            warn!(schedule = %self.name, tick = index, error = %error.report(), "cmdbus: sending a periodic command failed");
        }
    }

    /// Sends this schedule's ticks until `stopped` fires (or a cron
    /// expression names no later time).
    pub(crate) async fn run<T: Transport>(self, transport: T, mut stopped: watch::Receiver<bool>) {
        let now = Utc::now();
        if self.missed == MissedTicks::SendLatest
            && let Some(latest) = self.cadence.at_or_before(now)
        {
            self.send(&transport, latest).await;
        }
        let mut next = self.cadence.after(now);
        while let Some(tick) = next {
            let wait = (tick.at - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
            self.send(&transport, tick).await;
            // After a stall (a suspended process), send only the latest tick
            // that passed, not every one.
            next = match self.cadence.at_or_before(Utc::now()) {
                Some(latest) if latest.at > tick.at => Some(latest),
                _ => self.cadence.after(tick.at),
            };
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
        let tick = schedule.cadence.at_or_before(at).expect("a tick");
        assert_eq!(tick.at.to_rfc3339(), "2026-11-27T10:00:00+00:00");
        let next = schedule.cadence.after(at).expect("a tick");
        assert_eq!(
            (next.index, next.at.to_rfc3339()),
            (tick.index + 1, "2026-11-27T10:01:00+00:00".into())
        );
        let index = tick.index;
        let again =
            Schedule::every("ping", Duration::from_secs(60), |tick| Ping { index: tick.index });
        assert_eq!(schedule.command_id(index), again.command_id(index));
        assert_ne!(schedule.command_id(index), schedule.command_id(index + 1));
        let other =
            Schedule::every("pong", Duration::from_secs(60), |tick| Ping { index: tick.index });
        assert_ne!(schedule.command_id(index), other.command_id(index));
        let command = (schedule.make)(Tick { index: 7, at }, SendOptions::new()).expect("encodes");
        assert_eq!(command.payload.get(), r#"{"index":7}"#);
        let zero = Schedule::every("x", Duration::ZERO, |t| Ping { index: t.index });
        assert!(matches!(zero.cadence, Cadence::Every { period_ms: 1 }));
        assert!(format!("{schedule:?}").contains("ping"));
    }

    #[cfg(feature = "cron")]
    #[test]
    fn cron_ticks_follow_the_wall_clock_of_their_zone() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        let berlin = Schedule::cron("morning", "0 9 * * MON-FRI", "Europe/Berlin", |t| Ping {
            index: t.index,
        })
        .expect("parses");
        // Friday 2026-03-27 09:00 CET is 08:00 UTC; after the change to
        // summer time, Monday 2026-03-30 09:00 CEST is 07:00 UTC.
        let friday = berlin.cadence.after(at("2026-03-27T06:00:00Z")).expect("a tick");
        assert_eq!(friday.at, at("2026-03-27T08:00:00Z"));
        assert_eq!(friday.index, u64::try_from(friday.at.timestamp()).expect("after 1970"));
        let monday = berlin.cadence.after(friday.at).expect("a tick");
        assert_eq!(monday.at, at("2026-03-30T07:00:00Z"), "the weekend skipped, summer time");
        let latest = berlin.cadence.at_or_before(at("2026-03-29T12:00:00Z")).expect("a tick");
        assert_eq!(latest, friday);
        assert_eq!(berlin.cadence.at_or_before(friday.at), Some(friday), "inclusive");

        // 02:30 does not exist in Berlin on 2026-03-29 (02:00 -> 03:00): it
        // runs once, at the first instant after the gap.
        let gap = Schedule::cron("gap", "30 2 * * *", "Europe/Berlin", |t| Ping { index: t.index })
            .expect("parses");
        let runs = |from: &str| -> Vec<DateTime<Utc>> {
            std::iter::successors(gap.cadence.after(at(from)), |t| gap.cadence.after(t.at))
                .take(3)
                .map(|t| t.at)
                .collect()
        };
        let spring = ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"];
        assert_eq!(runs("2026-03-28T00:00:00Z"), spring.map(at), "after the gap, once");
        // 02:30 happens twice on 2026-10-25 (03:00 CEST -> 02:00 CET): once.
        let autumn = ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"];
        assert_eq!(runs("2026-10-24T00:00:00Z"), autumn.map(at), "the repeated hour, once");

        for (expression, zone, wrong) in [
            ("61 * * * *", "UTC", "does not parse"),
            ("0 9 * * *", "Mars/Olympus", "IANA time zone"),
        ] {
            let error = Schedule::cron("bad", expression, zone, |t| Ping { index: t.index })
                .expect_err("refused");
            assert!(error.to_string().contains(wrong), "{error}");
            assert!(error.to_string().contains("schedule \"bad\""), "{error}");
        }
    }
}
