//! Bad input: each case gets a clear error, and nothing already stored is
//! lost or altered. (More cases live next to their feature: UI tests for the
//! macros, CLI tests for arguments, `pg.rs` for schema versions.)

use std::time::Duration;

use cmdbus::backend::NewCommand;
use cmdbus::{
    CommandStatus, Error, HandlerError, Operator, SendOptions, Transport, TypedReply, command,
    handler,
};
use cmdbus_pg::{CommandQuery, PgBus};
use cmdbus_tests::pg_bus;
use serde_json::value::RawValue;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

const DOMAIN: &str = "bad-it";
const WAIT: Duration = Duration::from_secs(20);

#[command(domain = "bad-it", reply = u32)]
struct Order {
    quantity: u32,
}

#[handler]
async fn order(cmd: Order) -> Result<u32, HandlerError> {
    match cmd.quantity {
        666 => Err(HandlerError::permanent("huge", "é".repeat(600_000))),
        667 => Err(HandlerError::permanent("nul", "bad\0byte and \u{1b}[31m escape")),
        n => Ok(n),
    }
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

fn new_command(domain: &str, command_type: &str, payload: &str) -> NewCommand {
    let id = Uuid::now_v7();
    NewCommand::new(domain.into(), command_type.into(), id, id, "default".into(), 3, raw(payload))
}

async fn edit(bus: &PgBus, set: &str, id: Uuid) {
    let sql = format!(
        r#"UPDATE "{}".commands SET {set} WHERE command_id = $1"#,
        bus.transport().schema()
    );
    cmdbus_tests::edit_as_dba(bus, &sql, id).await;
}

async fn settle(bus: &PgBus, id: Uuid) -> cmdbus::CommandRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let record = bus.command::<Order>(id).await.expect("record");
        if !matches!(record.status, CommandStatus::Pending | CommandStatus::InProgress) {
            return record;
        }
        assert!(tokio::time::Instant::now() < deadline, "never settled: {record:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn count(bus: &PgBus) -> i64 {
    let sql = format!(r#"SELECT count(*) FROM "{}".commands"#, bus.transport().schema());
    sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(bus.pool()).await.expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_edited_into_garbage_fail_clearly_and_keep_their_payload() {
    let bus = pg_bus().await;
    let cases = [
        ("'[1, 2]'", "trailing characters"),
        ("'42'", "invalid type: integer"),
        ("'null'", "invalid type: null"),
        (r#"'{"quantity": -1}'"#, "invalid value: integer `-1`"),
    ];
    let mut ids = Vec::new();
    for (payload, _) in cases {
        let id = bus.send(Order { quantity: 1 }).await.expect("send").command_id();
        edit(&bus, &format!("payload = {payload}"), id).await;
        ids.push(id);
    }
    // A garbage trace context and a garbage last_error do not stop anything.
    let traced = bus.send(Order { quantity: 7 }).await.expect("send").command_id();
    edit(&bus, "traceparent = 'not-a-trace', last_error = '{\"weird\": true}'", traced).await;
    let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
    for (id, (payload, expected)) in ids.iter().zip(cases) {
        let record = settle(&bus, *id).await;
        assert_eq!(record.status, CommandStatus::InTroubleshootingQueue, "{payload}");
        let error = record.last_error.expect("error");
        assert_eq!(error.code, "decode");
        assert!(error.message.contains(expected), "{payload}: {}", error.message);
        let kept: serde_json::Value = serde_json::from_str(record.payload.get()).expect("json");
        let edited: serde_json::Value =
            serde_json::from_str(payload.trim_matches('\'')).expect("json");
        assert_eq!(kept, edited, "payload kept as edited");
    }
    assert_eq!(bus.wait_reply::<Order>(traced, WAIT).await.expect("reply"), TypedReply::Success(7));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_are_refused_before_anything_is_stored() {
    let bus = pg_bus().await;
    let transport = bus.transport();
    let cases = [
        ("", "Order", "invalid domain \"\": it is empty"),
        (&*"d".repeat(64), "Order", "it is too long"),
        ("bad-it\"; drop table commands; --", "Order", "not allowed"),
        ("bad-it", "", "invalid command type \"\": it is empty"),
        ("bad-it", "Order'); DELETE FROM x; --", "not allowed"),
        ("bad-it", &*"T".repeat(129), "it is too long"),
    ];
    for (domain, command_type, message) in cases {
        let error = transport
            .commands_send(vec![new_command(domain, command_type, "{}")])
            .await
            .expect_err("refused");
        assert!(matches!(error, Error::InvalidName { .. }), "{error}");
        assert!(error.to_string().contains(message), "{error}");
    }
    // One bad command refuses the whole batch: all or none.
    let batch =
        vec![new_command("bad-it", "Order", "{}"), new_command("Bad Domain", "Order", "{}")];
    assert!(transport.commands_send(batch).await.is_err());
    assert_eq!(count(&bus).await, 0, "nothing stored");
    for query in
        [CommandQuery::new().domain("x; drop"), CommandQuery::new().command_type("bad-it", "a b")]
    {
        assert!(matches!(bus.query(&query).await, Err(Error::InvalidName { .. })));
    }
    let empty_queue = bus
        .send_with(Order { quantity: 1 }, SendOptions::new().reply_to(" "))
        .await
        .expect_err("empty");
    assert!(empty_queue.to_string().starts_with("invalid reply queue"), "{empty_queue}");
    assert!(Operator::new("").is_err() && Operator::new("a\u{7}b").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_unstorable_payloads_are_refused_whole() {
    let bus = pg_bus().await;
    let existing = bus.send(Order { quantity: 3 }).await.expect("send").command_id();
    // Over the configured limit: refused before the database.
    let small = PgBus::builder(bus.pool().clone())
        .schema(bus.transport().schema())
        .max_payload_bytes(10)
        .build()
        .await
        .expect("bus");
    let error = small.send(Order { quantity: 123_456 }).await.expect_err("too large");
    assert_eq!(
        error.to_string(),
        "command bad-it/Order is 19 bytes, over the 10-byte payload limit"
    );
    // Valid JSON that PostgreSQL's jsonb cannot store (a NUL escape): a clear database error.
    let nul = new_command("bad-it", "Order", r#"{"quantity": 1, "note": "a\u0000b"}"#);
    let error = bus.transport().commands_send(vec![nul]).await.expect_err("jsonb refuses NUL");
    assert!(matches!(error, Error::Backend { .. }), "{error}");
    let chain = format!(
        "{error}: {}",
        std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default()
    );
    assert!(
        chain.contains("sending a command") && chain.contains("unsupported Unicode escape"),
        "{chain}"
    );
    assert_eq!(count(&bus).await, 1, "only the first command exists");
    assert_eq!(
        bus.command::<Order>(existing).await.expect("intact").status,
        CommandStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_unsafe_error_messages_are_stored_safely() {
    let bus = pg_bus().await;
    let huge = bus.send(Order { quantity: 666 }).await.expect("send").command_id();
    let nul = bus.send(Order { quantity: 667 }).await.expect("send").command_id();
    let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
    let huge = settle(&bus, huge).await;
    let nul = settle(&bus, nul).await;
    worker.shutdown().await;
    let message = huge.last_error.expect("error").message;
    assert!(
        message.len() <= cmdbus::Failure::MAX_MESSAGE_BYTES && message.ends_with("[truncated]"),
        "{}",
        message.len()
    );
    let message = nul.last_error.expect("error").message;
    assert_eq!(message, "badbyte and \u{1b}[31m escape", "NUL dropped, the rest kept verbatim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_of_the_wrong_shape_is_a_decode_error_not_a_panic() {
    let bus = pg_bus().await;
    let id = bus.send(Order { quantity: 666 }).await.expect("send").command_id();
    let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
    settle(&bus, id).await;
    worker.shutdown().await;
    let ops = Operator::new("ops").expect("operator");
    // Checked, the result is refused; an operator who vouches for it
    // unchecked stores it, and the sender gets a decode error, not a panic.
    let wrong = serde_json::json!({"not": "a number"});
    let refused = bus.troubleshooting().complete_json(id, &ops, &wrong).await;
    assert!(matches!(refused, Err(Error::ResultMismatch { .. })), "{refused:?}");
    bus.troubleshooting().unchecked().complete_json(id, &ops, &wrong).await.expect("complete");
    let error = bus.wait_reply::<Order>(id, WAIT).await.expect_err("wrong shape");
    assert!(matches!(error, Error::ReplyDecode { .. }), "{error}");
    assert!(error.to_string().contains("does not decode as u32"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_sends_within_the_timeout() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/postgres")
        .expect("lazy pool");
    let started = std::time::Instant::now();
    let error = PgBus::builder(pool).build().await.expect_err("unreachable");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the acquire timeout");
    assert!(matches!(error, Error::Backend { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_statuses_that_do_not_exist() {
    let bus = pg_bus().await;
    let id = bus.send(Order { quantity: 1 }).await.expect("send").command_id();
    let sql = format!(
        r#"UPDATE "{}".commands SET status = 'DONE' WHERE command_id = $1"#,
        bus.transport().schema()
    );
    let error = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .execute(bus.pool())
        .await
        .expect_err("check constraint");
    assert!(error.to_string().contains("commands_status_check"), "{error}");
    assert_eq!(
        bus.send_with(Order { quantity: 1 }, SendOptions::new().max_attempts(0))
            .await
            .map(|o| o.is_duplicate())
            .ok(),
        Some(false)
    );
}
