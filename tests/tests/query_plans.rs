//! Every supported query filter is served by an index: on 100k commands,
//! no plan may contain a sequential scan. Also checks each filter returns
//! exactly the expected rows across pages, and that the worker's statements
//! find rows by key in the plans PostgreSQL keeps.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use cmdbus::CommandStatus;
use cmdbus::TsqFilter;
use cmdbus_pg::{CommandQuery, PgBus};
use cmdbus_tests::{one_connection_bus, pg_bus};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

/// Stores the test's rows (`sql`) and analyzes `table`, so that plans are
/// made for them.
async fn load(bus: &PgBus, sql: String, table: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(bus.pool()).await.expect("seed");
    let schema = bus.transport().schema();
    let analyze = format!(r#"ANALYZE "{schema}".{table}"#);
    sqlx::raw_sql(AssertSqlSafe(analyze)).execute(bus.pool()).await.expect("analyze");
}

/// 100k commands: 4 domains × 5 types, every status, created over 100 days.
async fn seeded() -> PgBus {
    let bus = pg_bus().await;
    let schema = bus.transport().schema().to_owned();
    let seed = format!(
        r#"INSERT INTO "{schema}".commands
             (domain, command_id, command_type, correlation_id, reply_to, status, attempts, max_attempts,
              payload, last_error, created_at, updated_at, lease_id, lease_expires_at, finished_at)
           SELECT 'd' || (i % 4), gen_random_uuid(), 'T' || (i % 5), gen_random_uuid(), 'default',
                  (ARRAY['PENDING','IN_PROGRESS','COMPLETED','FAILED','IN_TROUBLESHOOTING_QUEUE','CANCELED'])[1 + i % 6],
                  1, 3, '{{}}'::jsonb,
                  CASE WHEN i % 6 = 4 THEN jsonb_build_object('code', 'code' || (i % 3)) END,
                  now() - (i || ' minutes')::interval * 1.44, now() - (i || ' minutes')::interval,
                  CASE WHEN i % 6 = 1 THEN gen_random_uuid() END,
                  CASE WHEN i % 6 = 1 THEN now() END,
                  CASE WHEN i % 6 IN (2, 3, 5) THEN now() - (i || ' minutes')::interval END
           FROM generate_series(1, 100000) AS i"#
    );
    load(&bus, seed, "commands").await;
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_filter_uses_an_index() {
    let bus = seeded().await;
    let now = Utc::now();
    let queries = [
        ("status", CommandQuery::new().status(CommandStatus::Failed)),
        (
            "two statuses",
            CommandQuery::new().status(CommandStatus::Failed).status(CommandStatus::Canceled),
        ),
        ("domain", CommandQuery::new().domain("d1")),
        ("type", CommandQuery::new().command_type("d1", "T2")),
        ("correlation id", CommandQuery::new().correlation_id(Uuid::new_v4())),
        (
            "created range",
            CommandQuery::new().created_between(now - Duration::days(2), now - Duration::days(1)),
        ),
        (
            "updated range",
            CommandQuery::new().updated_between(now - Duration::days(2), now - Duration::days(1)),
        ),
        (
            "status + domain + created",
            CommandQuery::new()
                .status(CommandStatus::Pending)
                .domain("d3")
                .created_between(now - Duration::days(30), now),
        ),
        ("scheduled", CommandQuery::new().scheduled()),
        ("no filter", CommandQuery::new()),
        // Each status through its own indexes (migration 0012).
        ("pending", CommandQuery::new().status(CommandStatus::Pending)),
        ("in progress", CommandQuery::new().status(CommandStatus::InProgress).domain("d2")),
        ("in the tsq", CommandQuery::new().status(CommandStatus::InTroubleshootingQueue)),
        (
            "finished, updated range",
            CommandQuery::new()
                .status(CommandStatus::Completed)
                .updated_between(now - Duration::days(2), now - Duration::days(1)),
        ),
        (
            "pending, updated range",
            CommandQuery::new()
                .status(CommandStatus::Pending)
                .updated_between(now - Duration::days(2), now - Duration::days(1)),
        ),
        (
            "domain + updated range",
            CommandQuery::new()
                .domain("d0")
                .updated_between(now - Duration::days(2), now - Duration::days(1)),
        ),
    ];
    for (name, query) in queries {
        let plan = bus.explain(&query).await.expect("explain");
        assert!(!plan.contains("Seq Scan"), "{name} plans a sequential scan:\n{plan}");
    }
    for (name, filter) in [
        ("tsq", TsqFilter::new()),
        ("tsq code", TsqFilter::new().error_code("code1")),
        ("tsq type", TsqFilter::new().command_type("d0", "T1")),
        ("tsq since", TsqFilter::new().since(now - Duration::days(1))),
    ] {
        let plan = bus.explain_tsq(&filter).await.expect("explain");
        assert!(!plan.contains("Seq Scan"), "{name} plans a sequential scan:\n{plan}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_return_exactly_the_expected_rows_across_pages() {
    let bus = seeded().await;
    let schema = bus.transport().schema().to_owned();
    let now = Utc::now();
    let cases = [
        (
            CommandQuery::new().status(CommandStatus::Failed).domain("d1"),
            "status = 'FAILED' AND domain = 'd1'",
        ),
        (
            CommandQuery::new()
                .command_type("d2", "T3")
                .created_between(now - Duration::days(10), now),
            "domain = 'd2' AND command_type = 'T3' AND created_at >= now() - interval '10 days'",
        ),
        (
            CommandQuery::new().updated_between(now - Duration::hours(20), now),
            "updated_at >= now() - interval '20 hours'",
        ),
        // One walk per status, merged.
        (
            CommandQuery::new()
                .status(CommandStatus::Failed)
                .status(CommandStatus::Canceled)
                .domain("d2"),
            "status IN ('FAILED', 'CANCELED') AND domain = 'd2'",
        ),
        // Found in command_keys.
        (CommandQuery::new().domain("d3"), "domain = 'd3'"),
        // Paged by finished_at, which is their updated_at.
        (
            CommandQuery::new()
                .status(CommandStatus::Canceled)
                .updated_between(now - Duration::days(30), now),
            "status = 'CANCELED' AND updated_at >= now() - interval '30 days'",
        ),
        // Leased rows, sorted as found through the lease index.
        (
            CommandQuery::new().status(CommandStatus::InProgress).domain("d1"),
            "status = 'IN_PROGRESS' AND domain = 'd1'",
        ),
        // One walk per status, merged.
        (
            CommandQuery::new().domain("d0").updated_between(now - Duration::days(20), now),
            "domain = 'd0' AND updated_at >= now() - interval '20 days'",
        ),
    ];
    for (query, predicate) in cases {
        let expected: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            r#"SELECT count(*) FROM "{schema}".commands WHERE {predicate}"#
        )))
        .fetch_one(bus.pool())
        .await
        .expect("count");
        let mut seen = HashSet::new();
        let mut query = query.limit(1000);
        loop {
            let page = bus.query(&query).await.expect("query");
            for record in &page.items {
                assert!(seen.insert(record.command_id), "row repeated across pages");
            }
            match page.next {
                Some(next) => query = query.after(next),
                None => break,
            }
        }
        // The created/updated windows are computed a moment apart; allow the rows at the edge.
        let diff = (i64::try_from(seen.len()).expect("fits") - expected).abs();
        assert!(diff <= 1, "{predicate}: {} rows vs {expected}", seen.len());
    }
}

/// The overview reads live commands through each status's own index and
/// recent history through `finished_at`: on 100k finished commands and a
/// few hundred live ones, its plan scans no table, and its counts are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_reads_live_commands_and_recent_history_through_indexes() {
    let bus = pg_bus().await;
    let schema = bus.transport().schema().to_owned();
    let seed = format!(
        r#"INSERT INTO "{schema}".commands
             (domain, command_id, command_type, correlation_id, reply_to, status, attempts, max_attempts,
              payload, created_at, updated_at, finished_at)
           SELECT 'd', gen_random_uuid(), 'T', gen_random_uuid(), 'default', 'COMPLETED', 1, 3, '{{}}',
                  now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'
           FROM generate_series(1, 100000);
           INSERT INTO "{schema}".commands
             (domain, command_id, command_type, correlation_id, reply_to, status, attempts, max_attempts,
              payload, last_error, lease_id, lease_expires_at)
           SELECT 'd', gen_random_uuid(), 'T', gen_random_uuid(), 'default',
                  (ARRAY['PENDING', 'IN_PROGRESS', 'IN_TROUBLESHOOTING_QUEUE'])[1 + i % 3], 1, 3, '{{}}',
                  CASE WHEN i % 3 = 2 THEN '{{"code": "x"}}'::jsonb END,
                  CASE WHEN i % 3 = 1 THEN gen_random_uuid() END,
                  CASE WHEN i % 3 = 1 THEN now() + interval '1 minute' END
           FROM generate_series(1, 300) AS i"#
    );
    load(&bus, seed, "commands").await;
    let hour = std::time::Duration::from_secs(3600);
    let plan = bus.explain_overview(hour).await.expect("explain");
    assert!(!plan.contains("Seq Scan on commands"), "the overview scans the history:\n{plan}");
    let health = bus.overview(hour).await.expect("overview");
    assert_eq!(health.len(), 1);
    let d = &health[0];
    assert_eq!((d.due, d.in_progress, d.in_tsq, d.completed_recently), (100, 100, 100, 0));
}

