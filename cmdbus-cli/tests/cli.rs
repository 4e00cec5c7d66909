//! The real `cmdbus` binary against a real database, one fresh schema per test.

use std::{process::Output, time::Duration};

use cmdbus::TsqFilter;
use cmdbus::{HandlerError, command, handler};
use cmdbus_pg::PgBus;
use uuid::Uuid;

#[command(domain = "cli-it")]
struct Ship {
    order: u32,
    code: String,
}

#[handler]
async fn ship(cmd: Ship) -> Result<(), HandlerError> {
    Err(HandlerError::permanent(cmd.code, format!("cannot ship order {}", cmd.order)))
}

/// What a shipped express order replies.
#[derive(cmdbus::Payload, Debug, PartialEq)]
struct Shipped {
    tracking: String,
    parcels: u32,
}

#[derive(cmdbus::Command)]
#[command(domain = "cli-it", reply = Shipped, max_attempts = 1)]
struct ShipExpress {
    order: u32,
}

#[handler]
async fn ship_express(cmd: ShipExpress) -> Result<Shipped, HandlerError> {
    Err(HandlerError::permanent("courier_down", format!("cannot ship order {}", cmd.order)))
}

/// A command of a domain no worker serves.
#[derive(cmdbus::Command)]
#[command(domain = "nobody-home")]
struct Knock {}

struct Fixture {
    bus: PgBus,
    schema: String,
    ids: Vec<Uuid>,
}

