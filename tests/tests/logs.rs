//! What cmdbus writes when the database fails under it: a terminated
//! connection, a restart, a refused connection. Every warning names the
//! cause, and a failed send returns an error whose report names it too.
//! The faults happen on a private cluster, never on the shared server.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cmdbus::{HandlerError, command, handler};
use cmdbus_pg::PgBus;
use cmdbus_tests::PrivateCluster;
use sqlx::postgres::PgPoolOptions;
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, prelude::*};

#[command(domain = "logs-it")]
struct Ping {}

#[handler]
async fn ping(_cmd: Ping) -> Result<(), HandlerError> {
    Ok(())
}

/// A command of a domain no worker serves.
#[command(domain = "logs-unserved")]
struct Nobody {}

/// Sleeps 1 s, then marks that it finished.
#[command(domain = "logs-it")]
struct Nap {}

static NAP_FINISHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[handler]
async fn nap(_cmd: Nap) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    NAP_FINISHED.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// Warnings as `message field=value …` lines, as a log formatter prints them.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            let mut line = String::new();
            event.record(&mut Line(&mut line));
            self.0.lock().expect("warnings").push(line);
        }
    }
}

impl Warnings {
    /// Waits until a warning holds one of `needles` (lowercase); returns it.
    async fn naming(&self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.0.lock().expect("warnings").iter().find_map(|line| {
                needles.iter().any(|n| line.to_lowercase().contains(n)).then(|| line.clone())
            });
            if let Some(line) = found {
                return line;
            }
            let seen = self.0.lock().expect("warnings").clone();
            assert!(
                tokio::time::Instant::now() < deadline,
                "no warning names {needles:?}: {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn clear(&self) {
        self.0.lock().expect("warnings").clear();
    }
}

async fn processes_a_ping(bus: &PgBus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match bus.send(Ping {}).await {
            Ok(sent) => {
                bus.wait_reply::<Ping>(sent.command_id(), Duration::from_secs(20))
                    .await
                    .expect("processed");
                return;
            }
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {}",
                    error.report()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Locks the commands table and waits until a worker's lease query waits on
/// the lock: a library statement is then in flight when the fault hits.
async fn lease_query_waiting(admin: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE cmdbus.commands IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        )
        .fetch_one(admin)
        .await
        .expect("waiting");
        if waiting > 0 {
            return lock;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker never waited on the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_faults_are_logged_with_their_cause() {
    let warnings = Warnings::default();
    tracing_subscriber::registry().with(warnings.clone()).init();
    let cluster = PrivateCluster::start();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&cluster.url())
        .await
        .expect("connect");
    let bus = PgBus::builder(pool.clone()).build().await.expect("bus");
    let worker = bus
        .worker()
        .domain("logs-it")
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    processes_a_ping(&bus).await;

    // A terminated connection under a running statement: the worker's lease
    // query waits on the test's lock when its backend is terminated. (An idle
    // pooled connection that dies is replaced silently: nothing to log.)
    let admin =
        PgPoolOptions::new().max_connections(2).connect(&cluster.url()).await.expect("admin");
    let lock = lease_query_waiting(&admin).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
    )
    .execute(&admin)
    .await
    .expect("terminate");
    lock.rollback().await.expect("unlock");
    let line = warnings.naming(&["terminating connection due to administrator command"]).await;
    eprintln!("terminated connection: {line}");
    processes_a_ping(&bus).await;

    // A restart while a lease query runs.
    warnings.clear();
    let lock = lease_query_waiting(&admin).await;
    cluster.restart();
    drop(lock);
    let line = warnings.naming(&["terminating connection due to administrator command"]).await;
    eprintln!("restart: {line}");
    admin.close().await;
    processes_a_ping(&bus).await;

    // A refused connection: the server is gone; sends fail and say why.
    warnings.clear();
    cluster.stop();
    let line = warnings.naming(&["connection refused"]).await;
    eprintln!("refused: {line}");
    let error = bus.send(Ping {}).await.expect_err("no server");
    let report = error.report().to_string();
    eprintln!("send error: {report}");
    assert!(report.to_lowercase().contains("connection refused"), "{report}");
    assert!(report.starts_with(&error.to_string()), "the short form stays first: {report}");

    cluster.resume();
    processes_a_ping(&bus).await;
    worker.shutdown().await;
}

/// No log macro in the library prints an error by its `Display` alone.
#[test]
fn the_library_logs_errors_with_their_causes() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut offenders = Vec::new();
    for dir in ["cmdbus/src", "cmdbus-pg/src", "cmdbus-cli/src"] {
        let mut stack = vec![std::path::Path::new(root).join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(
                    std::fs::read_dir(&path).expect("dir").map(|e| e.expect("entry").path()),
                );
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for (n, line) in text.lines().enumerate() {
                    let bare = line.replace("%error.report()", "");
                    if bare.contains("%error") || bare.contains("?error") {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "log the chain (error = %error.report()):\n{}",
        offenders.join("\n")
    );
}

/// A heartbeat that finds its lease gone (here taken over by SQL, as another
/// worker's rescue would) stops the handler and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_that_finds_its_lease_gone_stops_the_handler() {
    let warnings = Warnings::default();
    tracing_subscriber::registry().with(warnings.clone()).init();
    let bus = cmdbus_tests::pg_bus().await;
    let worker = bus
        .worker()
        .domain("logs-it")
        .visibility_timeout(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    let id = bus.send(Nap {}).await.expect("send").command_id();
    let steal = format!(
        r#"UPDATE "{}".commands SET lease_id = gen_random_uuid(), lease_expires_at = now() + interval '1 hour'
           WHERE command_id = $1 AND status = 'IN_PROGRESS'"#,
        bus.transport().schema()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sqlx::query(sqlx::AssertSqlSafe(steal.clone()))
        .bind(id)
        .execute(bus.pool())
        .await
        .expect("steal")
        .rows_affected()
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "never leased");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let line = warnings.naming(&["lease lost"]).await;
    assert!(line.contains(&id.to_string()), "{line}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!NAP_FINISHED.load(std::sync::atomic::Ordering::SeqCst), "the handler was stopped");
    let report = worker.shutdown().await;
    assert_eq!(report.released, 0, "a lost lease is not released as if it were held");
}

/// The first send of a type to a domain no worker has ever served warns
/// that its commands wait for one; a served domain does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_domain_nothing_serves_warns() {
    let warnings = Warnings::default();
    tracing_subscriber::registry().with(warnings.clone()).init();
    let schema = cmdbus_tests::fresh_schema();
    let bus =
        PgBus::builder(cmdbus_tests::pool().await).schema(&schema).build().await.expect("bus");
    bus.send(Nobody {}).await.expect("sent all the same");
    let line = warnings.naming(&["no worker has ever served domain"]).await;
    assert!(line.contains("\"logs-unserved\"") && line.contains("Nobody"), "{line}");

    warnings.clear();
    let worker = bus.worker().domain("logs-it").start().await.expect("worker");
    processes_a_ping(&bus).await;
    let registered = bus.register::<Ping>().await.expect("register");
    assert!(registered.domain_served_at.is_some());
    let seen = warnings.0.lock().expect("warnings").clone();
    assert!(!seen.iter().any(|l| l.contains("ever served")), "{seen:#?}");
    worker.shutdown().await;
}