/// Process instances are listed by type, status and correlation id through
/// indexes: on 100k instances no plan scans the table; pages cover a
/// status exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_listing_uses_an_index_for_every_filter() {
    use cmdbus::process::{ProcessFilter, ProcessStatus};
    let bus = pg_bus().await;
    let schema = bus.transport().schema().to_owned();
    let seed = format!(
        r#"INSERT INTO "{schema}".processes
             (process_type, process_id, domain, status, correlation_id, state, version, created_at, finished_at)
           SELECT 'P' || (i % 5), gen_random_uuid(), 'd',
                  (ARRAY['RUNNING','WAITING','COMPENSATING','COMPLETED','COMPENSATED','STUCK','ABANDONED'])[1 + i % 7],
                  gen_random_uuid(), '{{}}'::jsonb, 1, now() - (i || ' minutes')::interval,
                  CASE WHEN i % 7 IN (3, 4, 6) THEN now() END
           FROM generate_series(1, 100000) AS i"#
    );
    load(&bus, seed, "processes").await;
    let filters = [
        ("all", ProcessFilter::new()),
        ("status", ProcessFilter::new().status(ProcessStatus::Stuck)),
        ("type", ProcessFilter::new().process_type("P2")),
        ("type and status", ProcessFilter::new().process_type("P2").status(ProcessStatus::Stuck)),
        ("correlation id", ProcessFilter::new().correlation_id(Uuid::new_v4())),
    ];
    for (name, filter) in &filters {
        let plan = bus.explain_processes(filter).await.expect("explain");
        assert!(!plan.contains("Seq Scan"), "{name} scans the table:\n{plan}");
    }
    let stuck = ProcessFilter::new().status(ProcessStatus::Stuck);
    let (mut seen, mut after) = (HashSet::new(), None);
    loop {
        let page = bus.processes().list(&stuck, after, 1000).await.expect("list");
        for p in &page.items {
            assert_eq!(p.status, ProcessStatus::Stuck);
            assert!(seen.insert(p.process_id), "row repeated across pages");
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), (1..=100_000).filter(|i| i % 7 == 5).count());
}

