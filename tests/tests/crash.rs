//! A worker process killed with SIGKILL mid-handler on every attempt: the
//! command must end in the troubleshooting queue after max_attempts, with
//! every crashed attempt counted, instead of looping forever.

use std::time::Duration;

use cmdbus::backend::TsqReason;
use cmdbus::{AuditEvent, CommandStatus};
use cmdbus_pg::PgBus;
use cmdbus_tests::{
    crash::{Hang, Slow},
    fresh_schema, inconsistencies, pool, settled,
};

#[path = "support/worker_process.rs"]
mod worker_process;
use worker_process::spawn_worker;

async fn wait_until(
    bus: &PgBus,
    id: uuid::Uuid,
    what: &str,
    done: impl Fn(&cmdbus::CommandRecord) -> bool,
) -> cmdbus::CommandRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let record = bus.command::<Hang>(id).await.expect("exists");
        if done(&record) {
            return record;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {record:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_kills_its_worker_every_time_ends_in_the_tsq() {
    let schema = fresh_schema();
    let bus = PgBus::builder(pool().await).schema(schema.clone()).build().await.expect("bus");
    let id = bus.send(Hang {}).await.expect("send").command_id();

    for attempt in 1..=3 {
        let mut child = spawn_worker(&schema);
        wait_until(&bus, id, "a lease", |r| {
            r.status == CommandStatus::InProgress && r.attempts == attempt
        })
        .await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    // A fresh worker's rescuer finds the third expired lease: no fourth attempt.
    let mut child = spawn_worker(&schema);
    let record =
        wait_until(&bus, id, "the TSQ", |r| r.status == CommandStatus::InTroubleshootingQueue)
            .await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    assert_eq!(record.attempts, 3);
    assert_eq!(record.last_error.map(|e| e.code), Some("lease_expired".to_owned()));
    let trail = bus.audit_trail_in("crash", id).await.expect("audit");
    let events: Vec<AuditEvent> = trail.iter().map(|e| e.event).collect();
    assert_eq!(events.iter().filter(|e| **e == AuditEvent::Received).count(), 3);
    assert_eq!(events.iter().filter(|e| **e == AuditEvent::LeaseExpired).count(), 3);
    assert_eq!(&events[events.len() - 2..], [AuditEvent::RetryExhausted, AuditEvent::MovedToTsq]);
    let moved = trail.last().expect("moved");
    assert_eq!(moved.details["reason"], TsqReason::LeaseExpired.as_str());
}

/// Workers killed with SIGKILL mid-handler, again and again, while work
/// flows: nothing is lost, nothing completes twice, every crashed attempt is
/// counted. `CRASH_KILLS` kills (default 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_worker_crashes_lose_nothing() {
    let kills: u64 = std::env::var("CRASH_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let schema = fresh_schema();
    let bus = PgBus::builder(pool().await).schema(schema.clone()).build().await.expect("bus");
    let total = 400u64;
    bus.send_batch((0..total).map(|i| Slow { ms: 10 + (i * 13) % 40 })).await.expect("send");
    for kill in 0..kills {
        let mut child = spawn_worker(&schema);
        tokio::time::sleep(Duration::from_millis(120 + (kill * 37) % 150)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    let mut child = spawn_worker(&schema);
    let counts = settled(&bus, Duration::from_secs(60)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let expired: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        r#"SELECT count(*) FROM "{schema}".audit_trail WHERE event = 'LEASE_EXPIRED'"#
    )))
    .fetch_one(bus.pool())
    .await
    .expect("count");
    eprintln!("crash: {total} commands, {kills} kills, {expired} expired leases: {counts:?}");
    assert_eq!(counts.values().sum::<i64>(), total as i64, "lost commands");
    assert!(expired > 0, "the kills interrupted handlers");
    let bad = inconsistencies(&bus).await;
    assert!(bad.is_empty(), "inconsistent commands:\n{}", bad.join("\n"));
}
