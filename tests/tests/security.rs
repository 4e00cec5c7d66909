//! Least privilege: a sender, a worker and an operator role, each granted by
//! `cmdbus_pg::grants_sql`, can do their part and nothing else. The audit
//! trail cannot be altered by any of them.

use std::time::Duration;

use cmdbus::TsqFilter;
use cmdbus::backend::CommandsLease;
use cmdbus::{Error, HandlerError, Operator, Transport, command, handler};
use cmdbus_pg::{PgBus, Role, grants_sql};
use cmdbus_tests::{database_url, fresh_name, fresh_schema, pool};
use sqlx::{AssertSqlSafe, PgPool};

#[command(domain = "sec-it")]
struct Transfer {
    fail: bool,
}

/// Sent when a batch of transfers has ended; nothing serves its domain here.
#[derive(cmdbus::Command)]
#[command(domain = "sec-it-done")]
struct TransfersDone {
    batch: cmdbus::BatchOutcome,
}

/// A process the sender starts and the worker runs.
#[derive(cmdbus::Process)]
#[process(domain = "sec-it", steps(Transfer))]
struct Settlement {
    settled: bool,
}

impl cmdbus::Process for Settlement {
    type Timeout = ();
    fn start(&mut self, steps: &mut cmdbus::Steps<Self>) {
        steps.send(Transfer { fail: false });
    }
}

impl cmdbus::Reacts<Transfer> for Settlement {
    fn on_reply(&mut self, reply: cmdbus::TypedReply<()>, _: &mut cmdbus::Steps<Self>) {
        self.settled = matches!(reply, cmdbus::TypedReply::Success(()));
    }
}

#[handler]
async fn transfer(cmd: Transfer) -> Result<(), HandlerError> {
    if cmd.fail { Err(HandlerError::permanent("refused", "no")) } else { Ok(()) }
}

async fn role_pool(role: &str) -> PgPool {
    let url = database_url().replacen("postgres@", &format!("{role}@"), 1);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("role connects")
}

async fn denied(pool: &PgPool, sql: String) {
    let error = sqlx::query(AssertSqlSafe(sql.clone())).execute(pool).await.expect_err(&sql);
    let text = error.to_string();
    assert!(text.contains("permission denied") || text.contains("must be owner"), "{sql}: {text}");
}

