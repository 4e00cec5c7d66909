//! Soak: many commands, handlers failing transiently 10% and permanently 1%
//! of the time (and refusing 1%), concurrency 32, two workers. At the end
//! every command is in exactly one terminal place and its audit trail and
//! replies agree (checked by a query over every command, not a sample).
//!
//! `SOAK_COMMANDS` sets the size: 5,000 in `make test`, 100,000 in
//! `make test-reliability`.

use std::time::{Duration, Instant};

use cmdbus::{HandlerContext, HandlerError, command, handler};
use cmdbus_tests::{inconsistencies, pg_bus, settled};

#[command(domain = "soak", max_attempts = 3, backoff = ["10ms", "20ms"])]
struct Work {
    seed: u64,
}

/// A deterministic die roll per command and attempt.
fn roll(seed: u64, attempt: u32) -> u64 {
    let mut x = seed ^ (u64::from(attempt) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % 100
}

#[handler]
async fn work(cmd: Work, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    match roll(cmd.seed, ctx.attempt()) {
        0..=9 => Err(HandlerError::transient("flaky", "try again")),
        10 => Err(HandlerError::permanent("broken", "never")),
        11 => Err(HandlerError::business_rule("refused", "no")),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_ends_consistent() {
    let total: u64 =
        std::env::var("SOAK_COMMANDS").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let bus = pg_bus().await;
    let started = Instant::now();
    let workers = [
        bus.worker().domain("soak").concurrency(32).start().await.expect("worker"),
        bus.worker().domain("soak").concurrency(32).start().await.expect("worker"),
    ];
    let mut sent = 0;
    while sent < total {
        let n = (total - sent).min(500);
        bus.send_batch((sent..sent + n).map(|seed| Work { seed })).await.expect("send");
        sent += n;
    }
    let counts = settled(&bus, Duration::from_secs(280)).await;
    for worker in workers {
        worker.shutdown().await;
    }
    let bad = inconsistencies(&bus).await;
    let retried: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        r#"SELECT count(*) FROM "{}".audit_trail WHERE event = 'RETRY_SCHEDULED'"#,
        bus.transport().schema()
    )))
    .fetch_one(bus.pool())
    .await
    .expect("retries");
    eprintln!(
        "soak: {total} commands in {:.1}s, {retried} retries: {counts:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(bad.is_empty(), "inconsistent commands:\n{}", bad.join("\n"));
    assert_eq!(counts.values().sum::<i64>(), total as i64, "lost commands");
    // ~1% permanent + ~0.1% exhausted go to the TSQ, ~1% are refused.
    assert!(counts.get("IN_TROUBLESHOOTING_QUEUE").copied().unwrap_or(0) > 0);
    assert!(counts.get("FAILED").copied().unwrap_or(0) > 0);

    // The checker itself: a lost reply and a duplicated completion are caught.
    let schema = bus.transport().schema().to_owned();
    let break_it = format!(
        r#"DELETE FROM "{schema}".replies WHERE command_id = (
               SELECT command_id FROM "{schema}".commands WHERE status = 'COMPLETED' ORDER BY command_id LIMIT 1);
           INSERT INTO "{schema}".audit (domain, command_id, event, attempt)
           SELECT domain, command_id, 'COMPLETED', attempts FROM "{schema}".commands
           WHERE status = 'COMPLETED' ORDER BY command_id DESC LIMIT 1"#
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(break_it)).execute(bus.pool()).await.expect("corrupt");
    assert_eq!(inconsistencies(&bus).await.len(), 2, "the checker finds both faults");
}
