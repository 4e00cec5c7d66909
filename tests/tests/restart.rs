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

/// The bus's pool checks a connection with a round trip only when it was
/// idle longer than `CHECK_IDLE_AFTER`: a connection the server dropped
/// while idle is replaced unseen, one used a moment before fails its next
/// statement once (as a statement running at the cut would), and the pool
/// opens a new connection for the statement after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_connection_idle_past_the_window_is_checked_before_use() {
    let database = TestDatabase::create().await;
    let pool =
        cmdbus_pg::pool_options().max_connections(1).connect(&database.url).await.expect("connect");
    let bus = PgBus::builder(pool).build().await.expect("bus");
    let cut = || async {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&database.name)
            .execute(database.admin())
            .await
            .expect("terminate");
        // Let the backend act on the signal before the next statement.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Used a moment ago: not checked, so the statement meets the cut.
    let recent = loop {
        bus.send(Tick { n: 1 }).await.expect("send");
        let used = Instant::now();
        // sqlx checks a connection as it returns to the pool (in the
        // background): cut after that, so only a check on acquire could
        // find the connection gone.
        tokio::time::sleep(Duration::from_millis(100)).await;
        cut().await;
        // A stalled machine may have let the window pass: try again.
        if used.elapsed() < cmdbus_pg::CHECK_IDLE_AFTER / 2 {
            break bus.send(Tick { n: 2 }).await;
        }
    };
    assert!(recent.is_err(), "a recently used connection was checked first: {recent:?}");
    bus.send(Tick { n: 3 }).await.expect("the next statement gets a new connection");

    // Idle past the window: checked, found gone, replaced; the send succeeds.
    tokio::time::sleep(cmdbus_pg::CHECK_IDLE_AFTER + Duration::from_millis(200)).await;
    cut().await;
    bus.send(Tick { n: 4 }).await.expect("an idle connection is checked and replaced");

    drop(bus);
    database.drop_now().await;
}
