//! The helpers users call in their own unit tests (`cmdbus::testing`).

use std::time::Duration;

use cmdbus::backend::BackendContext;
use cmdbus::{
    CommandStatus, HandlerContext, HandlerError, ReplyStatus, Transport, TypedReply, command,
    handler,
    testing::{
        MemoryBus, assert_sent, context, context_at, run_until_idle, run_until_settled, sent,
    },
};

#[command(domain = "helpers", reply = String)]
struct Greet {
    name: String,
}

#[command(domain = "helpers", max_attempts = 1)]
struct Fail {}

#[handler]
async fn greet(cmd: Greet, ctx: &mut HandlerContext) -> Result<String, HandlerError> {
    Ok(format!("hello {} (attempt {} of {})", cmd.name, ctx.attempt(), ctx.max_attempts()))
}

/// Busy until its last attempt; an hour between attempts.
#[command(domain = "helpers-slow", reply = u32, max_attempts = 3, backoff = ["1h"])]
struct Patient {}

#[handler]
async fn patient(_cmd: Patient, ctx: &mut HandlerContext) -> Result<u32, HandlerError> {
    if ctx.is_last_attempt() {
        return Ok(ctx.attempt());
    }
    Err(HandlerError::transient("busy", "partner busy, try later"))
}

#[handler]
async fn fail(_cmd: Fail) -> Result<(), HandlerError> {
    Err(HandlerError::transient("down", "partner down"))
}