/// A schema with three items in the TSQ: two `no_stock`, one `bad_address`.
async fn fixture() -> Fixture {
    let schema = cmdbus_tests::fresh_schema();
    let bus =
        PgBus::builder(cmdbus_tests::pool().await).schema(&schema).build().await.expect("bus");
    let mut ids = Vec::new();
    for (order, code) in [(1, "no_stock"), (2, "no_stock"), (3, "bad_address")] {
        ids.push(bus.send(Ship { order, code: code.into() }).await.expect("send").command_id());
    }
    let worker = bus
        .worker()
        .domain("cli-it")
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bus.troubleshooting().list(&TsqFilter::new(), 10, None).await.expect("list").items.len()
        < 3
    {
        assert!(tokio::time::Instant::now() < deadline, "fixture never reached the TSQ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    Fixture { bus, schema, ids }
}

fn cmdbus(schema: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .env("DATABASE_URL", cmdbus_tests::database_url())
        .env_remove("CMDBUS_OPERATOR")
        .env("CMDBUS_SCHEMA", schema)
        .args(args)
        .output()
        .expect("cmdbus runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

fn json(output: &Output) -> serde_json::Value {
    assert_exit(output, 0);
    serde_json::from_slice(&output.stdout).expect("valid JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_other_commands_need_it() {
    let schema = cmdbus_tests::fresh_schema();
    // A schema that does not exist (a typo, or never migrated) is said to be
    // missing, and `migrate` does not create it unless asked.
    for args in [&["stats"][..], &["migrate"]] {
        let missing = cmdbus(&schema, args);
        assert_exit(&missing, 5);
        assert!(stderr(&missing).contains("does not exist"), "{}", stderr(&missing));
    }
    for args in [&["migrate", "--create"][..], &["migrate"]] {
        let migrated = cmdbus(&schema, args);
        assert_exit(&migrated, 0);
        let version = format!("is at version {}", cmdbus_pg::SCHEMA_VERSION);
        assert!(stdout(&migrated).contains(&version), "{}", stdout(&migrated));
    }
    assert_exit(&cmdbus(&schema, &["stats"]), 0);

    // A schema left at an older version by hand: the CLI says to migrate.
    let pool = cmdbus_tests::pool().await;
    let forget = format!(r#"DELETE FROM "{schema}".schema_migrations"#);
    sqlx::query(sqlx::AssertSqlSafe(forget)).execute(&pool).await.expect("forget");
    let old = cmdbus(&schema, &["stats"]);
    assert_exit(&old, 5);
    assert!(stderr(&old).contains("run the migrations (`cmdbus migrate`)"), "{}", stderr(&old));
    // And one from a newer cmdbus: the CLI is the old one.
    let future = format!(
        r#"INSERT INTO "{schema}".schema_migrations (version, name) VALUES (99, 'future')"#
    );
    sqlx::query(sqlx::AssertSqlSafe(future)).execute(&pool).await.expect("future");
    let new = cmdbus(&schema, &["migrate"]);
    assert_exit(&new, 5);
    assert!(stderr(&new).contains("newer than this program supports"), "{}", stderr(&new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsq_list_count_and_show() {
    let f = fixture().await;
    let table = cmdbus(&f.schema, &["tsq", "list"]);
    assert_exit(&table, 0);
    let text = stdout(&table);
    assert!(text.starts_with("ID"), "{text}");
    for id in &f.ids {
        assert!(text.contains(&id.to_string()), "{text}");
    }
    assert!(text.contains("no_stock: cannot ship order"), "{text}");

    let page = json(&cmdbus(
        &f.schema,
        &["--json", "tsq", "list", "--error-code", "no_stock", "--limit", "1"],
    ));
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let next = page["next"].as_str().expect("a next page").to_owned();
    let rest = json(&cmdbus(
        &f.schema,
        &["--json", "tsq", "list", "--error-code", "no_stock", "--after", &next],
    ));
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert!(rest["next"].is_null());

    let counts = json(&cmdbus(&f.schema, &["--json", "tsq", "count", "--domain", "cli-it"]));
    assert_eq!(counts[0]["error_code"], "bad_address");
    assert_eq!(counts[1]["count"], 2);

    let show = cmdbus(&f.schema, &["tsq", "show", &f.ids[2].to_string()]);
    assert_exit(&show, 0);
    let text = stdout(&show);
    assert!(text.contains("IN_TROUBLESHOOTING_QUEUE") && text.contains("\"order\": 3"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsq_actions_are_audited_with_the_operator() {
    let f = fixture().await;
    let (a, b, c) = (f.ids[0].to_string(), f.ids[1].to_string(), f.ids[2].to_string());
    let retried = cmdbus(&f.schema, &["--operator", "ada", "tsq", "retry", &a]);
    assert_exit(&retried, 0);
    assert_eq!(stdout(&retried).trim(), format!("retried {a}"));
    let again = cmdbus(&f.schema, &["--operator", "ada", "tsq", "retry", &a]);
    assert_exit(&again, 3);
    assert!(
        stderr(&again).contains("is PENDING, not in the troubleshooting queue"),
        "{}",
        stderr(&again)
    );

    assert_exit(
        &cmdbus(
            &f.schema,
            &["--operator", "ada", "tsq", "cancel", &b, "--reason", "customer left"],
        ),
        0,
    );
    assert_exit(
        &cmdbus(&f.schema, &["--operator", "ada", "tsq", "complete", &c, "--result", "null"]),
        0,
    );

    let trail = json(&cmdbus(&f.schema, &["--json", "audit", &b]));
    let last = trail.as_array().and_then(|t| t.last()).expect("entries").clone();
    assert_eq!(last["event"], "OPERATOR_CANCEL");
    assert_eq!(last["details"]["operator"], "ada");
    assert_eq!(last["details"]["reason"], "customer left");
    let table = stdout(&cmdbus(&f.schema, &["audit", &c]));
    assert!(
        table.contains("SENT")
            && table.contains("MOVED_TO_TSQ")
            && table.contains("OPERATOR_COMPLETE"),
        "{table}"
    );

    let statuses = f.bus.status_counts(Some("cli-it")).await.expect("counts");
    let names: Vec<String> = statuses.iter().map(|s| s.status.to_string()).collect();
    assert_eq!(names, ["CANCELED", "COMPLETED", "PENDING"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_retry_counts_then_acts() {
    let f = fixture().await;
    let args = ["--json", "--operator", "ops", "tsq", "retry", "--all", "--error-code", "no_stock"];
    let dry = json(&cmdbus(&f.schema, &[&args[..], &["--dry-run"]].concat()));
    assert_eq!((dry["matched"].as_u64(), dry["acted"].as_u64()), (Some(2), Some(0)));
    let done = json(&cmdbus(&f.schema, &args));
    assert_eq!((done["matched"].as_u64(), done["acted"].as_u64()), (Some(2), Some(2)));
    let cancel = cmdbus(
        &f.schema,
        &[
            "--operator",
            "ops",
            "tsq",
            "cancel",
            "--all",
            "--domain",
            "cli-it",
            "--reason",
            "x",
            "--dry-run",
        ],
    );
    assert_exit(&cancel, 0);
    assert!(
        stdout(&cancel)
            .trim()
            .ends_with("dry run: cancel would act on 1 item(s); nothing was changed"),
        "{}",
        stdout(&cancel)
    );
    let complete = json(&cmdbus(
        &f.schema,
        &[
            "--json",
            "--operator",
            "ops",
            "tsq",
            "complete",
            "--all",
            "--error-code",
            "bad_address",
            "--result",
            "null",
        ],
    ));
    assert_eq!((complete["matched"].as_u64(), complete["acted"].as_u64()), (Some(1), Some(1)));
    assert!(
        stdout(&cmdbus(&f.schema, &["audit", &f.ids[2].to_string()])).contains("OPERATOR_COMPLETE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_stats() {
    let f = fixture().await;
    let found = json(&cmdbus(
        &f.schema,
        &[
            "--json", "query", "--status", "tsq", "--domain", "cli-it", "--type", "Ship",
            "--since", "1h",
        ],
    ));
    assert_eq!(found["items"].as_array().map(Vec::len), Some(3));
    let correlated =
        json(&cmdbus(&f.schema, &["--json", "query", "--correlation-id", &f.ids[0].to_string()]));
    assert_eq!(correlated["items"][0]["command_id"], f.ids[0].to_string());
    let none = json(&cmdbus(&f.schema, &["--json", "query", "--status", "completed"]));
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let stats = stdout(&cmdbus(&f.schema, &["stats"]));
    assert!(stats.contains("cli-it") && stats.contains("IN_TROUBLESHOOTING_QUEUE  3"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_exit_codes() {
    let f = fixture().await;
    let cases: &[(&[&str], i32, &str)] = &[
        (&["tsq", "show", "not-a-uuid"], 2, "invalid value 'not-a-uuid'"),
        (&["query", "--status", "done"], 2, "unknown command status \"done\""),
        (&["query", "--since", "yesterday"], 2, "is not a time: give one as printed"),
        (&["query", "--since", "2999-01-01"], 2, "--since 2999-01-01 00:00:00 is in the future"),
        (&["tsq", "list", "--since", "1h", "--until", "2h"], 2, "--since must be before --until"),
        (&["query", "--since", "1h", "--until", "2h"], 2, "--since must be before --until"),
        (&["tsq", "list", "--type", "Ship"], 2, "--domain"),
        (&["tsq", "list", "--limit", "0"], 2, "0 is not in 1..=1000"),
        (&["tsq", "list", "--after", "garbage"], 2, "expected <time>~<uuid>"),
        (&["tsq", "list", "--domain", "Bad; drop"], 3, "invalid domain"),
        (&["--operator", "ops", "tsq", "cancel", "--all", "--dry-run"], 2, "--reason"),
        (
            &[
                "--operator",
                "ops",
                "tsq",
                "complete",
                "00000000-0000-0000-0000-000000000000",
                "--result",
                "{oops",
            ],
            2,
            "not valid JSON",
        ),
        (
            &["--operator", "ops", "tsq", "retry", "00000000-0000-0000-0000-000000000000"],
            3,
            "no command 00000000",
        ),
        (
            &["--operator", " ", "tsq", "retry", "00000000-0000-0000-0000-000000000000"],
            3,
            "invalid operator",
        ),
        (&["audit", "00000000-0000-0000-0000-000000000000"], 3, "no command"),
        (&["--schema", "Bad Schema", "stats"], 3, "invalid schema"),
    ];
    for (args, code, message) in cases {
        let output = cmdbus(&f.schema, args);
        assert_exit(&output, *code);
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
    }
    // No --operator, no $CMDBUS_OPERATOR: the account the CLI runs as,
    // from the system, not a $USER anyone can set.
    let account = std::process::Command::new("id").arg("-un").output().expect("id runs");
    let account = String::from_utf8_lossy(&account.stdout).trim().to_owned();
    let unnamed = std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .env("DATABASE_URL", cmdbus_tests::database_url())
        .env_remove("CMDBUS_OPERATOR")
        .env("USER", "mallory")
        .env_remove("LOGNAME")
        .args(["--schema", &f.schema, "tsq", "retry", &f.ids[0].to_string()])
        .output()
        .expect("runs");
    assert_exit(&unnamed, 0);
    let trail = f.bus.audit_trail_in("cli-it", f.ids[0]).await.expect("audit");
    let retry = trail.iter().find(|e| e.event == cmdbus::AuditEvent::OperatorRetry).expect("retry");
    assert_eq!(retry.details["operator"], account.as_str(), "{trail:?}");
}

#[test]
fn an_unreachable_database_fails_fast_with_exit_code_4() {
    let started = std::time::Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")
        .arg("stats")
        .output()
        .expect("runs");
    assert_exit(&output, 4);
    let text = stderr(&output);
    assert!(
        text.contains("connecting to PostgreSQL at 127.0.0.1:1/postgres as postgres"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "the cause, not a timeout: {text}");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded by the connect timeout");
}

#[test]
fn connection_problems_name_the_server_and_the_cause() {
    let run = |url: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
            .env("DATABASE_URL", url)
            .args(args)
            .output()
            .expect("runs")
    };
    let mysql = run("mysql://root@127.0.0.1:3306/test", &["stats"]);
    assert_exit(&mysql, 2);
    assert!(stderr(&mysql).contains("(mysql) is not a PostgreSQL URL"), "{}", stderr(&mysql));

    let base = cmdbus_tests::database_url();
    let missing = format!("{}/no_such_database", base.rsplit_once('/').expect("path").0);
    let output = run(&missing, &["stats"]);
    assert_exit(&output, 4);
    let text = stderr(&output);
    assert!(text.contains("/no_such_database") && text.contains("does not exist"), "{text}");
    let secret = missing.replacen("postgres@", "postgres:hunter2@", 1);
    let output = run(&secret, &["stats"]);
    assert!(!stderr(&output).contains("hunter2"), "the password is never printed");

    // Under --json the error is JSON too, with the exit code's meaning.
    let output = run(&missing, &["--json", "stats"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stderr).expect("JSON on stderr");
    assert_eq!(report["exit_code"], 4);
    assert_eq!(report["meaning"], "database unreachable or failing");
    assert!(report["causes"][0].as_str().is_some_and(|c| c.contains("does not exist")), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_is_not_an_error_and_help_and_arguments_read_right() {
    let f = fixture().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .env("DATABASE_URL", cmdbus_tests::database_url())
        .env("CMDBUS_SCHEMA", &f.schema)
        .args(["tsq", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    drop(child.stdout.take()); // `| head` that already quit
    let output = child.wait_with_output().expect("waits");
    assert_exit(&output, 0);
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));

    let help = stdout(&cmdbus(&f.schema, &["--help"]));
    assert!(help.contains("[env: CMDBUS_SCHEMA]") && !help.contains("CMDBUS_SCHEMA="), "{help}");
    let id = f.ids[0].to_string();
    let empty = cmdbus(&f.schema, &["--operator", "ops", "tsq", "cancel", &id, "--reason", ""]);
    assert_exit(&empty, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_only_finished_history() {
    let f = fixture().await;
    let (a, b) = (f.ids[0].to_string(), f.ids[1].to_string());
    assert_exit(
        &cmdbus(&f.schema, &["--operator", "ops", "tsq", "cancel", &a, "--reason", "old"]),
        0,
    );
    assert_exit(&cmdbus(&f.schema, &["--operator", "ops", "tsq", "retry", &b]), 0);
    let dry = json(&cmdbus(
        &f.schema,
        &["--json", "--operator", "ops", "prune", "--before", "2099-01-01T00:00:00Z", "--dry-run"],
    ));
    assert_eq!((dry["matched"].as_u64(), dry["acted"].as_u64()), (Some(1), Some(0)));
    let none = cmdbus(&f.schema, &["--operator", "ops", "prune", "--before", "1d"]);
    assert_eq!(stdout(&none).trim(), "pruned 0 finished command(s)");
    let done =
        cmdbus(&f.schema, &["--operator", "ops", "prune", "--before", "2099-01-01T00:00:00Z"]);
    assert_eq!(stdout(&done).trim(), "pruned 1 finished command(s)");
    // The canceled command is gone with its audit trail; the pending and TSQ ones stay.
    assert_exit(&cmdbus(&f.schema, &["audit", &a]), 3);
    let left = f.bus.status_counts(Some("cli-it")).await.expect("counts");
    let left: Vec<(String, i64)> = left.iter().map(|c| (c.status.to_string(), c.count)).collect();
    assert_eq!(left, [("IN_TROUBLESHOOTING_QUEUE".to_owned(), 1), ("PENDING".to_owned(), 1)]);
    // Its query key went with it (migration 0011's trigger); the others' stayed.
    let sql = format!(r#"SELECT command_id FROM "{}".command_keys ORDER BY command_id"#, f.schema);
    let keys: Vec<Uuid> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(f.bus.pool()).await.expect("keys");
    let mut kept: Vec<Uuid> = f.ids.iter().copied().filter(|id| *id != f.ids[0]).collect();
    kept.sort();
    assert_eq!(keys, kept);
}

/// The number of audit events of one command, read straight from the table.
async fn audit_events(f: &Fixture, id: Uuid) -> i64 {
    let sql = format!(r#"SELECT count(*) FROM "{}".audit_trail WHERE command_id = $1"#, f.schema);
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(f.bus.pool())
        .await
        .expect("audit count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_with_one_id_changes_nothing_and_shows_the_item() {
    let f = fixture().await;
    let id = f.ids[0].to_string();
    let before = audit_events(&f, f.ids[0]).await;
    for args in [
        vec!["tsq", "retry", "--dry-run", &id],
        vec!["tsq", "cancel", "--dry-run", &id, "--reason", "test"],
        vec!["tsq", "complete", "--dry-run", &id, "--result", "null"],
    ] {
        // No operator needed: nothing is done on anyone's behalf.
        let output = cmdbus(&f.schema, &args);
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(text.contains(&id) && text.contains("would act on 1 item(s)"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
    }
    let dry = json(&cmdbus(&f.schema, &["--json", "tsq", "retry", "--dry-run", &id]));
    assert_eq!(dry["ids"][0].as_str(), Some(id.as_str()));
    assert_eq!(audit_events(&f, f.ids[0]).await, before, "a dry run writes no audit row");
    let record = f.bus.command::<Ship>(f.ids[0]).await.expect("command");
    assert_eq!(record.status, cmdbus::CommandStatus::InTroubleshootingQueue);

    // A command that is not in the TSQ is named as refused, still without acting.
    assert_exit(&cmdbus(&f.schema, &["--operator", "ops", "tsq", "retry", &id]), 0);
    let preview = stdout(&cmdbus(&f.schema, &["tsq", "cancel", "--dry-run", &id, "--reason", "x"]));
    assert!(
        preview.contains("not in the troubleshooting queue: cancel would refuse it"),
        "{preview}"
    );
    assert!(preview.contains("would act on 0 item(s)"), "{preview}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters_pages_and_json_forms() {
    let f = fixture().await;
    let migrated = json(&cmdbus(&f.schema, &["--json", "migrate"]));
    assert_eq!(migrated["version"], cmdbus_pg::SCHEMA_VERSION);

    // Every filter at once, on both listings.
    let filters = [
        "--domain",
        "cli-it",
        "--type",
        "Ship",
        "--since",
        "1h",
        "--until",
        "2099-01-01T00:00:00Z",
    ];
    let filtered = json(&cmdbus(&f.schema, &[&["--json", "query"][..], &filters].concat()));
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(3));
    let other_type =
        json(&cmdbus(&f.schema, &["--json", "query", "--domain", "cli-it", "--type", "Nope"]));
    assert_eq!(other_type["items"].as_array().map(Vec::len), Some(0));

    // Keyset paging: two pages of 2 and 1, no item twice.
    let first = json(&cmdbus(&f.schema, &["--json", "query", "--limit", "2"]));
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    let second = json(&cmdbus(&f.schema, &["--json", "query", "--limit", "2", "--after", &next]));
    let ids: std::collections::HashSet<_> = [&first, &second]
        .iter()
        .flat_map(|page| page["items"].as_array().expect("items").clone())
        .map(|item| item["command_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    let table = stdout(&cmdbus(&f.schema, &["query", "--limit", "2"]));
    assert!(table.contains("more: --after"), "{table}");
    let tsq_page =
        stdout(&cmdbus(&f.schema, &[&["tsq", "list", "--limit", "1"][..], &filters].concat()));
    assert!(tsq_page.contains("more: --after"), "{tsq_page}");

    let pruned = cmdbus(&f.schema, &["prune", "--before", "2099-01-01T00:00:00Z", "--dry-run"]);
    assert_exit(&pruned, 0);
    let pruned = stdout(&pruned);
    assert!(pruned.contains("dry run: prune would delete 0 finished command(s)"), "{pruned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_acts_in_the_domain_given() {
    let f = fixture().await;
    let id = f.ids[0].to_string();
    let elsewhere =
        cmdbus(&f.schema, &["--operator", "ops", "tsq", "retry", &id, "--domain", "other"]);
    assert_exit(&elsewhere, 3);
    assert!(stderr(&elsewhere).contains("in domain \"other\""), "{}", stderr(&elsewhere));
    let unknown =
        cmdbus(&f.schema, &["--operator", "ops", "tsq", "retry", &Uuid::new_v4().to_string()]);
    assert_exit(&unknown, 3);
    assert!(stderr(&unknown).contains("in any domain"), "{}", stderr(&unknown));
    let preview =
        stdout(&cmdbus(&f.schema, &["tsq", "retry", &id, "--domain", "other", "--dry-run"]));
    assert!(preview.contains("would act on 0 item(s)"), "{preview}");
    let retried =
        cmdbus(&f.schema, &["--operator", "ops", "tsq", "retry", &id, "--domain", "cli-it"]);
    assert_exit(&retried, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_commands_are_listed_and_canceled_before_they_start() {
    let f = fixture().await;
    let later = cmdbus::SendOptions::new().delay(Duration::from_secs(3600));
    let id = f
        .bus
        .send_with(Ship { order: 9, code: "later".into() }, later)
        .await
        .expect("send")
        .command_id()
        .to_string();

    let listed = cmdbus(&f.schema, &["query", "--scheduled"]);
    assert_exit(&listed, 0);
    let text = stdout(&listed);
    assert!(text.contains(&id) && text.contains("PENDING (due "), "{text}");
    assert_eq!(text.lines().count(), 2, "only the scheduled one:\n{text}");

    // A dry run shows what would happen and changes nothing.
    let before = audit_events(&f, id.parse().expect("uuid")).await;
    let dry = cmdbus(&f.schema, &["cancel", &id, "--reason", "order withdrawn", "--dry-run"]);
    assert_exit(&dry, 0);
    assert!(stdout(&dry).contains("cancel would cancel"), "{}", stdout(&dry));
    assert_eq!(audit_events(&f, id.parse().expect("uuid")).await, before);

    let canceled = cmdbus(
        &f.schema,
        &["--operator", "ana@example.com", "cancel", &id, "--reason", "order withdrawn"],
    );
    assert_exit(&canceled, 0);
    let trail = json(&cmdbus(&f.schema, &["--json", "audit", &id]));
    let last = &trail[trail.as_array().expect("entries").len() - 1];
    assert_eq!(last["event"], "OPERATOR_CANCEL");
    assert_eq!(last["details"]["operator"], "ana@example.com");

    // Once it is no longer pending, cancel refuses in plain words; a TSQ item
    // is pointed to `tsq cancel`'s territory by its status.
    let again = cmdbus(&f.schema, &["--operator", "ana", "cancel", &id, "--reason", "x"]);
    assert_exit(&again, 3);
    assert!(stderr(&again).contains("is CANCELED, not pending"), "{}", stderr(&again));
    let tsq = f.ids[0].to_string();
    let dry = cmdbus(&f.schema, &["cancel", &tsq, "--reason", "x", "--dry-run"]);
    assert!(stdout(&dry).contains("not pending: cancel would refuse it"), "{}", stdout(&dry));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_with_dry_runs_and_the_operator_recorded() {
    let f = fixture().await;
    f.bus.send(Ship { order: 7, code: "x".into() }).await.expect("send");
    let actions = || async {
        let sql = format!(r#"SELECT count(*) FROM "{}".operator_actions"#, f.schema);
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(f.bus.pool())
            .await
            .expect("count")
    };
    let before = actions().await;
    let dry =
        cmdbus(&f.schema, &["pause", "cli-it", "--type", "Ship", "--reason", "r", "--dry-run"]);
    assert_exit(&dry, 0);
    assert!(
        stdout(&dry).contains("cli-it/Ship is not paused, with no limit; 1 pending, 0 in flight")
            && stdout(&dry)
                .contains("pause would hold its 1 pending command(s); nothing was changed"),
        "{}",
        stdout(&dry)
    );
    assert!(f.bus.pauses().await.expect("pauses").is_empty(), "a dry run pauses nothing");
    assert_eq!(actions().await, before);

    let paused = cmdbus(
        &f.schema,
        &["--operator", "ana@example.com", "pause", "cli-it", "--reason", "carrier outage"],
    );
    assert_exit(&paused, 0);
    assert_eq!(stdout(&paused).trim(), "paused cli-it (every type)");
    let listed = json(&cmdbus(&f.schema, &["--json", "pauses"]));
    assert_eq!(listed[0]["operator"], "ana@example.com");
    assert_eq!(listed[0]["reason"], "carrier outage");
    assert_eq!(actions().await, before + 1);

    let dry = cmdbus(&f.schema, &["resume", "cli-it", "--dry-run"]);
    assert!(stdout(&dry).contains("resume would release its 1 pending"), "{}", stdout(&dry));
    let resumed = cmdbus(&f.schema, &["--operator", "ana", "resume", "cli-it"]);
    assert_exit(&resumed, 0);
    assert_eq!(stdout(&resumed).trim(), "resumed cli-it (every type)");
    let again = cmdbus(&f.schema, &["--operator", "ana", "resume", "cli-it"]);
    assert_eq!(stdout(&again).trim(), "was not paused: cli-it (every type)");
    assert_eq!(actions().await, before + 2);
    let missing_reason =
        cmdbus(&f.schema, &["--operator", "ana", "pause", "cli-it", "--reason", ""]);
    assert_exit(&missing_reason, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_and_cancel_speak_json_and_tables() {
    let f = fixture().await;
    let op = ["--operator", "ana"];
    let run = |args: &[&str]| cmdbus(&f.schema, &[&op[..], args].concat());

    let paused = run(&["--json", "pause", "cli-it", "--type", "Ship", "--reason", "outage"]);
    assert_eq!(json(&paused)["result"], "paused");
    assert_eq!(
        stdout(&run(&["pause", "cli-it", "--type", "Ship", "--reason", "again"])).trim(),
        "already paused cli-it/Ship"
    );
    let dry = run(&["pause", "cli-it", "--type", "Ship", "--reason", "x", "--dry-run"]);
    assert!(stdout(&dry).contains("pause would change nothing"), "{}", stdout(&dry));
    let dry = json(&run(&["--json", "resume", "cli-it", "--type", "Ship", "--dry-run"]));
    assert_eq!((dry["paused"].as_bool(), dry["dry_run"].as_bool()), (Some(true), Some(true)));
    let table = stdout(&run(&["pauses"]));
    assert!(
        table.starts_with("PAUSED") && table.contains("cli-it/Ship") && table.contains("outage"),
        "{table}"
    );

    let limited = json(&run(&["--json", "limit", "cli-it", "--max-in-flight", "2"]));
    assert_eq!(limited["target"]["domain"], "cli-it");
    let dry = run(&["limit", "cli-it", "--max-in-flight", "3", "--dry-run"]);
    assert!(stdout(&dry).contains("limit would apply to those counts"), "{}", stdout(&dry));
    let table = stdout(&run(&["limits"]));
    assert!(table.starts_with("LIMITED") && table.contains("cli-it (every type)"), "{table}");
    assert_eq!(
        stdout(&run(&["unlimit", "cli-it", "--type", "Ship"])).trim(),
        "had no limit: cli-it/Ship"
    );

    let later = cmdbus::SendOptions::new().delay(Duration::from_secs(3600));
    let id = f.bus.send_with(Ship { order: 5, code: "x".into() }, later).await.expect("send");
    let id = id.command_id().to_string();
    let dry = json(&run(&["--json", "cancel", &id, "--reason", "x", "--dry-run"]));
    assert_eq!(dry["items"][0]["would_cancel"], true);
    let canceled = json(&run(&["--json", "cancel", &id, "--reason", "x"]));
    assert_eq!(canceled["result"], "canceled");
    let unknown = run(&["cancel", &Uuid::nil().to_string(), "--reason", "x", "--dry-run"]);
    assert_exit(&unknown, 3);
}

/// A result is checked against the reply schema the catalog holds before it
/// is stored (the field named when it is wrong, a dry run saying it would
/// refuse); `types` lists what workers and senders recorded; `stats` names
/// a domain with pending work and no live worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_checked_against_the_catalog_and_types_are_listed() {
    let f = fixture().await;
    let id = f.bus.send(ShipExpress { order: 7 }).await.expect("send").command_id();
    let worker = f.bus.worker().domain("cli-it").start().await.expect("worker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while f.bus.command::<ShipExpress>(id).await.expect("get").status
        != cmdbus::CommandStatus::InTroubleshootingQueue
    {
        assert!(tokio::time::Instant::now() < deadline, "never reached the TSQ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    let id_text = id.to_string();
    let complete = |result: &str, extra: &[&str]| {
        let mut args = vec!["--operator", "ops", "tsq", "complete", &id_text, "--result", result];
        args.extend_from_slice(extra);
        cmdbus(&f.schema, &args)
    };

    // The issue's example: a field the reply does not have.
    let wrong = complete(r#"{"wrong_field":"x"}"#, &[]);
    assert_exit(&wrong, 3);
    let message = stderr(&wrong);
    assert!(message.contains("does not match the reply of cli-it/ShipExpress"), "{message}");
    assert!(message.contains(r#""tracking" is a required property"#), "{message}");
    let mistyped = complete(r#"{"tracking":5,"parcels":1}"#, &["--dry-run"]);
    assert_exit(&mistyped, 3);
    assert!(stdout(&mistyped).contains("would refuse the result"), "{}", stdout(&mistyped));
    assert!(stderr(&mistyped).contains("/tracking: 5 is not of type"), "{}", stderr(&mistyped));
    let status = f.bus.command::<ShipExpress>(id).await.expect("get").status;
    assert_eq!(status, cmdbus::CommandStatus::InTroubleshootingQueue, "nothing stored");

    // `tsq show` shows what the result must look like.
    let shown = stdout(&cmdbus(&f.schema, &["tsq", "show", &id_text]));
    assert!(shown.contains("reply schema (catalog version 1"), "{shown}");
    assert!(shown.contains("\"parcels\""), "{shown}");
    let shown = json(&cmdbus(&f.schema, &["--json", "tsq", "show", &id_text]));
    assert_eq!(shown["command_id"], id_text.as_str());
    assert_eq!(shown["catalog"]["reply_schema"]["title"], "Shipped");

    // A well-formed result is stored, and the typed sender decodes it.
    assert_exit(&complete(r#"{"tracking":"T-1","parcels":2}"#, &[]), 0);
    let reply = f.bus.wait_reply::<ShipExpress>(id, Duration::from_secs(5)).await.expect("reply");
    assert_eq!(reply.success(), Some(Shipped { tracking: "T-1".into(), parcels: 2 }));

    // `types`: every type the worker and the sender recorded.
    let table = stdout(&cmdbus(&f.schema, &["types"]));
    for expected in ["HANDLER", "cli-it  Ship ", "ShipExpress", "live", "10s 1m 5m"] {
        assert!(table.contains(expected), "{expected:?} in {table}");
    }
    let listed = json(&cmdbus(&f.schema, &["--json", "types", "--domain", "cli-it"]));
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["command_type"].as_str().expect("name"))
        .collect();
    // `Delivery` is a process: its events are a command type its workers serve.
    assert_eq!(names, ["Delivery", "Ship", "ShipExpress"]);
    assert_eq!(listed[1]["served"]["live"], true);
    assert_eq!(listed[1]["tsq"], 3, "{listed}");
    let one = stdout(&cmdbus(&f.schema, &["types", "--domain", "cli-it", "--type", "ShipExpress"]));
    assert!(one.contains("version 1 reply schema:") && one.contains("\"tracking\""), "{one}");
    let missing = cmdbus(&f.schema, &["types", "--domain", "cli-it", "--type", "Nope"]);
    assert_exit(&missing, 3);
    assert!(
        stderr(&missing).contains("no command type cli-it/Nope is recorded"),
        "{}",
        stderr(&missing)
    );

    // A type the catalog does not know: refused unless the operator vouches.
    let pool = cmdbus_tests::pool().await;
    let forget = format!(r#"DELETE FROM "{}".command_types WHERE command_type = 'Ship'"#, f.schema);
    sqlx::query(sqlx::AssertSqlSafe(forget)).execute(&pool).await.expect("forget");
    let ship = f.ids[0].to_string();
    let unknown =
        cmdbus(&f.schema, &["--operator", "ops", "tsq", "complete", &ship, "--result", "null"]);
    assert_exit(&unknown, 3);
    assert!(
        stderr(&unknown).contains("no reply schema is recorded for cli-it/Ship"),
        "{}",
        stderr(&unknown)
    );
    let vouched = cmdbus(
        &f.schema,
        &["--operator", "ops", "tsq", "complete", &ship, "--result", "null", "--unchecked"],
    );
    assert_exit(&vouched, 0);

    // Work for a domain nothing serves is named by `stats`.
    f.bus.send(Knock {}).await.expect("send to a domain nothing serves");
    let stats = stdout(&cmdbus(&f.schema, &["stats"]));
    assert!(
        stats.contains("warning: domain nobody-home has 1 pending command(s) and no live worker (no worker has ever served it)"),
        "{stats}"
    );
    assert!(!stats.contains("domain cli-it has"), "{stats}");
    let stats = json(&cmdbus(&f.schema, &["--json", "stats"]));
    assert_eq!(stats["unserved"][0]["domain"], "nobody-home");
    assert!(stats["counts"].as_array().is_some_and(|c| !c.is_empty()));
}

/// What ends a batch of shipments: the counts.
#[derive(cmdbus::Command)]
#[command(domain = "cli-it-done")]
struct ShipmentsDone {
    batch: cmdbus::BatchOutcome,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_listed_and_shown_with_their_members_by_status() {
    let f = fixture().await;
    let batch = cmdbus::Batch::new()
        .member(Ship { order: 10, code: "no_stock".into() })
        .and_then(|b| b.member(Knock {}))
        .and_then(|b| b.on_done(|batch| ShipmentsDone { batch }))
        .expect("batch");
    let opened = f.bus.open_batch(batch).await.expect("open");
    let id = opened.batch_id.to_string();
    let other = f.bus.open_batch(cmdbus::Batch::new().member(Knock {}).expect("b")).await;
    let other = other.expect("open").batch_id.to_string();

    let listed = json(&cmdbus(&f.schema, &["--json", "batch", "list", "--limit", "1"]));
    assert_eq!(listed["items"][0]["batch_id"], other, "newest first");
    let next = listed["next"].as_str().expect("a second page").to_owned();
    let page2 = json(&cmdbus(&f.schema, &["--json", "batch", "list", "--after", &next]));
    assert_eq!(page2["items"][0]["batch_id"], id);
    assert_eq!(
        (page2["items"][0]["total"].as_u64(), page2["items"][0]["pending"].as_u64()),
        (Some(2), Some(2))
    );

    let table = cmdbus(&f.schema, &["batch", "list", "--open"]);
    assert_exit(&table, 0);
    assert!(stdout(&table).starts_with("BATCH"), "{}", stdout(&table));
    assert_eq!(stdout(&table).lines().count(), 3, "{}", stdout(&table));

    let shown = cmdbus(&f.schema, &["batch", "show", &id]);
    assert_exit(&shown, 0);
    let text = stdout(&shown);
    assert!(text.contains("members:      2") && text.contains("state:        open"), "{text}");
    assert!(text.contains("completion:   cli-it-done"), "{text}");
    let shown = json(&cmdbus(&f.schema, &["--json", "batch", "show", &id]));
    assert_eq!(shown["completion"][0], "cli-it-done");

    // The TSQ member holding it open is found by its batch, and retried.
    let worker = f.bus.worker().domain("cli-it").poll_interval(Duration::from_millis(20));
    let worker = worker.start().await.expect("worker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let held = loop {
        let listed = json(&cmdbus(&f.schema, &["--json", "tsq", "list", "--batch", &id]));
        if let Some(item) = listed["items"].as_array().and_then(|items| items.first()) {
            break item["command_id"].as_str().expect("id").to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "the member never reached the TSQ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.shutdown().await;
    assert_eq!(held, opened.outcomes[0].command_id().to_string());
    let text = stdout(&cmdbus(&f.schema, &["batch", "show", &id]));
    assert!(text.contains("held by members in the troubleshooting queue"), "{text}");
    let retried = cmdbus(
        &f.schema,
        &["--operator", "ops", "tsq", "retry", "--all", "--batch", &id, "--dry-run"],
    );
    assert_exit(&retried, 0);
    assert!(stdout(&retried).contains(&held), "{}", stdout(&retried));

    let unknown = cmdbus(&f.schema, &["batch", "show", &Uuid::now_v7().to_string()]);
    assert_exit(&unknown, 3);
    assert!(stderr(&unknown).contains("no batch"), "{}", stderr(&unknown));
}

/// A delivery that waits an hour for the courier before shipping.
#[derive(cmdbus::Process)]
#[process(domain = "cli-it", steps(Ship))]
struct Delivery {
    order: u32,
}

impl cmdbus::Process for Delivery {
    type Timeout = ();
    fn start(&mut self, steps: &mut cmdbus::Steps<Self>) {
        steps.timeout_after(Duration::from_secs(3600), ());
    }
    fn on_timeout(&mut self, (): (), steps: &mut cmdbus::Steps<Self>) {
        steps.send(Ship { order: self.order, code: "late".into() });
    }
}

impl cmdbus::Reacts<Ship> for Delivery {
    fn on_reply(&mut self, _: cmdbus::TypedReply<()>, steps: &mut cmdbus::Steps<Self>) {
        steps.fail("shipping failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_are_listed_shown_and_abandoned_with_a_dry_run_first() {
    let schema = cmdbus_tests::fresh_schema();
    let bus =
        PgBus::builder(cmdbus_tests::pool().await).schema(&schema).build().await.expect("bus");
    let id = Uuid::now_v7();
    bus.start_process(id, Delivery { order: 7 }).await.expect("start");
    let worker = bus.worker().domain("cli-it").poll_interval(Duration::from_millis(20));
    let worker = worker.start().await.expect("worker");
    let status = |schema: &str| {
        let shown =
            json(&cmdbus(schema, &["--json", "process", "show", "Delivery", &id.to_string()]));
        shown["process"]["status"].as_str().unwrap_or_default().to_owned()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cmdbus(&schema, &["--json", "process", "show", "Delivery", &id.to_string()]).status.code()
        != Some(0)
        || status(&schema) != "WAITING"
    {
        assert!(tokio::time::Instant::now() < deadline, "the process never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = json(&cmdbus(&schema, &["--json", "process", "list", "--status", "waiting"]));
    assert_eq!(listed["items"][0]["process_id"], id.to_string());
    let none = json(&cmdbus(&schema, &["--json", "process", "list", "--status", "stuck"]));
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let table = stdout(&cmdbus(&schema, &["process", "list", "--type", "Delivery"]));
    assert!(table.contains("WAITING") && table.contains(&id.to_string()), "{table}");
    let shown = stdout(&cmdbus(&schema, &["process", "show", "Delivery", &id.to_string()]));
    assert!(shown.contains("status:       WAITING") && shown.contains("\"order\": 7"), "{shown}");
    // Its history: the start event and the timeout's event, due in an hour.
    assert!(shown.contains("Delivery") && shown.matches("PENDING").count() == 1, "{shown}");
    assert!(shown.contains("COMPLETED"), "{shown}");

    let id_text = id.to_string();
    let abandon =
        ["process", "abandon", "Delivery", id_text.as_str(), "--reason", "order withdrawn"];
    let dry = cmdbus(&schema, &[&abandon[..], &["--dry-run"]].concat());
    assert_exit(&dry, 0);
    assert!(stdout(&dry).contains("nothing changed"), "{}", stdout(&dry));
    assert_eq!(status(&schema), "WAITING", "a dry run changes nothing");
    let retry = cmdbus(&schema, &["--operator", "ops", "process", "retry", "Delivery", &id_text]);
    assert_exit(&retry, 3);
    assert!(stderr(&retry).contains("only a STUCK process can be retried"), "{}", stderr(&retry));
    let done = cmdbus(&schema, &[&["--operator", "ops@example.com"][..], &abandon].concat());
    assert_exit(&done, 0);
    while status(&schema) != "ABANDONED" {
        assert!(tokio::time::Instant::now() < deadline, "the abandon was never handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    let shown = json(&cmdbus(&schema, &["--json", "process", "show", "Delivery", &id_text]));
    assert_eq!(shown["process"]["last_error"]["operator"], "ops@example.com");
    assert_eq!(shown["process"]["last_error"]["abandoned"], "order withdrawn");
    let history = shown["history"].as_array().expect("history");
    assert_eq!(history.len(), 3, "start, timeout, abandon: {history:?}");
    let again = cmdbus(&schema, &[&["--operator", "ops"][..], &abandon].concat());
    assert_exit(&again, 3);
    assert!(stderr(&again).contains("has ended"), "{}", stderr(&again));
    let unknown = cmdbus(&schema, &["process", "show", "Delivery", &Uuid::now_v7().to_string()]);
    assert_exit(&unknown, 3);
    let bad = cmdbus(&schema, &["process", "list", "--status", "done"]);
    assert_exit(&bad, 3);
    assert!(stderr(&bad).contains("unknown process status"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_console_refuses_to_run_without_users_and_serves_its_login() {
    use std::io::{BufRead, Read, Write};

    let fixture = fixture().await;
    let mut hashing = std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cmdbus runs");
    hashing.stdin.take().expect("stdin").write_all(b"s3cret\n").expect("password");
    let hashed = hashing.wait_with_output().expect("hash");
    let hash = stdout(&hashed).trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let dir = std::env::temp_dir().join(format!("cmdbus-web-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (none, some) = (dir.join("none"), dir.join("users"));
    std::fs::write(&none, "# nobody yet\n").expect("file");
    std::fs::write(&some, format!("ann operator {hash}\n")).expect("file");
    for (users, says) in [(dir.join("missing"), "missing"), (none, "names no user")] {
        let refused = cmdbus(&fixture.schema, &["web", "--users", users.to_str().expect("utf-8")]);
        assert_exit(&refused, 2);
        assert!(stderr(&refused).contains(says), "{}", stderr(&refused));
    }

    let mut console = std::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .env("DATABASE_URL", cmdbus_tests::database_url())
        .env("CMDBUS_SCHEMA", &fixture.schema)
        .args(["web", "--listen", "127.0.0.1:0", "--users", some.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cmdbus runs");
    let mut line = String::new();
    std::io::BufReader::new(console.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the address");
    let address = line.split("http://").nth(1).and_then(|l| l.split(' ').next()).expect("address");
    let mut http = std::net::TcpStream::connect(address).expect("console listens");
    http.write_all(b"GET /login HTTP/1.0\r\n\r\n").expect("request");
    let mut response = String::new();
    http.read_to_string(&mut response).expect("response");
    let _ = console.kill();
    let _ = console.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("name=\"password\""), "{response}");
}
