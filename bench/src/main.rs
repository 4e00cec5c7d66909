//! `make bench`: cmdbus throughput and latency, with the raw-SQL ceiling
//! measured in the same run. Prints a table and writes
//! `target/bench/cmdbus-bench.json`. `--quick` runs a reduced version (≤ 60 s).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, missing_docs)]

mod baseline;
#[cfg(feature = "console")]
mod console;
mod history;
mod process;

use std::{
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use cmdbus::{HandlerError, command, handler};
use cmdbus_pg::PgBus;
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, PgPool, postgres::PgPoolOptions};

use crate::baseline::Baseline;

/// Handlers in flight per worker, and most commands per lease: the baseline
/// uses the same (two consumers leasing 64 each).
pub(crate) const WORKER_CONCURRENCY: usize = 128;
pub(crate) const LEASE_BATCH: usize = 64;

/// Handler runs, all scenarios.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// The handler records the send→start latency of commands due from this
/// instant (µs since the epoch); `u64::MAX`: of none.
static RECORD_FROM_US: AtomicU64 = AtomicU64::new(u64::MAX);
static START_LATENCIES_US: LazyLock<Mutex<Vec<u64>>> = LazyLock::new(Mutex::default);

#[command(domain = "bench")]
struct Noop {
    sent_at_us: u64,
}

