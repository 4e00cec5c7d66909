//! The database drops every connection, three times, while producers and
//! two workers run. Workers reconnect by themselves within 5 s; producers
//! re-send what failed with the same command id (idempotent); afterwards
//! every command is completed exactly once, with exactly one reply.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cmdbus::{HandlerError, SendOptions, command, handler};
use cmdbus_pg::PgBus;
use cmdbus_tests::{TestDatabase, inconsistencies, status_counts};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

#[command(domain = "restart-it")]
struct Tick {
    n: u64,
}

#[handler]
async fn tick(_cmd: Tick) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_is_accounted_for_across_connection_loss() {
    let database = TestDatabase::create().await;
    let bus = PgBus::connect(&database.url).await.expect("connect");
    let start = |bus: PgBus| async move {
        bus.worker()
            .domain("restart-it")
            .poll_interval(Duration::from_millis(100))
            .start()
            .await
            .expect("worker")
    };
    let workers = [start(bus.clone()).await, start(bus.clone()).await];

    // Producers: every id they mean to send is remembered; failed sends are retried with the same id.
    let intended = Arc::new(Mutex::new(BTreeSet::new()));
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let (bus, intended) = (bus.clone(), Arc::clone(&intended));
            tokio::spawn(async move {
                let mut retries = 0u32;
                for n in 0..300u64 {
                    let id = Uuid::now_v7();
                    intended.lock().expect("ids").insert(id);
                    while let Err(error) = bus
                        .send_with(Tick { n: p * 1000 + n }, SendOptions::new().command_id(id))
                        .await
                    {
                        retries += 1;
                        assert!(retries < 2000, "sends never recovered: {error}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                retries
            })
        })
        .collect();

    let mut reconnects = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&database.name)
        .fetch_one(database.admin())
        .await
        .expect("terminate");
        assert!(killed > 0);
        // A command sent right after the cut is processed within 5 s: the
        // workers (and their LISTEN connections) came back by themselves.
        let cut = Instant::now();
        let sentinel = loop {
            match bus.send(Tick { n: u64::MAX }).await {
                Ok(sent) => break sent.command_id(),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        intended.lock().expect("ids").insert(sentinel);
        bus.wait_reply::<Tick>(sentinel, Duration::from_secs(5))
            .await
            .expect("processed within 5 s of the cut");
        reconnects.push(cut.elapsed());
        // The worker that did not run the sentinel may be between a failed
        // lease and its next one (backing off): it reports connected once
        // that lease succeeds, which must be soon.
        let back = Instant::now() + Duration::from_secs(5);
        while !workers.iter().all(|w| w.health().connected) {
            assert!(Instant::now() < back, "a worker did not reconnect within 5 s of the cut");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut retried = 0;
    for producer in producers {
        retried += producer.await.expect("producer");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = status_counts(&bus).await;
        if counts.get("COMPLETED").copied().unwrap_or(0) == 1203 {
            break;
        }
        assert!(Instant::now() < deadline, "not all completed: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for worker in workers {
        worker.shutdown().await;
    }
    let intended = intended.lock().expect("ids").clone();
    let stored: BTreeSet<Uuid> = sqlx::query_scalar(AssertSqlSafe(format!(
        r#"SELECT command_id FROM "{}".commands"#,
        bus.transport().schema()
    )))
    .fetch_all(bus.pool())
    .await
    .expect("ids")
    .into_iter()
    .collect();
    eprintln!("restart: 1203 commands, {retried} send retries, reconnects after {reconnects:?}");
    assert_eq!(stored, intended, "every intended command stored once, none extra");
    let bad = inconsistencies(&bus).await;
    assert!(bad.is_empty(), "inconsistent commands:\n{}", bad.join("\n"));
    drop(bus);
    database.drop_now().await;
}