fn is_permission_error(error: &Error) -> bool {
    let text = format!(
        "{error}: {}",
        std::error::Error::source(error).map(ToString::to_string).unwrap_or_default()
    );
    text.contains("permission denied")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_its_part_and_nothing_else() {
    let admin = pool().await;
    let schema = fresh_schema();
    PgBus::builder(admin.clone()).schema(&schema).build().await.expect("owner migrates");
    let names: Vec<(Role, String)> = [Role::Sender, Role::Worker, Role::Operator]
        .into_iter()
        .map(|role| (role, fresh_name()))
        .collect();
    for (role, name) in &names {
        sqlx::query(AssertSqlSafe(format!("CREATE ROLE \"{name}\" LOGIN")))
            .execute(&admin)
            .await
            .expect("role");
        let grants = grants_sql(&schema, *role, name).expect("grants");
        sqlx::raw_sql(AssertSqlSafe(grants)).execute(&admin).await.expect("grant");
    }
    let pools: Vec<PgPool> = connect_all(&names).await;
    let bus = |i: usize| PgBus::builder(pools[i].clone()).schema(&schema).skip_migrations().build();
    let (sender, worker_bus, operator) = (
        bus(0).await.expect("sender"),
        bus(1).await.expect("worker"),
        bus(2).await.expect("operator"),
    );
    let ops = Operator::new("ops").expect("operator");

    // The sender sends; it cannot lease, migrate or touch history.
    let ok = sender.send(Transfer { fail: false }).await.expect("sender sends").command_id();
    let batch = cmdbus::Batch::new()
        .member(Transfer { fail: false })
        .and_then(|b| b.on_done(|batch| TransfersDone { batch }))
        .expect("batch")
        .with_member_ids();
    let batch = sender.open_batch(batch).await.expect("sender opens a batch").batch_id;
    let bad = sender.send(Transfer { fail: true }).await.expect("sender sends").command_id();
    let settlement = uuid::Uuid::now_v7();
    sender.start_process(settlement, Settlement { settled: false }).await.expect("sender starts");
    let lease =
        CommandsLease::new(vec!["sec-it".into()], 10, Duration::from_secs(30), "intruder".into());
    assert!(is_permission_error(
        &sender.transport().commands_lease(lease.clone()).await.expect_err("no lease")
    ));
    assert!(is_permission_error(
        // Its schema is up to date, so migrating it would change nothing;
        // creating one is DDL and refused.
        &PgBus::builder(pools[0].clone()).schema(fresh_schema()).build().await.expect_err("no DDL")
    ));

    // The worker processes (and may send: handlers' follow-up commands and
    // batch completions are stored by the transitions it applies); it
    // cannot rewrite a payload.
    let worker = worker_bus
        .worker()
        .domain("sec-it")
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    sender
        .wait_reply::<Transfer>(ok, Duration::from_secs(20))
        .await
        .expect("sender reads its reply");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while operator
        .troubleshooting()
        .list(&TsqFilter::new(), 10, None)
        .await
        .expect("operator lists")
        .items
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The worker that ends the batch's member stores its completion.
    while !sender.batch(batch).await.expect("batch").is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "the batch never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The worker runs the process: it locks, saves and opens its steps.
    while sender.process::<Settlement>(settlement).await.map(|p| p.state.settled).ok() != Some(true)
    {
        if tokio::time::Instant::now() >= deadline {
            let errors: Vec<(String, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
                r#"SELECT command_type || ' ' || status, last_error::text FROM "{schema}".commands"#
            )))
            .fetch_all(&admin)
            .await
            .expect("commands");
            panic!("the process never ended: {errors:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    let view = operator.process::<Settlement>(settlement).await.expect("operator reads it");
    assert_eq!(view.status, cmdbus::ProcessStatus::Completed);
    let ended = sender.batch(batch).await.expect("batch");
    let (_, completion) = ended.completion.expect("a completion command");
    assert_eq!(sender.command::<TransfersDone>(completion).await.expect("stored").attempts, 0);

    // The operator acts on the TSQ (an action that ends a batch's last
    // member stores its completion, so it may insert commands); it cannot lease.
    // It corrects a payload (the edit retries the command), then thinks
    // better of it and cancels the command before it runs again.
    let fixed = serde_json::json!({ "fail": false });
    operator.troubleshooting().edit_and_retry(bad, &ops, &fixed, false).await.expect("edits");
    operator.troubleshooting().cancel_pending(bad, &ops, "fraud").await.expect("cancels");
    assert!(is_permission_error(
        &operator.transport().commands_lease(lease).await.expect_err("no lease")
    ));

    // Operators pause, resume and limit; workers and senders cannot.
    let target = cmdbus::FlowTarget::domain("sec-it").expect("target");
    assert!(operator.pause(&target, &ops, "incident").await.expect("operator pauses"));
    assert!(operator.resume(&target, &ops).await.expect("operator resumes"));
    operator.limit(&target, 4, &ops).await.expect("operator limits");
    assert!(operator.unlimit(&target, &ops).await.expect("operator lifts the limit"));
    for bus in [&worker_bus, &sender] {
        assert!(is_permission_error(&bus.pause(&target, &ops, "x").await.expect_err("no pause")));
        assert!(is_permission_error(&bus.limit(&target, 1, &ops).await.expect_err("no limit")));
    }

    // Nobody rewrites the audit trail, nor payloads, but for an operator
    // correcting a command in the TSQ: anything else was sent as it is.
    let s = &schema;
    for pool in &pools[..2] {
        denied(pool, format!(r#"UPDATE "{s}".commands SET payload = '{{}}'"#)).await;
    }
    let rewrite = format!(
        r#"UPDATE "{s}".commands SET payload = '{{}}' WHERE status <> 'IN_TROUBLESHOOTING_QUEUE'"#
    );
    let refused =
        sqlx::query(AssertSqlSafe(rewrite)).execute(&pools[2]).await.expect_err("guarded");
    assert!(refused.to_string().contains("only in the troubleshooting queue"), "{refused}");
    for pool in &pools {
        denied(pool, format!(r#"UPDATE "{s}".audit SET event = 'COMPLETED'"#)).await;
        denied(pool, format!(r#"DELETE FROM "{s}".audit"#)).await;
        denied(pool, format!(r#"DELETE FROM "{s}".commands"#)).await;
        denied(pool, format!(r#"DROP TABLE "{s}".audit"#)).await;
        denied(pool, format!(r#"DELETE FROM "{s}".processes"#)).await;
        // The query keys follow the commands (triggers run as the owner);
        // no role writes them itself, although every role's sends store them.
        denied(pool, format!(r#"DELETE FROM "{s}".command_keys"#)).await;
        denied(pool, format!(r#"UPDATE "{s}".command_keys SET command_type = 'x'"#)).await;
        denied(pool, format!(r#"INSERT INTO "{s}".command_keys SELECT * FROM "{s}".command_keys"#))
            .await;
    }
    // Only workers write process instances (operators act through events).
    for pool in [&pools[0], &pools[2]] {
        denied(pool, format!(r#"UPDATE "{s}".processes SET status = 'ABANDONED'"#)).await;
    }
    // A finished command is history, and so are the events its row holds:
    // the roles that may change live commands change no finished one.
    for pool in &pools[1..] {
        let sql = format!(
            r#"UPDATE "{s}".commands SET received_at = now(), updated_at = now()
               WHERE status IN ('COMPLETED', 'CANCELED')"#
        );
        let changed =
            sqlx::query(AssertSqlSafe(sql)).execute(pool).await.expect("allowed, filtered");
        assert_eq!(changed.rows_affected(), 0);
    }
    assert!(grants_sql(&schema, Role::Sender, "Robert'); DROP TABLE students; --").is_err());

    for pool in pools {
        pool.close().await;
    }
    for (_, name) in &names {
        let _ =
            sqlx::raw_sql(AssertSqlSafe(format!("DROP OWNED BY \"{name}\"; DROP ROLE \"{name}\"")))
                .execute(&admin)
                .await;
    }
}

async fn connect_all(names: &[(Role, String)]) -> Vec<PgPool> {
    let mut pools = Vec::new();
    for (_, name) in names {
        pools.push(role_pool(name).await);
    }
    pools
}