#[tokio::test]
async fn handlers_can_be_called_directly_with_a_detached_context() {
    let mut ctx = context::<Greet>();
    assert_eq!((ctx.domain(), ctx.command_type(), ctx.attempt()), ("helpers", "Greet", 1));
    assert_eq!(ctx.correlation_id(), ctx.command_id());
    assert!(!ctx.is_last_attempt());
    assert_eq!(ctx.lease().command_id, ctx.command_id());
    let before = ctx.lease_expires_at();
    assert!(ctx.extend_lease(Duration::from_secs(120)).await.expect("detached extend") > before);
    assert!(ctx.backend::<cmdbus::testing::MemoryTransport>().is_none());
    assert!(ctx.unit_of_work_mut::<String>().is_none());
    ctx.set_unit_of_work(Box::new(String::from("uow")));
    assert_eq!(ctx.unit_of_work_mut::<String>().map(|s| s.as_str()), Some("uow"));
    assert!(format!("{ctx:?}").contains("unit_of_work: true"));
    let reply = greet(Greet { name: "ada".into() }, &mut ctx).await.expect("ok");
    assert_eq!(reply, "hello ada (attempt 1 of 3)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_commands_are_visible_and_can_be_run_inline() {
    let bus = MemoryBus::in_memory();
    assert!(sent::<Greet>(&bus).is_empty());
    let first = bus.send(Greet { name: "ada".into() }).await.expect("send");
    bus.send(Fail {}).await.expect("send");
    assert_eq!(assert_sent::<Greet>(&bus)[0].name, "ada");
    assert!(!bus.transport().is_idle());
    assert!(run_until_idle(&bus, &["helpers"], Duration::from_secs(5)).await.expect("runs"));
    let reply =
        bus.wait_reply::<Greet>(first.command_id(), Duration::from_secs(1)).await.expect("reply");
    assert_eq!(reply.success().as_deref(), Some("hello ada (attempt 1 of 3)"));
    let records = bus.transport().commands();
    assert_eq!(records[1].status, CommandStatus::InTroubleshootingQueue);
    assert!(format!("{:?}", bus.transport()).contains("commands: 2"));
}

#[tokio::test]
#[should_panic(expected = "expected a helpers/Greet command to have been sent")]
async fn assert_sent_fails_when_nothing_was_sent() {
    assert_sent::<Greet>(&MemoryBus::in_memory());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_retry_and_cancel_in_memory() {
    let bus = MemoryBus::in_memory();
    let memory = bus.transport().clone();
    let tsq = bus.troubleshooting();
    let a = bus.send(Fail {}).await.expect("send").command_id();
    let b = bus.send(Fail {}).await.expect("send").command_id();
    assert!(run_until_idle(&bus, &["helpers"], Duration::from_secs(5)).await.expect("runs"));

    let ops = cmdbus::Operator::new("ops@example.com").expect("valid");
    tsq.retry(a, &ops).await.expect("retry");
    let record = bus.command::<Fail>(a).await.expect("record");
    assert_eq!((record.status, record.attempts), (CommandStatus::Pending, 0));
    assert!(tsq.retry(a, &ops).await.is_err(), "not in the TSQ any more");

    tsq.cancel(b, &ops, "duplicate order").await.expect("cancel");
    let reply = bus.wait_reply::<Fail>(b, Duration::from_secs(1)).await.expect("reply");
    assert_eq!(
        reply,
        TypedReply::Canceled {
            reason: "duplicate order".into(),
            operator: "ops@example.com".into()
        }
    );
    let taken = memory.replies_take(cmdbus::DEFAULT_REPLY_QUEUE, 10).await.expect("take");
    assert_eq!(taken[0].status, ReplyStatus::Canceled);
    assert!(tsq.cancel(uuid::Uuid::nil(), &ops, "x").await.is_err());

    let c = bus.send(Fail {}).await.expect("send").command_id();
    assert!(run_until_idle(&bus, &["helpers"], Duration::from_secs(5)).await.expect("runs"));
    tsq.complete::<Fail>(c, &ops, ()).await.expect("complete");
    assert_eq!(bus.command::<Fail>(c).await.expect("record").status, CommandStatus::Completed);
    let refused = tsq.complete::<Fail>(c, &ops, ()).await;
    assert!(
        matches!(
            refused,
            Err(cmdbus::Error::NotInTroubleshootingQueue { status: CommandStatus::Completed, .. })
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn bus_errors_are_clear() {
    let bus = MemoryBus::in_memory().with_max_payload_bytes(16);
    let error =
        bus.send(Greet { name: "a very long name indeed".into() }).await.expect_err("too large");
    assert_eq!(
        error.to_string(),
        "command helpers/Greet is 34 bytes, over the 16-byte payload limit"
    );
    let missing = bus.command::<Greet>(uuid::Uuid::nil()).await.expect_err("missing");
    assert!(missing.to_string().starts_with("no command 00000000-0000-0000-0000-000000000000"));
    let timeout = bus
        .wait_reply::<Greet>(uuid::Uuid::nil(), Duration::from_millis(20))
        .await
        .expect_err("timeout");
    assert!(timeout.to_string().contains("no reply to command"), "{timeout}");
    assert!(bus.audit_trail_in("Bad Domain", uuid::Uuid::nil()).await.is_err());
    let no_domain = bus.worker().start().await.err().expect("no domain");
    assert_eq!(no_domain.to_string(), "worker has no domain to serve; call .domain(\"...\")");
    let unknown = bus.worker().domain("nobody-home").start().await.err().expect("no handlers");
    assert!(unknown.to_string().contains("\"nobody-home\", which has no handler"), "{unknown}");
    let all = bus
        .worker()
        .all_domains()
        .worker_id("w1")
        .batch_size(0)
        .start()
        .await
        .expect("all domains");
    assert_eq!(all.id(), "w1");
    all.shutdown().await;
}

#[test]
fn reply_decoding_reports_the_expected_type() {
    let reply = cmdbus::Reply::new(
        "helpers".into(),
        uuid::Uuid::nil(),
        uuid::Uuid::nil(),
        "default".into(),
        ReplyStatus::Success,
        serde_json::value::to_raw_value(&42).expect("json"),
        chrono_now(),
    );
    let error = reply.typed::<String>().expect_err("not a string");
    assert!(error.to_string().contains("does not decode as alloc::string::String"), "{error}");
    assert_eq!(reply.typed::<u8>().expect("u8").success(), Some(42));
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_worker_handle_stops_it() {
    let bus = MemoryBus::in_memory();
    let worker = bus
        .worker()
        .domain("helpers")
        .poll_interval(Duration::from_millis(10))
        .start()
        .await
        .expect("worker");
    drop(worker);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = bus.send(Greet { name: "nobody".into() }).await.expect("send").command_id();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let record = bus.command::<Greet>(id).await.expect("stored");
    assert_eq!(record.status, CommandStatus::Pending, "a dropped worker leases nothing");
}

/// A handler's behaviour at its last attempt, tested with public helpers only.
#[tokio::test]
async fn a_handler_is_unit_tested_at_attempt_three() {
    let first = patient(Patient {}, &mut context_at::<Patient>(1)).await;
    assert_eq!(first.expect_err("busy").code(), "busy");
    let last = patient(Patient {}, &mut context_at::<Patient>(3)).await;
    assert_eq!(last.expect("succeeds at its last attempt"), 3);
}

/// `run_until_idle` stops while a retry waits out its backoff;
/// `run_until_settled` runs the retries too, skipping two hours of backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bus_runs_until_every_retry_has_settled() {
    let bus = MemoryBus::in_memory();
    let id = bus.send(Patient {}).await.expect("send").command_id();
    let later = bus
        .send_with(Patient {}, cmdbus::SendOptions::new().delay(Duration::from_secs(86_400)))
        .await
        .expect("send")
        .command_id();
    assert!(run_until_idle(&bus, &["helpers-slow"], Duration::from_secs(5)).await.expect("runs"));
    let waiting = bus.command::<Patient>(id).await.expect("get");
    assert_eq!((waiting.status, waiting.attempts), (CommandStatus::Pending, 1));
    assert!(!bus.transport().is_settled());

    let started = std::time::Instant::now();
    assert!(
        run_until_settled(&bus, &["helpers-slow"], Duration::from_secs(10)).await.expect("runs")
    );
    assert!(started.elapsed() < Duration::from_secs(5), "backoff was slept through");
    for id in [id, later] {
        let reply = bus.wait_reply::<Patient>(id, Duration::from_secs(1)).await.expect("reply");
        assert_eq!(reply.success(), Some(3), "settled at attempt 3");
    }
    assert!(bus.transport().is_settled() && bus.transport().next_due_in().is_none());
}

/// What `send` returns is typed by the command: its reply, record and
/// trail need no turbofish; a refusal or a cancel is an error of
/// `into_result`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_handle_reads_its_own_command() {
    let bus = MemoryBus::in_memory();
    let worker = bus.worker().domain("helpers").start().await.expect("worker");
    let sent = bus.send(Greet { name: "ada".into() }).await.expect("send");
    assert!(!sent.is_duplicate() && format!("{sent:?}").contains("helpers/Greet"));
    let reply = sent.wait_reply(Duration::from_secs(5)).await.expect("reply");
    assert_eq!(reply.into_result().as_deref(), Ok("hello ada (attempt 1 of 3)"));
    assert_eq!(sent.record().await.expect("record").status, CommandStatus::Completed);
    assert_eq!(sent.audit_trail().await.expect("trail").len(), 3);
    let again = bus
        .send_with(
            Greet { name: "bob".into() },
            cmdbus::SendOptions::new().command_id(sent.command_id()),
        )
        .await
        .expect("send again");
    assert!(again.is_duplicate() && again.outcome().command_id() == sent.command_id());
    worker.shutdown().await;

    let refused: TypedReply<u32> = TypedReply::Failed {
        code: "insufficient_funds".into(),
        message: "balance too low".into(),
        details: None,
    };
    let error = refused.into_result().expect_err("refused");
    assert_eq!(error.to_string(), "the command was refused: insufficient_funds: balance too low");
    let canceled: Result<u32, cmdbus::NotCompleted> =
        TypedReply::Canceled { reason: "duplicate order".into(), operator: "ada".into() }.into();
    assert_eq!(
        canceled.expect_err("canceled").to_string(),
        "the command was canceled by ada: duplicate order"
    );
}

#[command(domain = "helpers", reply = ())]
struct PlaceOrder {
    order: String,
}

#[command(domain = "helpers-shipping")]
struct Ship {
    order: String,
}

#[handler]
async fn place_order(cmd: PlaceOrder, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    ctx.send(Ship { order: cmd.order }).await?;
    Ok(())
}

#[handler]
async fn ship(_cmd: Ship) -> Result<(), HandlerError> {
    Ok(())
}

/// A handler that sends is unit-tested by calling it: what it sent is
/// recorded on the context; an id sent twice is a duplicate there too.
#[tokio::test]
async fn what_a_handler_sends_is_seen_on_its_context() {
    let mut ctx = context::<PlaceOrder>();
    place_order(PlaceOrder { order: "o-1".into() }, &mut ctx).await.expect("placed");
    let shipped: Vec<String> = ctx.sent::<Ship>().into_iter().map(|s| s.order).collect();
    assert_eq!(shipped, ["o-1"]);
    assert!(ctx.sent::<Greet>().is_empty());
    let id = uuid::Uuid::now_v7();
    let options = || cmdbus::SendOptions::new().command_id(id);
    let first = ctx.send_with(Ship { order: "o-2".into() }, options()).await.expect("send");
    let again = ctx.send_with(Ship { order: "o-2".into() }, options()).await.expect("send");
    assert!(!first.is_duplicate() && again.is_duplicate());
    assert_eq!(ctx.sent::<Ship>().len(), 2);
}

/// On a memory bus, the follow-up is stored with the completion and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_sent_by_a_handler_runs_on_a_memory_bus() {
    let bus = MemoryBus::in_memory();
    let placed = bus.send(PlaceOrder { order: "o-3".into() }).await.expect("send");
    let domains = ["helpers", "helpers-shipping"];
    assert!(run_until_settled(&bus, &domains, Duration::from_secs(5)).await.expect("runs"));
    let shipped = sent::<Ship>(&bus);
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].order, "o-3");
    let records = bus.transport().commands();
    let ship = records.iter().find(|r| r.command_type == "Ship").expect("stored");
    assert_eq!(ship.correlation_id, placed.command_id());
}