#[handler]
async fn noop(cmd: Noop) -> Result<(), HandlerError> {
    if cmd.sent_at_us >= RECORD_FROM_US.load(Ordering::Relaxed) {
        let latency = now_us().saturating_sub(cmd.sent_at_us);
        START_LATENCIES_US.lock().unwrap().push(latency);
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

pub(crate) struct Config {
    quick: bool,
    url: String,
    pub(crate) warmup: Duration,
    pub(crate) window: Duration,
    senders: usize,
    backlog: usize,
    history: (u64, u64),
}

/// Counts how fast `counter` grows over `window`, after `warmup`.
pub(crate) async fn measure_rate(counter: &AtomicU64, warmup: Duration, window: Duration) -> f64 {
    tokio::time::sleep(warmup).await;
    let (start, at) = (counter.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(window).await;
    let done = counter.load(Ordering::Relaxed) - start;
    done as f64 / at.elapsed().as_secs_f64()
}

/// Connections in the pools of both sides (the baseline's and the bus's).
const POOL_SIZE: u32 = 24;

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .expect("PostgreSQL reachable")
}

async fn fresh_bus(url: &str) -> PgBus {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    // The pool PgBus::connect opens, sized like the baseline's.
    let pool = cmdbus_pg::pool_options()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .expect("PostgreSQL reachable");
    PgBus::builder(pool).schema(schema).build().await.expect("bus")
}

async fn drop_schema(bus: &PgBus) {
    let ddl = format!(r#"DROP SCHEMA "{}" CASCADE"#, bus.transport().schema());
    let _ = sqlx::raw_sql(AssertSqlSafe(ddl)).execute(bus.pool()).await;
}

/// Commands/s sent by `senders` tasks, `per_send` commands per call.
async fn send_rate(config: &Config, senders: usize, per_send: usize) -> f64 {
    let bus = fresh_bus(&config.url).await;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (bus, sent, stop) = (bus.clone(), Arc::clone(&sent), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if per_send == 1 {
                        bus.send(Noop { sent_at_us: now_us() }).await.expect("send");
                    } else {
                        let batch = (0..per_send).map(|_| Noop { sent_at_us: now_us() });
                        bus.send_batch(batch).await.expect("send batch");
                    }
                    sent.fetch_add(per_send as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let rate = measure_rate(&sent, config.warmup, config.window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    drop_schema(&bus).await;
    rate
}

/// Completed commands/s: `senders` tasks feeding one worker.
pub(crate) async fn e2e_rate(config: &Config, bus: &PgBus, senders: usize, per_send: usize) -> f64 {
    let worker = start_worker(bus).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (bus, stop) = (bus.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if per_send == 1 {
                        bus.send(Noop { sent_at_us: now_us() }).await.expect("send");
                    } else {
                        bus.send_batch((0..per_send).map(|_| Noop { sent_at_us: now_us() }))
                            .await
                            .expect("send");
                    }
                }
            })
        })
        .collect();
    let rate = measure_rate(&HANDLED, config.warmup, config.window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    worker.shutdown().await;
    rate
}

/// The worker every scenario runs: the no-op handler at the bench concurrency.
async fn start_worker(bus: &PgBus) -> cmdbus::Worker {
    bus.worker()
        .domain("bench")
        .concurrency(WORKER_CONCURRENCY)
        .batch_size(LEASE_BATCH)
        .start()
        .await
        .expect("worker")
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// When latencies count from (µs since the epoch) and when sending stops: a
/// latency run sends through the warm-up, as the throughput runs do, and
/// measures only what was sent after it. Every new pool connection first
/// parses and plans each statement and loads the tables' catalog entries
/// (10-15 ms per connection for cmdbus's schema in the first 100 ms of a
/// run), which would otherwise be most of a 10 s run's p99.
pub(crate) fn latency_window(config: &Config) -> (u64, Instant) {
    let from_us = now_us() + config.warmup.as_micros() as u64;
    (from_us, Instant::now() + config.warmup + config.window)
}

/// send→handler-start and send→completed latency at a fixed 500 commands/s.
async fn latency(config: &Config) -> (f64, f64, f64, f64) {
    latency_of(config, Duration::ZERO).await
}

/// Due→start latency (p50, p99 in ms) of commands sent with a 200 ms delay
/// at 100/s: how late a scheduled command starts after its due time.
async fn delayed_latency(config: &Config) -> (f64, f64) {
    let (p50, p99, _, _) = latency_of(config, Duration::from_millis(200)).await;
    (p50, p99)
}

/// Start and completion latency of commands sent at a fixed rate (500/s, or
/// 100/s when delayed), measured from when each is due.
async fn latency_of(config: &Config, delay: Duration) -> (f64, f64, f64, f64) {
    let bus = fresh_bus(&config.url).await;
    let worker = start_worker(&bus).await;
    START_LATENCIES_US.lock().unwrap().clear();
    let every = if delay.is_zero() { Duration::from_millis(2) } else { Duration::from_millis(10) };
    let mut ticker = tokio::time::interval(every);
    let (from_us, until) = latency_window(config);
    // The handler sees when each command is due.
    RECORD_FROM_US.store(from_us + delay.as_micros() as u64, Ordering::Relaxed);
    let mut sends = Vec::new();
    while Instant::now() < until {
        ticker.tick().await;
        let bus = bus.clone();
        sends.push(tokio::spawn(async move {
            // The handler measures from `sent_at_us`: here, when it is due.
            let due = Noop { sent_at_us: now_us() + delay.as_micros() as u64 };
            bus.send_with(due, cmdbus::SendOptions::new().delay(delay)).await
        }));
    }
    for send in sends {
        send.await.expect("join").expect("send");
    }
    tokio::time::sleep(Duration::from_secs(1) + delay).await;
    RECORD_FROM_US.store(u64::MAX, Ordering::Relaxed);
    worker.shutdown().await;
    let mut start: Vec<f64> =
        START_LATENCIES_US.lock().unwrap().iter().map(|us| *us as f64 / 1000.0).collect();
    start.sort_by(f64::total_cmp);
    let completes_sql = format!(
        r#"SELECT extract(epoch FROM finished_at - created_at)::float8 * 1000 FROM "{}".commands
           WHERE status = 'COMPLETED' AND created_at >= to_timestamp($1 / 1e6) ORDER BY 1"#,
        bus.transport().schema()
    );
    let complete: Vec<f64> = sqlx::query_scalar(AssertSqlSafe(completes_sql))
        .bind(from_us as f64)
        .fetch_all(bus.pool())
        .await
        .expect("latencies");
    drop_schema(&bus).await;
    (
        percentile(&start, 50.0),
        percentile(&start, 99.0),
        percentile(&complete, 50.0),
        percentile(&complete, 99.0),
    )
}

/// A fresh schema holding `config.backlog` pending commands.
async fn backlog(config: &Config) -> PgBus {
    let bus = fresh_bus(&config.url).await;
    let mut left = config.backlog;
    while left > 0 {
        let n = left.min(1000);
        bus.send_batch((0..n).map(|_| Noop { sent_at_us: 0 })).await.expect("preload");
        left -= n;
    }
    bus
}

/// Peak RSS (MiB) of a separate worker process draining a backlog.
async fn drain_rss(config: &Config) -> f64 {
    let bus = backlog(config).await;
    let output = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["drain", &config.url, bus.transport().schema(), &config.backlog.to_string()])
        .output()
        .await
        .expect("drain process");
    let text = String::from_utf8_lossy(&output.stdout);
    drop_schema(&bus).await;
    text.lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .and_then(|kb| kb.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The child side of [`drain_rss`]: drains `count` commands, prints VmHWM.
async fn drain_child(url: &str, schema: &str, count: u64) {
    let pool = PgPoolOptions::new().max_connections(8).connect(url).await.expect("connect");
    let bus = PgBus::builder(pool).schema(schema).skip_migrations().build().await.expect("bus");
    let worker = start_worker(&bus).await;
    while HANDLED.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap_or("0 kB");
    println!("peak_rss_kb={}", peak.trim().trim_end_matches("kB").trim());
}

fn git_rev() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("drain") {
        drain_child(&args[2], &args[3], args[4].parse().expect("count")).await;
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let config = Config {
        quick,
        url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        warmup: Duration::from_secs(if quick { 1 } else { 2 }),
        window: Duration::from_secs(if quick { 2 } else { 8 }),
        senders: 8,
        backlog: if quick { 10_000 } else { 100_000 },
        history: if quick { (10_000, 100_000) } else { (10_000, 1_000_000) },
    };
    let started = Instant::now();
    if let Some(only) = only {
        return experiment(&config, &only).await;
    }
    let admin = pool(&config.url).await;
    let version: String =
        sqlx::query_scalar("SHOW server_version").fetch_one(&admin).await.expect("version");
    let mut results = Map::new();
    let mut put = |key: &str, value: f64| {
        println!("  {key:<32} {value:>12.1}");
        results.insert(key.to_owned(), json!((value * 100.0).round() / 100.0));
    };
    println!(
        "cmdbus bench{} — PostgreSQL {version}, {} cores",
        if quick { " (quick)" } else { "" },
        cores()
    );

    let base = Arc::new(Baseline::create(admin.clone()).await);
    let baseline_single = base.e2e(&config, config.senders, 1).await;
    base.clone().drop_schema_only().await;
    let base = Arc::new(Baseline::create(admin.clone()).await);
    let baseline_batch = base.e2e(&config, config.senders, 100).await;
    base.clone().drop_schema_only().await;
    put("baseline_e2e_single_cps", baseline_single);
    put("baseline_e2e_batch_cps", baseline_batch);

    put("send_single_cps_c1", send_rate(&config, 1, 1).await);
    put("send_single_cps_c8", send_rate(&config, config.senders, 1).await);
    put("send_batch_cps", send_rate(&config, config.senders, 100).await);

    let bus = fresh_bus(&config.url).await;
    let e2e_single = e2e_rate(&config, &bus, config.senders, 1).await;
    drop_schema(&bus).await;
    let bus = fresh_bus(&config.url).await;
    let e2e_batch = e2e_rate(&config, &bus, config.senders, 100).await;
    drop_schema(&bus).await;
    put("e2e_single_cps", e2e_single);
    put("ratio_e2e_single", e2e_single / baseline_single);
    put("e2e_batch_cps", e2e_batch);
    put("ratio_e2e_batch", e2e_batch / baseline_batch);

    let base = Arc::new(Baseline::create(admin.clone()).await);
    let baseline_drain = base.drain(&config).await;
    base.clone().drop_schema_only().await;
    let drain_default = drain_default_rate(&config).await;
    put("baseline_drain_cps", baseline_drain);
    put("drain_default_cps", drain_default);
    put("ratio_drain_default", drain_default / baseline_drain);

    let base = Arc::new(Baseline::create(admin.clone()).await);
    let (base_p50, base_p99) = base.latency(&config, &config.url).await;
    base.clone().drop_schema_only().await;
    let (start_p50, start_p99, complete_p50, complete_p99) = latency(&config).await;
    put("baseline_latency_start_p50_ms", base_p50);
    put("baseline_latency_start_p99_ms", base_p99);
    put("latency_start_p50_ms", start_p50);
    put("latency_start_p99_ms", start_p99);
    put("ratio_latency_start_p50", start_p50 / base_p50);
    put("ratio_latency_start_p99", start_p99 / base_p99);
    put("latency_complete_p50_ms", complete_p50);
    put("latency_complete_p99_ms", complete_p99);

    let (due_p50, due_p99) = delayed_latency(&config).await;
    put("latency_delayed_start_after_due_p50_ms", due_p50);
    put("latency_delayed_start_after_due_p99_ms", due_p99);

    put("worker_peak_rss_mb", drain_rss(&config).await);

    let processes = process::rate(&config).await;
    put("process_3_steps_per_s", processes);
    put("process_steps_per_s", processes * 3.0);

    let (small, large) = config.history;
    put("e2e_single_cps_history_10k", history::e2e_with_history(&config, small).await);
    let large_key =
        if config.quick { "e2e_single_cps_history_100k" } else { "e2e_single_cps_history_1m" };
    put(large_key, history::e2e_with_history(&config, large).await);

    results.insert("machine".into(), json!({ "cores": cores(), "postgres": version }));
    results.insert("git_rev".into(), json!(git_rev()));
    results.insert("quick".into(), json!(quick));
    results.insert("seconds".into(), json!(started.elapsed().as_secs()));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let path = dir.join("cmdbus-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(results)).expect("json"))
        .expect("write");
    println!("wrote {} in {} s", path.display(), started.elapsed().as_secs());
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `--only <scenario>`: one measurement, for profiling the hot path.
async fn experiment(config: &Config, only: &str) {
    let senders: usize =
        std::env::var("SENDERS").ok().and_then(|s| s.parse().ok()).unwrap_or(config.senders);
    let per_send: usize = std::env::var("PER_SEND").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let rate = match only {
        "send" => send_rate(config, senders, per_send).await,
        "e2e" => {
            let bus = fresh_bus(&config.url).await;
            let rate = e2e_rate(config, &bus, senders, per_send).await;
            drop_schema(&bus).await;
            rate
        }
        "baseline" => {
            let base = Arc::new(Baseline::create(pool(&config.url).await).await);
            let rate = base.e2e(config, senders, per_send).await;
            base.drop_schema_only().await;
            rate
        }
        "drain" => drain_tuned_rate(config).await,
        "delayed" => {
            let (p50, p99) = delayed_latency(config).await;
            println!("due->start p50 {p50:.2} p99 {p99:.2}");
            p50
        }
        "drain-default" => drain_default_rate(config).await,
        // e2e with HISTORY finished commands in the tables (default 1M).
        "history" => {
            let finished = std::env::var("HISTORY").ok().and_then(|s| s.parse().ok());
            history::e2e_with_history(config, finished.unwrap_or(1_000_000)).await
        }
        "process" => process::rate(config).await,
        #[cfg(feature = "console")]
        "console" => {
            for (name, ms) in console::timings(&config.url, 1_000_000, 100_000).await {
                println!("{name:<32} {ms:>8.1}");
            }
            return;
        }
        "baseline-drain" => {
            let base = Arc::new(Baseline::create(pool(&config.url).await).await);
            let rate = base.drain(config).await;
            base.drop_schema_only().await;
            rate
        }
        "baseline-latency" => {
            let base = Arc::new(Baseline::create(pool(&config.url).await).await);
            let (p50, p99) = base.latency(config, &config.url).await;
            base.drop_schema_only().await;
            println!("start p50 {p50:.2} p99 {p99:.2}");
            p50
        }
        "latency" => {
            let (p50, p99, c50, c99) = latency(config).await;
            println!("start p50 {p50:.2} p99 {p99:.2} complete p50 {c50:.2} p99 {c99:.2}");
            p50
        }
        other => panic!("unknown scenario {other}"),
    };
    println!("{only} senders={senders} per_send={per_send}: {rate:.1}/s");
}

/// Completed/s draining a preloaded backlog with no concurrent senders,
/// the worker configured by `configure`.
async fn drain_rate(
    config: &Config,
    configure: impl FnOnce(
        cmdbus::WorkerBuilder<cmdbus_pg::PgTransport>,
    ) -> cmdbus::WorkerBuilder<cmdbus_pg::PgTransport>,
) -> f64 {
    let bus = backlog(config).await;
    let start = HANDLED.load(Ordering::Relaxed);
    let at = Instant::now();
    let worker = configure(bus.worker().domain("bench")).start().await.expect("worker");
    while HANDLED.load(Ordering::Relaxed) - start < config.backlog as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = config.backlog as f64 / at.elapsed().as_secs_f64();
    worker.shutdown().await;
    drop_schema(&bus).await;
    rate
}

/// The worker as it comes: only its domain is set.
async fn drain_default_rate(config: &Config) -> f64 {
    drain_rate(config, |worker| worker).await
}

/// `CONCURRENCY`, `BATCH` and `PREFETCH` from the environment, for tuning.
async fn drain_tuned_rate(config: &Config) -> f64 {
    let knob = |name: &str, default: usize| {
        std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
    };
    let (concurrency, batch, prefetch) = (
        knob("CONCURRENCY", WORKER_CONCURRENCY),
        knob("BATCH", LEASE_BATCH),
        knob("PREFETCH", 256),
    );
    drain_rate(config, |worker| {
        worker.concurrency(concurrency).batch_size(batch).prefetch(prefetch)
    })
    .await
}