/// `command_keys` (migration 0011) holds the created/type/correlation
/// indexes; its rows follow the commands whoever writes them: a team's own
/// INSERT, DELETE and TRUNCATE included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_keys_follow_the_commands_whoever_writes_them() {
    let bus = pg_bus().await;
    let s = bus.transport().schema().to_owned();
    let run = |sql: String| {
        let pool = bus.pool().clone();
        async move { sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.expect("sql") }
    };
    let keys = || async {
        let sql = format!(
            r#"SELECT count(*) FILTER (WHERE c.command_id IS NOT NULL), count(*)
               FROM "{s}".command_keys k
               LEFT JOIN "{s}".commands c USING (domain, command_id, command_type, correlation_id, created_at)"#
        );
        sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql))
            .fetch_one(bus.pool())
            .await
            .expect("keys")
    };
    run(format!(
        r#"INSERT INTO "{s}".commands (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload)
           SELECT 'd', gen_random_uuid(), 'T', gen_random_uuid(), 'default', 'PENDING', 3, '{{}}'
           FROM generate_series(1, 10)"#
    ))
    .await;
    assert_eq!(keys().await, (10, 10), "one matching key row per command");
    run(format!(r#"DELETE FROM "{s}".commands WHERE command_id IN (SELECT command_id FROM "{s}".commands LIMIT 4)"#))
        .await;
    assert_eq!(keys().await, (6, 6));
    run(format!(r#"TRUNCATE "{s}".commands"#)).await;
    assert_eq!(keys().await, (0, 0));
}

/// The statements that record outcomes and extend leases find each row by
/// its primary key in the plan PostgreSQL keeps for reuse (the generic
/// plan), even when that plan is made while the table is still new and
/// small: the plan outlives the table's growth, so a sequential scan chosen
/// then would be paid on every completion later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_and_heartbeats_find_rows_by_key_on_a_new_table() {
    use cmdbus::Transport;
    use cmdbus::backend::{CommandsLease, LeaseRef, NewCommand, Outcome, OutcomeKind};
    use sqlx::Row;

    let bus = one_connection_bus().await;
    let transport = bus.transport();
    let id = Uuid::now_v7();
    let payload = serde_json::value::to_raw_value(&1).expect("json");
    let command =
        NewCommand::new("plans".into(), "Probe".into(), id, id, "default".into(), 3, payload);
    transport.commands_send(vec![command]).await.expect("send");
    let visibility = std::time::Duration::from_secs(30);
    let params = CommandsLease::new(vec!["plans".into()], 10, visibility, "probe".into());
    let leased = transport.commands_lease(params).await.expect("lease");
    let lease = LeaseRef::of(&leased[0]);
    let lost = transport.leases_extend(vec![lease.clone()], visibility).await.expect("extend");
    assert!(lost.is_empty());
    let reply = serde_json::value::to_raw_value(&()).expect("json");
    let outcome = Outcome::new(lease, leased[0].attempt, OutcomeKind::Completed { reply });
    transport.commands_record(&[outcome]).await.expect("record");

    let mut conn = bus.pool().acquire().await.expect("the one connection");
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .expect("generic plans");
    for (statement, marker) in
        [("recording outcomes", "Stores transitions"), ("heartbeat", "The worker's heartbeat")]
    {
        let prepared = sqlx::query(
            "SELECT name, cardinality(parameter_types) AS params FROM pg_prepared_statements
             WHERE statement LIKE '%' || $1 || '%'",
        )
        .bind(marker)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{statement} was prepared on the connection: {e}"));
        let name: String = prepared.get("name");
        let params: i32 = prepared.get("params");
        let nulls = vec!["NULL"; usize::try_from(params).expect("count")].join(", ");
        let explain = format!("EXPLAIN (COSTS OFF) EXECUTE {name}({nulls})");
        let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(explain))
            .fetch_all(&mut *conn)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Scan using commands_pkey on commands")
                && !plan.contains("Seq Scan on commands"),
            "{statement} does not find rows by key:\n{plan}"
        );
        // Read once, by the update: joining the input back to the rows
        // updated was a nested loop over both, quadratic in the batch.
        assert!(!plan.contains("CTE input"), "{statement} reads its input twice:\n{plan}");
    }
}

