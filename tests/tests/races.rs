//! Races, each with an invariant check, on PostgreSQL.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use cmdbus::TsqFilter;
use cmdbus::{
    AuditEvent, CommandStatus, Error, HandlerError, Operator, SendOptions, command, handler,
};
use cmdbus_pg::PgBus;
use cmdbus_tests::pg_bus;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

const DOMAIN: &str = "race-it";
const WAIT: Duration = Duration::from_secs(30);

static FIXED: AtomicBool = AtomicBool::new(false);

/// Permanent failure until FIXED, then success.
#[command(domain = "race-it")]
struct Flip {}

#[handler]
async fn flip(_cmd: Flip) -> Result<(), HandlerError> {
    if FIXED.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(HandlerError::permanent("broken", "not yet"))
    }
}

/// Sleeps a little, then succeeds.
#[command(domain = "race-it")]
struct Nap {
    ms: u64,
}

#[handler]
async fn nap(cmd: Nap) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(cmd.ms)).await;
    Ok(())
}

fn ops(name: &str) -> Operator {
    Operator::new(name).expect("operator")
}

/// event → count, per command.
async fn event_counts(bus: &PgBus) -> HashMap<Uuid, HashMap<String, i64>> {
    let sql = format!(
        r#"SELECT command_id, event, count(*) FROM "{}".audit_trail GROUP BY 1, 2"#,
        bus.transport().schema()
    );
    let rows: Vec<(Uuid, String, i64)> =
        sqlx::query_as(AssertSqlSafe(sql)).fetch_all(bus.pool()).await.expect("audit");
    let mut counts: HashMap<Uuid, HashMap<String, i64>> = HashMap::new();
    for (id, event, n) in rows {
        counts.entry(id).or_default().insert(event, n);
    }
    counts
}

