//! PostgreSQL-specific behaviour: concurrency, transactions, migrations,
//! connection loss. Each test works in a fresh schema (or database).

use std::{collections::HashSet, time::Duration};

use cmdbus::backend::BackendContext;
use cmdbus::{
    CommandStatus, HandlerContext, HandlerError, SendOptions, Transport, TypedReply, command,
    handler,
};
use cmdbus_pg::{PgBus, PgHandlerContext, PgTransport};
use cmdbus_tests::{fresh_schema, one_connection_bus, pg_bus, pool};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

const DOMAIN: &str = "pg-it";
const WAIT: Duration = Duration::from_secs(20);

/// Set when a handler whose lease was stolen learns it from `extend_lease`.
static LEASE_LOST_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sent by [`deposit`] with the deposit's id; nothing handles it here.
#[command(domain = "pg-it-receipts")]
struct Receipt {}

/// Writes a ledger row and sends a receipt in the handler's transaction,
/// then succeeds, refuses, or has its lease stolen before completion.
#[command(domain = "pg-it", reply = u32)]
struct Deposit {
    mode: Mode,
}

#[cmdbus::reply]
#[derive(Clone, Copy, Debug)]
enum Mode {
    Succeed,
    Refuse,
    LoseLease,
}

#[handler]
async fn deposit(cmd: Deposit, ctx: &mut HandlerContext) -> Result<u32, HandlerError> {
    let command_id = ctx.command_id();
    let transport = ctx.backend::<PgTransport>().expect("runs on Postgres").clone();
    let insert = format!("INSERT INTO \"{}\".ledger (command_id) VALUES ($1)", transport.schema());
    let tx = ctx.transaction().await?;
    sqlx::query(AssertSqlSafe(insert)).bind(command_id).execute(&mut *tx).await?;
    // The same transaction: the receipt is sent exactly when the row commits.
    ctx.send_with(Receipt {}, SendOptions::new().command_id(command_id)).await?;
    match cmd.mode {
        Mode::Succeed => Ok(ctx.attempt()),
        Mode::Refuse => Err(HandlerError::business_rule("refused", "after writing")),
        Mode::LoseLease => {
            // Another worker "takes" the command: our lease is no longer current.
            let steal = format!(
                "UPDATE \"{}\".commands SET lease_id = gen_random_uuid() WHERE command_id = $1",
                transport.schema()
            );
            sqlx::query(AssertSqlSafe(steal)).bind(command_id).execute(transport.pool()).await?;
            if let Err(cmdbus::Error::LeaseLost { .. }) =
                ctx.extend_lease(Duration::from_secs(5)).await
            {
                LEASE_LOST_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(ctx.attempt())
        }
    }
}

async fn with_ledger(bus: &PgBus) {
    let ddl = format!(
        "CREATE TABLE \"{}\".ledger (command_id uuid PRIMARY KEY)",
        bus.transport().schema()
    );
    sqlx::query(AssertSqlSafe(ddl)).execute(bus.pool()).await.expect("ledger table");
}

/// Whether the deposit's effects committed: its ledger row and its receipt,
/// which commit or roll back together.
async fn ledger_has(bus: &PgBus, command_id: Uuid) -> bool {
    let select = format!(
        "SELECT count(*) FROM \"{}\".ledger WHERE command_id = $1",
        bus.transport().schema()
    );
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(select))
        .bind(command_id)
        .fetch_one(bus.pool())
        .await
        .expect("count");
    let receipt =
        bus.find(command_id).await.expect("find").iter().any(|r| r.domain == "pg-it-receipts");
    assert_eq!(n > 0, receipt, "the ledger row and the receipt commit together");
    n == 1
}