/// Once `commands` has statistics, a one-domain lease of the worker's batch
/// size is not planned anew on every call: PostgreSQL keeps its plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_keeps_its_plan_on_a_table_with_statistics() {
    use cmdbus::Transport;
    use cmdbus::backend::CommandsLease;

    let bus = one_connection_bus().await;
    let schema = bus.transport().schema().to_owned();
    let backlog = format!(
        r#"INSERT INTO "{schema}".commands
             (domain, command_id, command_type, correlation_id, reply_to, status, max_attempts, payload)
           SELECT 'plans', id, 'Probe', id, 'default', 'PENDING', 3, '{{}}'::jsonb
           FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 20000)) ids"#
    );
    load(&bus, backlog, "commands").await;
    let visibility = std::time::Duration::from_secs(30);
    for _ in 0..8 {
        let params = CommandsLease::new(vec!["plans".into()], 64, visibility, "probe".into());
        let leased = bus.transport().commands_lease(params).await.expect("lease");
        assert_eq!(leased.len(), 64);
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT sum(generic_plans)::int8, sum(custom_plans)::int8 FROM pg_prepared_statements
         WHERE statement LIKE '%The start of the common lease statement%'",
    )
    .fetch_one(bus.pool())
    .await
    .expect("plan counts");
    // PostgreSQL plans the first five runs for their values, then keeps the
    // generic plan unless it looks dearer.
    assert!(custom <= 5, "every lease was planned anew: {custom} custom plans, {generic} generic");
}
