//! Flow control across a fleet: a limit holds with four worker processes
//! leasing at once.

use std::time::Duration;

use cmdbus::{FlowTarget, Operator};
use cmdbus_pg::PgBus;
use cmdbus_tests::{crash::Slow, fresh_schema, pool};
use sqlx::AssertSqlSafe;

#[path = "support/worker_process.rs"]
mod worker_process;
use worker_process::spawn_worker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_holds_across_four_worker_processes() {
    let schema = fresh_schema();
    let bus = PgBus::builder(pool().await).schema(&schema).build().await.expect("bus");
    let operator = Operator::new("ops@example.com").expect("operator");
    bus.limit(&FlowTarget::of::<Slow>(), 3, &operator).await.expect("limit");
    // Each process could run 16 at once; together 64.
    let mut workers: Vec<_> = (0..4).map(|_| spawn_worker(&schema)).collect();
    let total = 60;
    bus.send_batch((0..total).map(|_| Slow { ms: 40 })).await.expect("send");

    let in_flight = format!(
        r#"SELECT count(*) FILTER (WHERE status = 'IN_PROGRESS'),
                  count(*) FILTER (WHERE status = 'COMPLETED')
           FROM "{schema}".commands"#
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut most, mut samples) = (0, 0);
    loop {
        let (leased, completed): (i64, i64) = sqlx::query_as(AssertSqlSafe(in_flight.clone()))
            .fetch_one(bus.pool())
            .await
            .expect("sample");
        samples += 1;
        most = most.max(leased);
        assert!(leased <= 3, "{leased} leased at once under a fleet-wide limit of 3");
        if completed == total {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {completed} of {total} completed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for worker in &mut workers {
        worker.kill().expect("stop the worker");
        worker.wait().expect("reap");
    }
    eprintln!("flow: {samples} samples, at most {most} in flight");
    assert_eq!(most, 3, "the limit is used, not just respected");
    let limits = format!(r#"SELECT in_flight FROM "{schema}".limits"#);
    let left: i32 =
        sqlx::query_scalar(AssertSqlSafe(limits)).fetch_one(bus.pool()).await.expect("count");
    assert_eq!(left, 0, "every lease that ended gave its room back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_four_worker_processes() {
    let schema = fresh_schema();
    let bus = PgBus::builder(pool().await).schema(&schema).build().await.expect("bus");
    let operator = Operator::new("ops@example.com").expect("operator");
    bus.rate_limit(&FlowTarget::of::<Slow>(), 20.0, &operator).await.expect("rate limit");
    let mut workers: Vec<_> = (0..4).map(|_| spawn_worker(&schema)).collect();
    // The burst (one second's worth), then a minute at the rate.
    let total: i64 = 20 + 20 * 60;
    bus.send_batch((0..total).map(|_| Slow { ms: 1 })).await.expect("send");
    let leased_at = format!(
        r#"SELECT extract(epoch FROM received_at)::float8 FROM "{schema}".commands
           WHERE status = 'COMPLETED' ORDER BY received_at"#
    );
    let completed =
        format!(r#"SELECT count(*) FROM "{schema}".commands WHERE status = 'COMPLETED'"#);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = sqlx::query_scalar(AssertSqlSafe(completed.clone()))
            .fetch_one(bus.pool())
            .await
            .expect("count");
        if done == total {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {done} of {total} completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for worker in &mut workers {
        worker.kill().expect("stop the worker");
        worker.wait().expect("reap");
    }
    let times: Vec<f64> =
        sqlx::query_scalar(AssertSqlSafe(leased_at)).fetch_all(bus.pool()).await.expect("times");
    // After the burst (one second's worth), the rest at the rate.
    let after_burst = &times[20..];
    let span = after_burst[after_burst.len() - 1] - after_burst[0];
    let rate = (after_burst.len() - 1) as f64 / span;
    eprintln!("rate: {} leases after the burst over {span:.2} s = {rate:.1}/s", after_burst.len());
    assert!((18.0..=22.0).contains(&rate), "{rate:.1}/s under a limit of 20/s (within 10%)");
    // And steady: every 10 s of that minute holds 200 leases, within 10%.
    let first = after_burst[0];
    for window in 0..5 {
        let (from, to) = (first + f64::from(window) * 10.0, first + f64::from(window + 1) * 10.0);
        let leases = after_burst.iter().filter(|t| (from..to).contains(*t)).count();
        assert!((180..=220).contains(&leases), "{leases} leases in seconds {from:.0}..{to:.0}");
    }
}