async fn wait_status(bus: &PgBus, id: Uuid, status: CommandStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let record = bus.command::<Deposit>(id).await.expect("exists");
        if record.status == status {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck in {}", record.status);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start_worker(bus: &PgBus) -> cmdbus::Worker {
    bus.worker()
        .domain(DOMAIN)
        .concurrency(8)
        .visibility_timeout(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(200))
        .start()
        .await
        .expect("worker starts")
}

/// A lease commits without waiting for the WAL flush (a crash may lose it
/// harmlessly), but only its own transaction: an outcome recorded next on
/// the same connection waits for the flush as the server is configured to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_leaves_the_connections_commit_setting_as_it_was() {
    use cmdbus::backend::{CommandsLease, LeaseRef, NewCommand, Outcome, OutcomeKind};

    let bus = one_connection_bus().await;
    let setting = || async {
        let value: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(bus.pool())
            .await
            .expect("show");
        value
    };
    let configured = setting().await;
    let transport = bus.transport();
    let id = Uuid::now_v7();
    let payload = serde_json::value::to_raw_value(&1).expect("json");
    let command =
        NewCommand::new(DOMAIN.into(), "Probe".into(), id, id, "default".into(), 3, payload);
    transport.commands_send(vec![command]).await.expect("send");
    let visibility = Duration::from_secs(30);
    let params = CommandsLease::new(vec![DOMAIN.into()], 8, visibility, "probe".into());
    let leased = transport.commands_lease(params.clone()).await.expect("lease");
    assert_eq!(leased.len(), 1);
    assert_eq!(setting().await, configured, "after a lease");
    assert!(transport.commands_lease(params).await.expect("empty lease").is_empty());
    assert_eq!(setting().await, configured, "after an empty lease");
    let reply = serde_json::value::to_raw_value(&()).expect("json");
    let lease = LeaseRef::of(&leased[0]);
    let outcome = Outcome::new(lease, leased[0].attempt, OutcomeKind::Completed { reply });
    transport.commands_record(&[outcome]).await.expect("record");
    let status = transport.command_get(DOMAIN, id).await.expect("get").map(|r| r.status);
    assert_eq!(status, Some(CommandStatus::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_send_from_16_tasks_creates_one_command() {
    let bus = pg_bus().await;
    let id = Uuid::now_v7();
    let sends = (0..16).map(|_| {
        let bus = bus.clone();
        tokio::spawn(async move {
            bus.send_with(Deposit { mode: Mode::Succeed }, SendOptions::new().command_id(id)).await
        })
    });
    let mut accepted = 0;
    for send in sends {
        let outcome = send.await.expect("join").expect("send");
        assert_eq!(outcome.command_id(), id);
        accepted += usize::from(!outcome.is_duplicate());
    }
    assert_eq!(accepted, 1);
    let sent = bus.audit_trail_in(DOMAIN, id).await.expect("audit");
    assert_eq!(sent.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_in_follows_the_callers_transaction() {
    let bus = pg_bus().await;
    let mut tx = bus.pool().begin().await.expect("begin");
    let rolled_back = bus.send_in(&mut tx, Deposit { mode: Mode::Succeed }).await.expect("send");
    tx.rollback().await.expect("rollback");
    assert!(bus.command::<Deposit>(rolled_back.command_id()).await.is_err());
    assert!(bus.audit_trail_in(DOMAIN, rolled_back.command_id()).await.expect("audit").is_empty());

    let mut tx = bus.pool().begin().await.expect("begin");
    let committed = bus.send_in(&mut tx, Deposit { mode: Mode::Succeed }).await.expect("send");
    tx.commit().await.expect("commit");
    let record =
        bus.command::<Deposit>(committed.command_id()).await.expect("visible after commit");
    assert_eq!(record.status, CommandStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_write_commits_with_completion() {
    let bus = pg_bus().await;
    with_ledger(&bus).await;
    let worker = start_worker(&bus).await;
    let id = bus.send(Deposit { mode: Mode::Succeed }).await.expect("send").command_id();
    assert_eq!(bus.wait_reply::<Deposit>(id, WAIT).await.expect("reply"), TypedReply::Success(1));
    worker.shutdown().await;
    wait_status(&bus, id, CommandStatus::Completed).await;
    assert!(ledger_has(&bus, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_write_rolls_back_when_the_handler_fails() {
    let bus = pg_bus().await;
    with_ledger(&bus).await;
    let worker = start_worker(&bus).await;
    let id = bus.send(Deposit { mode: Mode::Refuse }).await.expect("send").command_id();
    let reply = bus.wait_reply::<Deposit>(id, WAIT).await.expect("reply");
    worker.shutdown().await;
    assert!(matches!(reply, TypedReply::Failed { ref code, .. } if code == "refused"), "{reply:?}");
    assert!(!ledger_has(&bus, id).await, "the refused handler's write must roll back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_write_rolls_back_when_completion_cannot_be_recorded() {
    let bus = pg_bus().await;
    with_ledger(&bus).await;
    let worker = start_worker(&bus).await;
    let id = bus.send(Deposit { mode: Mode::LoseLease }).await.expect("send").command_id();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bus.audit_trail::<Deposit>(id).await.expect("audit").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never received");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.shutdown().await;
    assert!(
        !ledger_has(&bus, id).await,
        "a completion that lost its lease must not commit the write"
    );
    let record = bus.command::<Deposit>(id).await.expect("exists");
    assert_eq!(record.status, CommandStatus::InProgress, "left for the rescuer, not completed");
    assert!(
        LEASE_LOST_SEEN.load(std::sync::atomic::Ordering::SeqCst),
        "extend_lease reported LeaseLost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_complete_2000_commands_exactly_once() {
    let bus = pg_bus().await;
    with_ledger(&bus).await;
    let outcomes = bus
        .send_batch((0..2000).map(|_| Deposit { mode: Mode::Succeed }))
        .await
        .expect("batch send");
    let ids: HashSet<Uuid> = outcomes.iter().map(cmdbus::SendOutcome::command_id).collect();
    assert_eq!(ids.len(), 2000);
    let (a, b) = (start_worker(&bus).await, start_worker(&bus).await);
    let schema = bus.transport().schema().to_owned();
    let done = format!("SELECT count(*) FROM \"{schema}\".commands WHERE status = 'COMPLETED'");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(done.clone()))
            .fetch_one(bus.pool())
            .await
            .expect("count");
        if n == 2000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {n} of 2000 completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
    let per_event = format!(
        "SELECT event, count(*) AS n, count(DISTINCT command_id) AS distinct_commands
         FROM \"{schema}\".audit_trail WHERE domain = 'pg-it' GROUP BY event ORDER BY event"
    );
    let rows = sqlx::query(AssertSqlSafe(per_event)).fetch_all(bus.pool()).await.expect("audit");
    for row in rows {
        let (event, n, distinct): (String, i64, i64) =
            (row.get("event"), row.get("n"), row.get("distinct_commands"));
        assert_eq!((n, distinct), (2000, 2000), "{event}: every command exactly once");
    }
    let ledger = format!("SELECT count(*) FROM \"{schema}\".ledger");
    let writes: i64 =
        sqlx::query_scalar(AssertSqlSafe(ledger)).fetch_one(bus.pool()).await.expect("ledger");
    let replies = format!("SELECT count(*) FROM \"{schema}\".replies WHERE status = 'SUCCESS'");
    let replies: i64 =
        sqlx::query_scalar(AssertSqlSafe(replies)).fetch_one(bus.pool()).await.expect("replies");
    let receipts = format!(
        "SELECT count(*) FROM \"{schema}\".commands WHERE domain = 'pg-it-receipts' AND command_id = ANY($1)"
    );
    let receipts: i64 = sqlx::query_scalar(AssertSqlSafe(receipts))
        .bind(ids.into_iter().collect::<Vec<Uuid>>())
        .fetch_one(bus.pool())
        .await
        .expect("receipts");
    assert_eq!((writes, replies, receipts), (2000, 2000, 2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_survives_terminated_connections() {
    // A database of its own, so terminating its backends touches no other test.
    let database = cmdbus_tests::TestDatabase::create().await;
    let bus = PgBus::connect(&database.url).await.expect("connect");
    with_ledger(&bus).await;
    let worker = start_worker(&bus).await;
    let first = bus.send(Deposit { mode: Mode::Refuse }).await.expect("send").command_id();
    assert!(bus.wait_reply::<Deposit>(first, WAIT).await.is_ok());

    let terminate =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1";
    let killed: i64 = sqlx::query_scalar(terminate)
        .bind(&database.name)
        .fetch_one(database.admin())
        .await
        .expect("terminate");
    assert!(killed >= 2, "the pool and the listener were connected ({killed})");

    // Sends may hit a dead pooled connection once; the bus reports it, loses nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        match bus.send(Deposit { mode: Mode::Refuse }).await {
            Ok(sent) => break sent.command_id(),
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "never reconnected: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let reply = bus.wait_reply::<Deposit>(second, WAIT).await;
    let record = bus.command::<Deposit>(second).await;
    assert!(reply.is_ok(), "worker processed after reconnecting: {reply:?} {record:?}");
    worker.shutdown().await;
    drop(bus);
    database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_once() {
    let pool = pool().await;
    let schema = fresh_schema();
    let builds = (0..8).map(|_| {
        let (pool, schema) = (pool.clone(), schema.clone());
        tokio::spawn(async move { PgBus::builder(pool).schema(schema).build().await })
    });
    for build in builds {
        build.await.expect("join").expect("migrates");
    }
    let applied: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".schema_migrations"
    )))
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(applied, i64::from(cmdbus_pg::SCHEMA_VERSION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_version_is_refused() {
    let bus = pg_bus().await;
    let schema = bus.transport().schema().to_owned();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\".schema_migrations (version, name) VALUES (999, 'future')"
    )))
    .execute(bus.pool())
    .await
    .expect("insert");
    let error =
        PgBus::builder(bus.pool().clone()).schema(&schema).build().await.expect_err("refused");
    assert!(
        matches!(
            error,
            cmdbus::Error::Schema(cmdbus::SchemaError::TooNew {
                found: 999,
                supported: cmdbus_pg::SCHEMA_VERSION,
                ..
            })
        ),
        "{error}"
    );
    let supported = format!("newer than this program supports ({})", cmdbus_pg::SCHEMA_VERSION);
    assert!(error.to_string().contains(&supported), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_schema_names_are_refused_before_any_sql() {
    for bad in ["", "Bad", "x\"; drop table y; --", "pg_catalog"] {
        let error = PgBus::builder(pool().await).schema(bad).build().await.expect_err("refused");
        assert!(
            matches!(error, cmdbus::Error::InvalidName { kind: "schema", .. }),
            "{bad:?}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_sql_is_exposed_for_external_tools() {
    let migrations = cmdbus_pg::migrations_sql("billing").expect("valid");
    let versions: Vec<i32> = migrations.iter().map(|(version, _, _)| *version).collect();
    assert_eq!(versions, (1..=cmdbus_pg::SCHEMA_VERSION).collect::<Vec<_>>());
    assert!(migrations[0].2.contains("CREATE TABLE \"billing\".commands"));
    assert!(migrations[1].2.contains("ALTER TABLE \"billing\".commands"));
    assert!(cmdbus_pg::migrations_sql("Bad Name").is_err());
}

/// Fails with a partner error the worker's classifier knows.
#[command(domain = "pg-it", max_attempts = 5, backoff = ["10ms"])]
struct CallPartner {
    rejected: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("partner said {0}")]
struct PartnerError(&'static str);

#[handler]
async fn call_partner(cmd: CallPartner) -> Result<(), PartnerError> {
    Err(PartnerError(if cmd.rejected { "account closed" } else { "busy" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_classifier_decides_unclassified_errors() {
    let bus = pg_bus().await;
    let classifier = cmdbus::Classifier::new().on::<PartnerError>(|e| {
        if e.0 == "account closed" {
            cmdbus::ErrorKind::Permanent
        } else {
            cmdbus::ErrorKind::Transient
        }
    });
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .classifier(classifier)
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("worker");
    let rejected = bus.send(CallPartner { rejected: true }).await.expect("send").command_id();
    let busy = bus.send(CallPartner { rejected: false }).await.expect("send").command_id();
    let deadline = tokio::time::Instant::now() + WAIT;
    let (rejected, busy) = loop {
        let a = bus.command::<CallPartner>(rejected).await.expect("a");
        let b = bus.command::<CallPartner>(busy).await.expect("b");
        if a.status == CommandStatus::InTroubleshootingQueue
            && b.status == CommandStatus::InTroubleshootingQueue
        {
            break (a, b);
        }
        assert!(tokio::time::Instant::now() < deadline, "{a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.shutdown().await;
    assert_eq!(rejected.attempts, 1, "permanent: no retry");
    assert_eq!(busy.attempts, 5, "transient: every attempt used");
    let error = rejected.last_error.expect("error");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (cmdbus::ErrorKind::Permanent, "partner said account closed")
    );
    assert!(error.error_type.ends_with("PartnerError"), "{}", error.error_type);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_edited_in_the_database_into_garbage_goes_to_the_tsq_intact() {
    let bus = pg_bus().await;
    let id = bus.send(Deposit { mode: Mode::Succeed }).await.expect("send").command_id();
    let edit = format!(
        "UPDATE \"{}\".commands SET payload = '{{\"mode\": \"Explode\", \"extra\": [1, 2]}}' WHERE command_id = $1",
        bus.transport().schema()
    );
    cmdbus_tests::edit_as_dba(&bus, &edit, id).await;
    let worker = start_worker(&bus).await;
    wait_status(&bus, id, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    let record = bus.command::<Deposit>(id).await.expect("record");
    let error = record.last_error.expect("decode error");
    assert_eq!(error.code, "decode");
    assert!(error.message.contains("unknown variant `Explode`"), "{}", error.message);
    let payload: serde_json::Value = serde_json::from_str(record.payload.get()).expect("json");
    assert_eq!(payload, serde_json::json!({ "mode": "Explode", "extra": [1, 2] }));
    assert!(
        bus.transport()
            .reply_wait(DOMAIN, id, Duration::from_millis(50))
            .await
            .expect("wait")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_migrations_checks_the_version_instead() {
    let pool = pool().await;
    let schema = fresh_schema();
    let error = PgBus::builder(pool.clone())
        .schema(&schema)
        .skip_migrations()
        .build()
        .await
        .expect_err("not migrated");
    let chain = format!(
        "{error}: {}",
        std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default()
    );
    assert!(matches!(error, cmdbus::Error::Schema(cmdbus::SchemaError::Missing { .. })), "{chain}");
    PgBus::builder(pool.clone()).schema(&schema).build().await.expect("migrates");
    PgBus::builder(pool)
        .schema(&schema)
        .skip_migrations()
        .build()
        .await
        .expect("current version accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_wake_on_notifications_not_the_poll() {
    let bus = pg_bus().await;
    with_ledger(&bus).await;
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_secs(60))
        .rescue_interval(Duration::from_secs(60))
        .start()
        .await
        .expect("worker");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A lone send (notifies inside its own statement).
    let lone = bus.send(Deposit { mode: Mode::Succeed }).await.expect("send").command_id();
    bus.wait_reply::<Deposit>(lone, Duration::from_secs(10))
        .await
        .expect("woken by the send's NOTIFY");
    // A burst of concurrent sends (coalesced NOTIFY after commit).
    let burst: Vec<_> = (0..50)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.send(Deposit { mode: Mode::Succeed }).await })
        })
        .collect();
    let mut ids = Vec::new();
    for send in burst {
        ids.push(send.await.expect("join").expect("send").command_id());
    }
    for id in ids {
        bus.wait_reply::<Deposit>(id, Duration::from_secs(10))
            .await
            .expect("woken by the coalesced NOTIFY");
    }
    worker.shutdown().await;
}

/// The SQL handed to a team's own migration tool is complete: applied with
/// psql, processes that only check the version accept it and work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_applied_by_an_external_tool_are_accepted() {
    let schema = fresh_schema();
    let mut script = format!("CREATE SCHEMA \"{schema}\";\n");
    for (_, _, sql) in cmdbus_pg::migrations_sql(&schema).expect("sql") {
        script.push_str(&sql);
        script.push('\n');
    }
    let out = std::process::Command::new("psql")
        .args([&cmdbus_tests::database_url(), "-q", "-v", "ON_ERROR_STOP=1", "-c", &script])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bus = PgBus::builder(pool().await)
        .schema(&schema)
        .skip_migrations()
        .build()
        .await
        .expect("the version check accepts an externally migrated schema");
    assert_eq!(bus.transport().schema_version(), cmdbus_pg::SCHEMA_VERSION);
    with_ledger(&bus).await;
    let worker = start_worker(&bus).await;
    let id = bus.send(Deposit { mode: Mode::Refuse }).await.expect("send").command_id();
    assert!(bus.wait_reply::<Deposit>(id, WAIT).await.is_ok());
    worker.shutdown().await;
}

/// A worker of several domains locks only what it leases: while its lease
/// statement runs (held open here by a trigger that sleeps on each leased
/// row), every other due command stays free for other workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_over_several_domains_locks_only_what_it_leases() {
    let bus = pg_bus().await;
    let schema = bus.transport().schema().to_owned();
    for _ in 0..10 {
        bus.send(Deposit { mode: Mode::Succeed }).await.expect("send");
        bus.send(Receipt {}).await.expect("send");
    }
    let slow = format!(
        r#"CREATE FUNCTION "{schema}".slow_lease() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.status = 'IN_PROGRESS' THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW; END $$;
           CREATE TRIGGER slow_lease BEFORE UPDATE ON "{schema}".commands
               FOR EACH ROW EXECUTE FUNCTION "{schema}".slow_lease();"#
    );
    sqlx::raw_sql(AssertSqlSafe(slow)).execute(bus.pool()).await.expect("trigger");
    let transport = bus.transport().clone();
    let lease = tokio::spawn(async move {
        let domains = vec![DOMAIN.to_owned(), "pg-it-receipts".to_owned()];
        let params =
            cmdbus::backend::CommandsLease::new(domains, 4, WAIT, "several-domains".into());
        transport.commands_poll(params).await
    });
    // The statement has chosen and locked its rows before the first sleep.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let free = format!(
        r#"SELECT count(*) FROM (SELECT 1 FROM "{schema}".commands
           WHERE status = 'PENDING' FOR UPDATE SKIP LOCKED) free"#
    );
    let mut probe = bus.pool().begin().await.expect("begin");
    let unlocked: i64 =
        sqlx::query_scalar(AssertSqlSafe(free)).fetch_one(&mut *probe).await.expect("probe");
    probe.rollback().await.expect("rollback");
    let polled = lease.await.expect("join").expect("lease");
    assert_eq!(polled.commands.len(), 4);
    assert_eq!(unlocked, 16, "20 due, 4 being leased: the other 16 must stay free");
}