async fn replies(bus: &PgBus) -> HashMap<Uuid, String> {
    let sql = format!(r#"SELECT command_id, status FROM "{}".replies"#, bus.transport().schema());
    sqlx::query_as::<_, (Uuid, String)>(AssertSqlSafe(sql))
        .fetch_all(bus.pool())
        .await
        .expect("replies")
        .into_iter()
        .collect()
}

async fn tsq_len(bus: &PgBus) -> usize {
    bus.troubleshooting().list(&TsqFilter::new(), 1000, None).await.expect("list").items.len()
}

async fn into_tsq(bus: &PgBus, n: usize) -> Vec<Uuid> {
    FIXED.store(false, Ordering::SeqCst);
    let ids: Vec<Uuid> = bus
        .send_batch((0..n).map(|_| Flip {}))
        .await
        .expect("send")
        .iter()
        .map(|o| o.command_id())
        .collect();
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tsq_len(bus).await < n {
        assert!(tokio::time::Instant::now() < deadline, "never reached the TSQ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_duplicate_sends_create_one_command() {
    let bus = pg_bus().await;
    let id = Uuid::now_v7();
    let sends: Vec<_> = (0..1000)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.send_with(Nap { ms: i }, SendOptions::new().command_id(id)).await
            })
        })
        .collect();
    let mut accepted = 0;
    for send in sends {
        accepted += usize::from(!send.await.expect("join").expect("send").is_duplicate());
    }
    assert_eq!(accepted, 1);
    let counts = event_counts(&bus).await;
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[&id]["SENT"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_retries_racing_a_running_worker_rerun_each_command_once() {
    let bus = pg_bus().await;
    let ids = into_tsq(&bus, 40).await;
    FIXED.store(true, Ordering::SeqCst);
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .expect("worker");
    // Single retries and a bulk retry, all at once, while the worker leases.
    let mut tasks = Vec::new();
    for id in ids.iter().copied() {
        let tsq = bus.troubleshooting();
        tasks.push(tokio::spawn(async move { tsq.retry(id, &ops("ada")).await.map(|()| 1u64) }));
    }
    for _ in 0..3 {
        let tsq = bus.troubleshooting();
        tasks.push(tokio::spawn(async move {
            tsq.retry_all(&TsqFilter::new(), &ops("bob"), false).await.map(|o| o.acted)
        }));
    }
    let mut acted = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(n) => acted += n,
            Err(Error::NotInTroubleshootingQueue { .. }) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(acted, 40, "each item retried exactly once");
    let deadline = tokio::time::Instant::now() + WAIT;
    while replies(&bus).await.len() < 40 {
        assert!(tokio::time::Instant::now() < deadline, "not all re-runs completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    let counts = event_counts(&bus).await;
    for id in &ids {
        let c = &counts[id];
        assert_eq!(
            (c.get("OPERATOR_RETRY"), c.get("COMPLETED"), c.get("RECEIVED")),
            (Some(&1), Some(&1), Some(&2)),
            "{id}: {c:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_on_one_item_one_wins() {
    let bus = pg_bus().await;
    let ids = into_tsq(&bus, 20).await;
    for id in &ids {
        let (tsq_a, tsq_b, id) = (bus.troubleshooting(), bus.troubleshooting(), *id);
        let cancel = tokio::spawn(async move { tsq_a.cancel(id, &ops("ada"), "dup").await });
        let complete = tokio::spawn(async move {
            tsq_b.complete_json(id, &ops("bob"), &serde_json::Value::Null).await
        });
        let results = [cancel.await.expect("join"), complete.await.expect("join")];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(Error::NotInTroubleshootingQueue { .. }))));
    }
    let counts = event_counts(&bus).await;
    let replies = replies(&bus).await;
    for id in &ids {
        let c = &counts[id];
        let cancels = c.get("OPERATOR_CANCEL").copied().unwrap_or(0);
        let completes = c.get("OPERATOR_COMPLETE").copied().unwrap_or(0);
        assert_eq!(cancels + completes, 1, "{id}: {c:?}");
        let status = bus.find(*id).await.expect("find")[0].status;
        let expected = if cancels == 1 {
            (CommandStatus::Canceled, "CANCELED")
        } else {
            (CommandStatus::Completed, "SUCCESS")
        };
        assert_eq!((status, replies[id].as_str()), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_racing_completion_loses_nothing_and_doubles_nothing() {
    let bus = pg_bus().await;
    for round in 0..5u64 {
        let ids: Vec<Uuid> = bus
            .send_batch((0..60).map(|i| Nap { ms: (i * 7 + round * 3) % 25 }))
            .await
            .expect("send")
            .iter()
            .map(|o| o.command_id())
            .collect();
        let worker = bus
            .worker()
            .domain(DOMAIN)
            .concurrency(16)
            .shutdown_timeout(Duration::from_millis(round * 4))
            .start()
            .await
            .expect("worker");
        tokio::time::sleep(Duration::from_millis(10 + round * 5)).await;
        let report = worker.shutdown().await;
        let replies = replies(&bus).await;
        let mut released = 0;
        for id in &ids {
            let record = bus.command::<Nap>(*id).await.expect("record");
            match record.status {
                CommandStatus::Completed => {
                    assert!(replies.contains_key(id), "completed without reply");
                }
                CommandStatus::Pending => {
                    assert!(!replies.contains_key(id), "pending with a reply");
                    released += usize::from(
                        record.attempts == 0
                            && bus
                                .audit_trail_in(DOMAIN, *id)
                                .await
                                .expect("audit")
                                .iter()
                                .any(|e| e.event == AuditEvent::Released),
                    );
                }
                other => panic!("{id} left {other} after shutdown"),
            }
        }
        assert_eq!(released, report.released, "round {round}: {report:?}");
        // Finish them for the next round.
        let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
        let deadline = tokio::time::Instant::now() + WAIT;
        for id in &ids {
            while bus.command::<Nap>(*id).await.expect("record").status != CommandStatus::Completed
            {
                assert!(tokio::time::Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        worker.shutdown().await;
    }
    let counts = event_counts(&bus).await;
    assert!(
        counts.values().all(|c| c.get("COMPLETED") == Some(&1)),
        "every command completed exactly once"
    );
}
