//! Periodic commands with three workers declaring the same schedule: one
//! command per tick, no gaps while they run, no catch-up storm after they
//! were all down (or exactly one catch-up when asked).

use std::{collections::BTreeSet, time::Duration};

use cmdbus::{Command, HandlerError, MissedTicks, Schedule, Worker, handler};
use cmdbus_pg::PgBus;
use cmdbus_tests::pg_bus;
use sqlx::AssertSqlSafe;

/// Sent on every tick.
#[derive(Command)]
#[command(domain = "sched-it")]
struct Beat {
    tick: u64,
}

#[handler]
async fn beat(_cmd: Beat) -> Result<(), HandlerError> {
    Ok(())
}

const PERIOD: Duration = Duration::from_millis(100);

/// Three workers, started at once (as a deployment restarts them): started
/// one after the other, they could straddle a tick and each see another
/// "latest missed" tick.
async fn workers(bus: &PgBus, missed: MissedTicks) -> Vec<Worker> {
    let start = || {
        let schedule =
            Schedule::every("beat", PERIOD, |tick| Beat { tick: tick.index }).missed_ticks(missed);
        bus.worker().domain("sched-it").schedule(schedule).start()
    };
    let (a, b, c) = tokio::join!(start(), start(), start());
    [a, b, c].into_iter().map(|w| w.expect("worker")).collect()
}

async fn stop(workers: Vec<Worker>) {
    for worker in workers {
        worker.shutdown().await;
    }
}

/// The ticks sent so far, and how many commands carry them.
async fn ticks(bus: &PgBus) -> (BTreeSet<u64>, usize) {
    let sql = format!(
        r#"SELECT (payload ->> 'tick')::bigint FROM "{}".commands WHERE command_type = 'Beat'"#,
        bus.transport().schema()
    );
    let rows: Vec<i64> =
        sqlx::query_scalar(AssertSqlSafe(sql)).fetch_all(bus.pool()).await.expect("ticks");
    let count = rows.len();
    (rows.into_iter().map(|t| u64::try_from(t).expect("tick")).collect(), count)
}

/// Checks that at least `at_least` ticks were sent, each once (by whichever
/// worker came first), none skipped; returns the first and last.
async fn each_tick_once(bus: &PgBus, at_least: usize) -> (u64, u64) {
    let (sent, count) = ticks(bus).await;
    assert_eq!(sent.len(), count, "each tick sent once: {sent:?}");
    assert!(count >= at_least, "{count} ticks, wanted {at_least}");
    let (low, high) = (*sent.first().expect("ticks"), *sent.last().expect("ticks"));
    assert_eq!(high - low + 1, count as u64, "no tick skipped while the workers ran: {sent:?}");
    (low, high)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_send_each_tick_once_and_do_not_catch_up_unless_asked() {
    let bus = pg_bus().await;
    let running = workers(&bus, MissedTicks::Skip).await;
    tokio::time::sleep(PERIOD * 22).await;
    stop(running).await;
    let (_, high) = each_tick_once(&bus, 20).await;

    // All down for ~6 ticks, then a restart storm: nothing is caught up.
    tokio::time::sleep(PERIOD * 6).await;
    let running = workers(&bus, MissedTicks::Skip).await;
    tokio::time::sleep(PERIOD * 5).await;
    stop(running).await;
    let (second, count) = ticks(&bus).await;
    assert_eq!(second.len(), count);
    let resumed: Vec<u64> = second.iter().copied().filter(|t| *t > high).collect();
    assert!(resumed[0] >= high + 5, "missed ticks were skipped: {resumed:?} after {high}");

    // Asked to catch up: the latest missed tick is sent, once, and none of
    // the older ones. A worker sends the tick current at its start, so
    // workers whose starts straddle a tick boundary send that one too.
    let last = *second.last().expect("ticks");
    tokio::time::sleep(PERIOD * 6).await;
    let restart = tick_now();
    let running = workers(&bus, MissedTicks::SendLatest).await;
    stop(running).await;
    let stopped = tick_now();
    // The catch-up send runs as the schedules start; stopped workers send
    // no regular tick, so wait for it, then make sure no second one comes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ticks(&bus).await.0.iter().all(|t| *t <= last) {
        assert!(tokio::time::Instant::now() < deadline, "the missed tick was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(PERIOD * 3).await;
    let (third, count) = ticks(&bus).await;
    assert_eq!(third.len(), count);
    let caught_up: Vec<u64> = third.iter().copied().filter(|t| *t > last).collect();
    assert!(restart >= last + 5, "ticks {last}..{restart} were missed");
    // None of the older missed ticks, and at most one per tick the restart
    // took (one, unless the starts straddled a tick boundary).
    assert!(
        caught_up.iter().all(|t| (restart..=stopped).contains(t)),
        "only ticks from {restart} to {stopped}: {caught_up:?}"
    );
    assert!(caught_up.len() as u64 <= stopped - restart + 1, "{caught_up:?}");
}

/// The index of the current tick (ticks are aligned to the Unix epoch).
fn tick_now() -> u64 {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    u64::try_from(since_epoch.as_millis() / PERIOD.as_millis()).expect("fits")
}

/// A cron schedule (every second, six fields) declared by three workers:
/// each second's tick is sent once, by whichever worker came first, and
/// every tick is the instant the expression names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_send_each_cron_tick_once() {
    let bus = pg_bus().await;
    let start = || {
        let schedule = Schedule::cron("beat-cron", "* * * * * *", "Europe/Berlin", |tick| Beat {
            tick: tick.index,
        })
        .expect("a valid schedule");
        bus.worker().domain("sched-it").schedule(schedule).start()
    };
    let (a, b, c) = tokio::join!(start(), start(), start());
    let running: Vec<Worker> = [a, b, c].into_iter().map(|w| w.expect("worker")).collect();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    stop(running).await;
    let (_, high) = each_tick_once(&bus, 3).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("now");
    assert!(high <= now.as_secs() && now.as_secs() - high < 10, "ticks are Unix seconds: {high}");
}
