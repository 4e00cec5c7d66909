//! The conformance suite every [`Transport`] must pass. **For backend authors.**
//!
//! [`conformance_suite!`](crate::conformance_suite) expands to one
//! `#[tokio::test]` per case; give it an async factory that returns a fresh,
//! empty transport (its own database or schema) for each test:
//!
//! ```ignore
//! cmdbus::conformance_suite!(|| async { my_backend::connect_fresh().await });
//! ```
//!
//! Cases use the domain [`DOMAIN`] and millisecond backoffs.

use std::{collections::HashSet, time::Duration};

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    AuditEvent, Bus, CommandStatus, CommandsLease, ErrorKind, HandlerContext, HandlerError,
    LeaseRef, NewCommand, Outcome, OutcomeKind, RecordResult, SendOptions, Transition, Transport,
    TsqReason, TypedReply, Worker, command, handler,
};

mod processes;

pub use processes::*;

/// The domain of the suite's commands.
pub const DOMAIN: &str = "cmdbus-conformance";

/// Replies with its text.
#[command(domain = "cmdbus-conformance", reply = String)]
pub struct Echo {
    /// Echoed back.
    pub text: String,
}

/// Fails transiently until attempt `fail_times + 1`; replies with the attempt.
#[command(domain = "cmdbus-conformance", reply = u32, max_attempts = 3, backoff = ["20ms"])]
pub struct Flaky {
    /// How many attempts fail.
    pub fail_times: u32,
}

/// Refused by a business rule.
#[command(domain = "cmdbus-conformance")]
pub struct Refuse {}

/// Fails permanently.
#[command(domain = "cmdbus-conformance")]
pub struct Broken {}

/// Panics until attempt `times + 1`.
#[command(domain = "cmdbus-conformance", max_attempts = 3, backoff = ["20ms"])]
pub struct Panics {
    /// How many attempts panic.
    pub times: u32,
}

/// Charges an account; a closed one is refused permanently (an operator
/// corrects the payload).
#[command(domain = "cmdbus-conformance")]
pub struct Charge {
    /// The account; `"closed"` fails.
    pub account: String,
    /// How much.
    pub amount: u32,
}

/// Sleeps, extending its lease first.
#[command(domain = "cmdbus-conformance")]
pub struct Sleep {
    /// How long.
    pub ms: u64,
}

/// Sleeps without touching its lease, counting its runs.
#[command(domain = "cmdbus-conformance")]
pub struct Long {
    /// How long.
    pub ms: u64,
}

/// Never returns; its type stops it after 100 ms.
#[command(domain = "cmdbus-conformance", timeout = "100ms", max_attempts = 2, backoff = ["10ms"])]
pub struct Hang {}

/// Sends an [`Echo`] with id `next` from its handler, twice (the second
/// is a duplicate, its reply says so), then fails permanently if `fail`.
#[command(domain = "cmdbus-conformance", reply = bool, max_attempts = 1)]
pub struct Chain {
    /// The id of the Echo it sends.
    pub next: Uuid,
    /// Fail after sending.
    pub fail: bool,
}

#[handler]
async fn chain(cmd: Chain, ctx: &mut HandlerContext) -> Result<bool, HandlerError> {
    let echo = || Echo { text: "chained".into() };
    ctx.send_with(echo(), SendOptions::new().command_id(cmd.next)).await?;
    let again = ctx.send_with(echo(), SendOptions::new().command_id(cmd.next)).await?;
    if cmd.fail {
        return Err(HandlerError::permanent("chain_failed", "failed after sending"));
    }
    Ok(again.is_duplicate())
}

/// A batch's completion command: how the batch ended.
#[command(domain = "cmdbus-conformance")]
pub struct BatchDone {
    /// The counts, filled in when it is sent.
    pub batch: crate::BatchOutcome,
}

#[handler]
async fn batch_done(_cmd: BatchDone) -> Result<(), HandlerError> {
    Ok(())
}

/// Fails permanently the first time it runs in this process, then succeeds.
#[command(domain = "cmdbus-conformance")]
pub struct FailsOnce {}

static FAILED_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[handler]
async fn fails_once(_cmd: FailsOnce) -> Result<(), HandlerError> {
    if !FAILED_ONCE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(HandlerError::permanent("first_run", "fails the first time"));
    }
    Ok(())
}

/// Runs of [`Long`] in this process (each case runs in its own process
/// under nextest; the count is compared before and after).
static LONG_RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[handler]
async fn long(cmd: Long) -> Result<(), HandlerError> {
    LONG_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(cmd.ms)).await;
    Ok(())
}

#[handler]
async fn hang(_cmd: Hang) -> Result<(), HandlerError> {
    std::future::pending::<()>().await;
    Ok(())
}

#[handler]
async fn echo(cmd: Echo) -> Result<String, HandlerError> {
    Ok(cmd.text)
}

#[handler]
async fn flaky(cmd: Flaky, ctx: &mut HandlerContext) -> Result<u32, HandlerError> {
    if ctx.attempt() <= cmd.fail_times {
        return Err(std::io::Error::other(format!("flaky attempt {}", ctx.attempt())).into());
    }
    Ok(ctx.attempt())
}

#[handler]
async fn refuse(_cmd: Refuse) -> Result<(), HandlerError> {
    Err(HandlerError::business_rule("insufficient_funds", "balance too low"))
}

#[handler]
async fn broken(_cmd: Broken) -> Result<(), HandlerError> {
    Err(HandlerError::permanent("bad_account", "account does not exist"))
}

#[handler]
async fn panics(cmd: Panics, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    assert!(ctx.attempt() > cmd.times, "conformance panic on attempt {}", ctx.attempt());
    Ok(())
}

#[handler]
async fn charge(cmd: Charge) -> Result<(), HandlerError> {
    if cmd.account == "closed" {
        return Err(HandlerError::permanent("account_closed", "the account is closed"));
    }
    Ok(())
}

#[handler]
async fn sleep(cmd: Sleep, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    ctx.extend_lease(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(cmd.ms)).await;
    Ok(())
}

/// Expands to one test per conformance case, each on a fresh transport.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@cases $factory;
            send_lease_complete,
            duplicate_send_is_idempotent,
            batch_send_reports_each_command,
            leases_are_exclusive,
            a_batch_is_leased_in_send_order,
            higher_priorities_lead_and_the_oldest_share_prevents_starvation,
            visibility_timeout_redelivers,
            a_crashed_attempt_is_retried_after_its_backoff,
            transient_failure_retries_then_succeeds,
            transient_failure_exhausts_into_tsq,
            permanent_failure_goes_to_tsq,
            business_rule_failure_replies_failed,
            panic_counts_as_transient,
            undecodable_payload_goes_to_tsq,
            unknown_type_goes_to_tsq,
            max_attempts_at_send_overrides_type,
            shutdown_finishes_in_flight_handlers,
            shutdown_releases_unfinished_handlers,
            lease_can_be_extended,
            leases_are_extended_together,
            a_handler_longer_than_the_visibility_timeout_runs_once,
            a_hung_handler_is_stopped_and_ends_in_the_tsq,
            commands_leased_ahead_are_kept_alive_and_given_back,
            retry_runs_when_due_not_at_the_next_poll,
            a_delayed_command_runs_when_due_not_before,
            a_pending_command_is_canceled_before_it_starts,
            paused_work_stays_pending_until_resumed,
            queue_stats_count_up_to_a_bound_and_age_from_the_oldest,
            a_limit_caps_commands_in_flight,
            a_rate_limit_spreads_leases_over_time,
            a_batch_with_an_invalid_command_stores_nothing,
            the_catalog_keeps_each_version_and_who_serves_it,
            the_operator_api_lists_and_acts_on_the_tsq,
            an_operator_corrects_a_payload_and_retries_it,
            a_handler_sends_with_its_completion_or_not_at_all,
            a_batch_carries_options_per_command_and_is_idempotent,
            a_batch_completion_is_sent_once_when_every_member_has_ended,
            a_member_in_the_tsq_holds_its_batch_open_until_an_operator_acts,
            a_process_runs_its_steps_and_completes,
            a_failed_step_is_compensated_in_reverse_order_each_awaited,
            a_failed_compensation_is_stuck_until_an_operator_acts,
            a_process_timeout_fires_and_drives_it_on,
            a_duplicate_event_is_ignored,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let transport = ($factory)().await;
                $crate::conformance::$case(transport).await;
            }
        )*
    };
}

const WAIT: Duration = Duration::from_secs(10);

async fn worker<T: Transport>(bus: &Bus<T>) -> Worker {
    bus.worker()
        .domain(DOMAIN)
        .concurrency(4)
        .poll_interval(Duration::from_millis(50))
        .rescue_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("worker starts")
}

/// A worker whose fallback poll (30 s) never fires in a case: what it does
/// on time, it does because it was woken or knew when to wake.
async fn rarely_polling_worker<T: Transport>(bus: &Bus<T>) -> Worker {
    bus.worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_secs(30))
        .start()
        .await
        .expect("worker starts")
}

/// Polls until the command reaches `status`.
async fn wait_for<T: Transport>(
    transport: &T,
    command_id: Uuid,
    status: CommandStatus,
) -> crate::CommandRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let record = transport.command_get(DOMAIN, command_id).await.expect("get").expect("exists");
        if record.status == status {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "command stuck in {} (wanted {status})",
            record.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn events<T: Transport>(transport: &T, command_id: Uuid) -> Vec<AuditEvent> {
    transport
        .audit_list(DOMAIN, command_id)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn raw(command_type: &str, payload: &str) -> NewCommand {
    let id = Uuid::now_v7();
    NewCommand::new(
        DOMAIN.to_owned(),
        command_type.to_owned(),
        id,
        id,
        crate::DEFAULT_REPLY_QUEUE.to_owned(),
        3,
        RawValue::from_string(payload.to_owned()).expect("valid json"),
    )
}

fn lease_params(limit: usize, visibility: Duration) -> CommandsLease {
    CommandsLease::new(vec![DOMAIN.to_owned()], limit, visibility, "conformance".to_owned())
}

/// Send → lease → complete → one SUCCESS reply; audited in order.
pub async fn send_lease_complete<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let correlation = Uuid::now_v7();
    let sent = bus
        .send_with(Echo { text: "hi".into() }, SendOptions::new().correlation_id(correlation))
        .await
        .expect("send");
    assert!(!sent.is_duplicate());
    let pending = bus.command::<Echo>(sent.command_id()).await.expect("stored");
    assert_eq!(
        (pending.status, pending.attempts, pending.correlation_id),
        (CommandStatus::Pending, 0, correlation)
    );
    let worker = worker(&bus).await;
    let reply = bus.wait_reply::<Echo>(sent.command_id(), WAIT).await.expect("reply");
    assert_eq!(reply, TypedReply::Success("hi".to_owned()));
    let record = wait_for(&transport, sent.command_id(), CommandStatus::Completed).await;
    assert_eq!(record.attempts, 1);
    worker.shutdown().await;
    assert_eq!(
        events(&transport, sent.command_id()).await,
        [AuditEvent::Sent, AuditEvent::Received, AuditEvent::Completed]
    );
    let replies = bus.take_replies(crate::DEFAULT_REPLY_QUEUE, 10).await.expect("take");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].correlation_id, correlation);
    assert_eq!(replies[0].typed::<String>().expect("typed"), TypedReply::Success("hi".to_owned()));
    assert!(bus.take_replies(crate::DEFAULT_REPLY_QUEUE, 10).await.expect("take").is_empty());
    assert!(bus.wait_reply::<Echo>(sent.command_id(), WAIT).await.is_ok(), "still readable");
}

/// The same id twice: one command, the first payload kept, a Duplicate outcome.
pub async fn duplicate_send_is_idempotent<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = Uuid::now_v7();
    let first = bus
        .send_with(Echo { text: "first".into() }, SendOptions::new().command_id(id))
        .await
        .expect("send");
    let second = bus
        .send_with(Echo { text: "second".into() }, SendOptions::new().command_id(id))
        .await
        .expect("send");
    assert_eq!(first.outcome(), crate::SendOutcome::Accepted { command_id: id });
    assert_eq!(second.outcome(), crate::SendOutcome::Duplicate { command_id: id });
    let record = bus.command::<Echo>(id).await.expect("stored");
    let payload: serde_json::Value = serde_json::from_str(record.payload.get()).expect("json");
    assert_eq!(payload, serde_json::json!({ "text": "first" }));
    assert_eq!(events(&transport, id).await, [AuditEvent::Sent]);
}

/// A batch stores every new command and reports existing ids as duplicates.
pub async fn batch_send_reports_each_command<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let outcomes =
        bus.send_batch((0..10).map(|i| Echo { text: i.to_string() })).await.expect("batch");
    assert_eq!(outcomes.len(), 10);
    assert!(outcomes.iter().all(|o| !o.is_duplicate()));
    let existing = outcomes[3].command_id();
    let again = transport
        .commands_send(vec![
            bus.prepare(&Echo { text: "x".into() }, SendOptions::new().command_id(existing))
                .expect("prepare"),
            bus.prepare(&Echo { text: "y".into() }, SendOptions::new()).expect("prepare"),
        ])
        .await
        .expect("send");
    assert!(again[0].is_duplicate() && !again[1].is_duplicate());
    assert!(bus.send_batch(Vec::<Echo>::new()).await.expect("empty").is_empty());

    // One new id twice in one batch: the first is stored, the second told so.
    let id = Uuid::now_v7();
    let twice = transport
        .commands_send(vec![
            bus.prepare(&Echo { text: "first".into() }, SendOptions::new().command_id(id))
                .expect("prepare"),
            bus.prepare(&Echo { text: "second".into() }, SendOptions::new().command_id(id))
                .expect("prepare"),
        ])
        .await
        .expect("send");
    assert_eq!(
        twice,
        [
            crate::SendOutcome::Accepted { command_id: id },
            crate::SendOutcome::Duplicate { command_id: id }
        ]
    );
    let record = bus.command::<Echo>(id).await.expect("stored");
    let payload: serde_json::Value = serde_json::from_str(record.payload.get()).expect("json");
    assert_eq!(payload, serde_json::json!({ "text": "first" }));
    assert_eq!(events(&transport, id).await, [AuditEvent::Sent]);
}

/// Concurrent leases never hand one command to two holders.
pub async fn leases_are_exclusive<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    bus.send_batch((0..40).map(|i| Echo { text: i.to_string() })).await.expect("batch");
    let leases = (0..4).map(|_| {
        let transport = transport.clone();
        tokio::spawn(async move {
            transport.commands_lease(lease_params(15, Duration::from_secs(30))).await
        })
    });
    let mut seen = HashSet::new();
    for lease in leases {
        for command in lease.await.expect("join").expect("lease") {
            assert_eq!(command.attempt, 1);
            assert!(seen.insert(command.command_id), "leased twice: {}", command.command_id);
        }
    }
    assert_eq!(seen.len(), 40);
    assert!(
        transport
            .commands_lease(lease_params(10, Duration::from_secs(30)))
            .await
            .expect("lease")
            .is_empty()
    );
}

/// Commands due at the same instant (a batch shares one) are leased in the
/// order they were sent.
pub async fn a_batch_is_leased_in_send_order<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let sent: Vec<Uuid> = bus
        .send_batch((0..50).map(|i| Echo { text: i.to_string() }))
        .await
        .expect("send")
        .iter()
        .map(crate::SendOutcome::command_id)
        .collect();
    let mut leased = Vec::new();
    for _ in 0..5 {
        let batch = transport
            .commands_lease(lease_params(10, Duration::from_secs(30)))
            .await
            .expect("lease");
        leased.extend(batch.iter().map(|c| c.command_id));
    }
    assert_eq!(leased, sent);
}

/// Due commands are leased by priority (higher first, FIFO within one);
/// the oldest-first share of a lease takes the oldest whatever its priority.
pub async fn higher_priorities_lead_and_the_oldest_share_prevents_starvation<T: Transport>(
    transport: T,
) {
    let bus = Bus::new(transport.clone());
    let send = |text: &'static str, priority: i16| {
        let bus = bus.clone();
        async move {
            let options = crate::SendOptions::new().priority(priority);
            bus.send_with(Echo { text: text.into() }, options).await.expect("send").command_id()
        }
    };
    let (a1, a2, h1, z1, h2) = (
        send("a1", 0).await,
        send("a2", 0).await,
        send("h1", 10).await,
        send("z1", -5).await,
        send("h2", 10).await,
    );
    let leased: Vec<Uuid> = transport
        .commands_lease(lease_params(5, Duration::from_secs(30)))
        .await
        .expect("lease")
        .iter()
        .map(|c| c.command_id)
        .collect();
    assert_eq!(leased, [h1, h2, a1, a2, z1]);

    // The lowest priority, sent first, is taken by the oldest-first share.
    let (low, high) = (send("low", -5).await, send("high", 10).await);
    let lease =
        |oldest_first| lease_params(1, Duration::from_secs(30)).with_oldest_first(oldest_first);
    let first = transport.commands_lease(lease(1)).await.expect("lease");
    assert_eq!(first.iter().map(|c| c.command_id).collect::<Vec<_>>(), [low]);
    let second = transport.commands_lease(lease(0)).await.expect("lease");
    assert_eq!(second.iter().map(|c| c.command_id).collect::<Vec<_>>(), [high]);
}

/// A lease that expires (crashed worker) is rescued, counted, and delivered
/// again; the stale holder can no longer record an outcome.
pub async fn visibility_timeout_redelivers<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Echo { text: "x".into() }).await.expect("send").command_id();
    let first =
        transport.commands_lease(lease_params(1, Duration::from_millis(100))).await.expect("lease");
    assert_eq!(first.len(), 1);
    assert!(
        transport
            .commands_lease(lease_params(1, Duration::from_secs(30)))
            .await
            .expect("lease")
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(transport.leases_rescue().await.expect("rescue"), 1);
    let second =
        transport.commands_lease(lease_params(1, Duration::from_secs(30))).await.expect("lease");
    assert_eq!((second[0].command_id, second[0].attempt), (id, 2));
    assert_ne!(first[0].lease_id, second[0].lease_id);
    let reply = serde_json::value::to_raw_value("done").expect("json");
    let stale =
        Outcome::new(LeaseRef::of(&first[0]), 1, OutcomeKind::Completed { reply: reply.clone() });
    let current = Outcome::new(LeaseRef::of(&second[0]), 2, OutcomeKind::Completed { reply });
    let results = transport.commands_record(&[stale, current]).await.expect("record");
    assert_eq!(results, [RecordResult::LeaseLost, RecordResult::Recorded]);
    let record = wait_for(&transport, id, CommandStatus::Completed).await;
    assert_eq!(record.attempts, 2);
    let events = events(&transport, id).await;
    assert_eq!(
        events,
        [
            AuditEvent::Sent,
            AuditEvent::Received,
            AuditEvent::LeaseExpired,
            AuditEvent::Received,
            AuditEvent::Completed
        ]
    );
}

/// Two transient failures, then success: attempts 3, two retries, one reply.
pub async fn transient_failure_retries_then_succeeds<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Flaky { fail_times: 2 }).await.expect("send").command_id();
    let worker = worker(&bus).await;
    assert_eq!(bus.wait_reply::<Flaky>(id, WAIT).await.expect("reply"), TypedReply::Success(3));
    worker.shutdown().await;
    let record = wait_for(&transport, id, CommandStatus::Completed).await;
    assert_eq!(record.attempts, 3);
    assert_eq!(record.last_error.map(|e| e.kind), Some(ErrorKind::Transient));
    let events = events(&transport, id).await;
    assert_eq!(events.iter().filter(|e| **e == AuditEvent::RetryScheduled).count(), 2);
    assert_eq!(events.last(), Some(&AuditEvent::Completed));
}

/// Always transient: the troubleshooting queue after exactly max_attempts, no reply.
pub async fn transient_failure_exhausts_into_tsq<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Flaky { fail_times: 99 }).await.expect("send").command_id();
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    assert_eq!(record.attempts, 3);
    let error = record.last_error.expect("last error");
    assert_eq!((error.kind, error.code.as_str()), (ErrorKind::Transient, "error"));
    assert!(error.message.contains("flaky attempt 3"), "{}", error.message);
    let events = events(&transport, id).await;
    let tail = &events[events.len() - 3..];
    assert_eq!(tail, [AuditEvent::Failed, AuditEvent::RetryExhausted, AuditEvent::MovedToTsq]);
    assert_eq!(events.iter().filter(|e| **e == AuditEvent::Received).count(), 3);
    assert!(
        transport.reply_wait(DOMAIN, id, Duration::from_millis(50)).await.expect("wait").is_none()
    );
}

/// A permanent error: the troubleshooting queue after one attempt, no reply.
pub async fn permanent_failure_goes_to_tsq<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Broken {}).await.expect("send").command_id();
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    assert_eq!(record.attempts, 1);
    assert_eq!(record.last_error.map(|e| e.code), Some("bad_account".to_owned()));
    let trail = transport.audit_list(DOMAIN, id).await.expect("audit");
    let moved = trail.iter().find(|e| e.event == AuditEvent::MovedToTsq).expect("moved");
    assert_eq!(moved.details["reason"], TsqReason::Permanent.as_str());
    assert!(
        transport.reply_wait(DOMAIN, id, Duration::from_millis(50)).await.expect("wait").is_none()
    );
}

/// A business-rule refusal: FAILED with one FAILED reply carrying code and message.
pub async fn business_rule_failure_replies_failed<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Refuse {}).await.expect("send").command_id();
    let worker = worker(&bus).await;
    let reply = bus.wait_reply::<Refuse>(id, WAIT).await.expect("reply");
    worker.shutdown().await;
    assert_eq!(
        reply,
        TypedReply::Failed {
            code: "insufficient_funds".into(),
            message: "balance too low".into(),
            details: None
        }
    );
    let record = wait_for(&transport, id, CommandStatus::Failed).await;
    assert_eq!(record.attempts, 1);
    assert_eq!(
        events(&transport, id).await,
        [AuditEvent::Sent, AuditEvent::Received, AuditEvent::Failed]
    );
}

/// A panicking handler is a transient failure and the worker keeps going.
pub async fn panic_counts_as_transient<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Panics { times: 1 }).await.expect("send").command_id();
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::Completed).await;
    let after = bus.send(Echo { text: "still alive".into() }).await.expect("send").command_id();
    assert!(bus.wait_reply::<Echo>(after, WAIT).await.is_ok());
    worker.shutdown().await;
    assert_eq!(record.attempts, 2);
    let error = record.last_error.expect("panic recorded");
    assert_eq!(error.code, "panic");
    assert!(error.message.contains("conformance panic on attempt 1"), "{}", error.message);
}

/// A payload that no longer decodes: the troubleshooting queue, payload kept.
pub async fn undecodable_payload_goes_to_tsq<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let command = raw("Echo", r#"{"txet":"renamed field"}"#);
    let id = command.command_id;
    transport.commands_send(vec![command]).await.expect("send");
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    assert_eq!(record.attempts, 1);
    let error = record.last_error.expect("decode error");
    assert_eq!((error.kind, error.code.as_str()), (ErrorKind::Permanent, "decode"));
    assert!(error.message.contains("missing field `text`"), "{}", error.message);
    let payload: serde_json::Value = serde_json::from_str(record.payload.get()).expect("json");
    assert_eq!(payload, serde_json::json!({ "txet": "renamed field" }));
}

/// A type no handler serves: the troubleshooting queue, not a loop.
pub async fn unknown_type_goes_to_tsq<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let command = raw("NoSuchCommand", "{}");
    let id = command.command_id;
    transport.commands_send(vec![command]).await.expect("send");
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    assert_eq!(record.last_error.map(|e| e.code), Some("no_handler".to_owned()));
}

/// `max_attempts` given at send wins over the type's.
pub async fn max_attempts_at_send_overrides_type<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus
        .send_with(Flaky { fail_times: 99 }, SendOptions::new().max_attempts(1))
        .await
        .expect("send")
        .command_id();
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    assert_eq!((record.attempts, record.max_attempts), (1, 1));
}

/// Shutdown lets running handlers finish and records their outcomes.
pub async fn shutdown_finishes_in_flight_handlers<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Sleep { ms: 300 }).await.expect("send").command_id();
    let worker = worker(&bus).await;
    wait_for(&transport, id, CommandStatus::InProgress).await;
    let report = worker.shutdown().await;
    assert_eq!((report.finished, report.released), (1, 0));
    let record = bus.command::<Sleep>(id).await.expect("stored");
    assert_eq!(record.status, CommandStatus::Completed);
}

/// A worker that takes back an expired lease retries the command after its
/// type's backoff, as after a failed attempt, and says so in the audit trail.
pub async fn a_crashed_attempt_is_retried_after_its_backoff<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Flaky { fail_times: 0 }).await.expect("send").command_id();
    // A "crashed" worker: leases and never records.
    let crashed =
        transport.commands_lease(lease_params(1, Duration::from_millis(50))).await.expect("lease");
    assert_eq!(crashed.len(), 1);
    let worker = worker(&bus).await;
    let record = wait_for(&transport, id, CommandStatus::Completed).await;
    worker.shutdown().await;
    assert_eq!(record.attempts, 2);
    let trail = transport.audit_list(DOMAIN, id).await.expect("audit");
    let events: Vec<AuditEvent> = trail.iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        [
            AuditEvent::Sent,
            AuditEvent::Received,
            AuditEvent::LeaseExpired,
            AuditEvent::RetryScheduled,
            AuditEvent::Received,
            AuditEvent::Completed,
        ]
    );
    assert_eq!(trail[3].details["delay_ms"], 20, "Flaky's backoff: {:?}", trail[3].details);
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(trail[3].details["due_at"].clone()).expect("due_at");
    // Leased at RECEIVED for 50 ms, rescued after that, due 20 ms after the
    // rescue: on the store's own clock, so it holds however slow the
    // statements run (LEASE_EXPIRED is stamped when the rescue ran, later).
    let earliest = trail[1].at + chrono::TimeDelta::milliseconds(50 + 20);
    assert!(due >= earliest, "due at {due}, before {earliest}: {:?}", trail[3]);
    assert!(trail[4].at >= due, "received at {} before due at {due}", trail[4].at);
}

/// Handlers still running at the deadline are stopped and their commands
/// given back (PENDING, attempt returned), not lost.
pub async fn shutdown_releases_unfinished_handlers<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = bus.send(Sleep { ms: 60_000 }).await.expect("send").command_id();
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_millis(20))
        .shutdown_timeout(Duration::from_millis(100))
        .start()
        .await
        .expect("worker starts");
    wait_for(&transport, id, CommandStatus::InProgress).await;
    let report = worker.shutdown().await;
    assert_eq!((report.finished, report.released), (0, 1));
    let record = bus.command::<Sleep>(id).await.expect("stored");
    assert_eq!((record.status, record.attempts), (CommandStatus::Pending, 0));
    assert_eq!(events(&transport, id).await.last(), Some(&AuditEvent::Released));
}

/// A handler extends its lease; the extension needs the current lease.
pub async fn lease_can_be_extended<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    bus.send(Echo { text: "x".into() }).await.expect("send");
    let leased =
        transport.commands_lease(lease_params(1, Duration::from_millis(200))).await.expect("lease");
    let lease = LeaseRef::of(&leased[0]);
    let extended = transport
        .lease_extend(crate::LeaseExtend::new(lease.clone(), Duration::from_secs(60)))
        .await
        .expect("extend")
        .expect("held");
    assert!(extended > leased[0].lease_expires_at);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        transport.leases_rescue().await.expect("rescue"),
        0,
        "an extended lease is not expired"
    );
    let stranger = LeaseRef::new(lease.domain.clone(), lease.command_id, Uuid::new_v4());
    let refused =
        transport.lease_extend(crate::LeaseExtend::new(stranger, Duration::from_secs(1))).await;
    assert_eq!(refused.expect("extend"), None);
}

/// The worker's heartbeat extends many leases in one call and names those
/// no longer held, in input order.
pub async fn leases_are_extended_together<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    bus.send_batch((0..3).map(|i| Echo { text: i.to_string() })).await.expect("send");
    let leased =
        transport.commands_lease(lease_params(3, Duration::from_millis(200))).await.expect("lease");
    let leases: Vec<LeaseRef> = leased.iter().map(LeaseRef::of).collect();
    let lost =
        transport.leases_extend(leases.clone(), Duration::from_secs(60)).await.expect("extend");
    assert!(lost.is_empty(), "{lost:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(transport.leases_rescue().await.expect("rescue"), 0, "all three were extended");

    transport.leases_release(vec![leases[1].clone()]).await.expect("release");
    let stranger = LeaseRef::new(leases[2].domain.clone(), leases[2].command_id, Uuid::new_v4());
    let lost = transport
        .leases_extend(
            vec![stranger.clone(), leases[0].clone(), leases[1].clone()],
            Duration::from_secs(60),
        )
        .await
        .expect("extend");
    assert_eq!(lost, [stranger, leases[1].clone()]);
    assert!(
        transport
            .leases_extend(Vec::new(), Duration::from_secs(1))
            .await
            .expect("empty")
            .is_empty()
    );
}

/// A handler that runs three times the visibility timeout without touching
/// its lease is run once: the worker's heartbeat keeps the lease alive,
/// while a second worker rescues expired leases all along.
pub async fn a_handler_longer_than_the_visibility_timeout_runs_once<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let start = || {
        bus.worker()
            .domain(DOMAIN)
            // Heartbeats every 200 ms leave 400 ms of slack on a busy machine.
            .visibility_timeout(Duration::from_millis(600))
            .rescue_interval(Duration::from_millis(20))
            .poll_interval(Duration::from_millis(20))
            .start()
    };
    let (first, second) = (start().await.expect("worker"), start().await.expect("worker"));
    let before = LONG_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    let id = bus.send(Long { ms: 1_800 }).await.expect("send").command_id();
    let record = wait_for(&transport, id, CommandStatus::Completed).await;
    assert_eq!(record.attempts, 1);
    assert_eq!(LONG_RUNS.load(std::sync::atomic::Ordering::SeqCst) - before, 1, "run once");
    assert_eq!(
        events(&transport, id).await,
        [AuditEvent::Sent, AuditEvent::Received, AuditEvent::Completed]
    );
    first.shutdown().await;
    second.shutdown().await;
}

/// Commands leased ahead of free handler slots keep their leases while they
/// wait (here longer than the visibility timeout), run once each, and go
/// back unused at shutdown. Quick commands first, so the worker has seen
/// how fast it starts work and leases ahead.
pub async fn commands_leased_ahead_are_kept_alive_and_given_back<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .concurrency(1)
        .prefetch(4)
        // Heartbeats every 100 ms; the slow commands wait up to 1 s for the one slot.
        .visibility_timeout(Duration::from_millis(300))
        .rescue_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    let send = |slow: usize, ms: u64| {
        let bus = bus.clone();
        async move {
            bus.send_batch((0..40).map(|i| Echo { text: i.to_string() })).await.expect("send");
            let sent = bus.send_batch((0..slow).map(|_| Long { ms })).await.expect("send");
            sent.iter().map(crate::SendOutcome::command_id).collect::<Vec<Uuid>>()
        }
    };
    let before = LONG_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    let mut longest_held = chrono::TimeDelta::zero();
    for id in send(3, 350).await {
        let record = wait_for(&transport, id, CommandStatus::Completed).await;
        assert_eq!(record.attempts, 1);
        let trail = transport.audit_list(DOMAIN, id).await.expect("audit");
        let events: Vec<AuditEvent> = trail.iter().map(|e| e.event).collect();
        assert_eq!(events, [AuditEvent::Sent, AuditEvent::Received, AuditEvent::Completed]);
        longest_held = longest_held.max(trail[2].at - trail[1].at);
    }
    assert_eq!(LONG_RUNS.load(std::sync::atomic::Ordering::SeqCst) - before, 3, "each ran once");
    // One of them waited, leased, longer than the visibility timeout.
    assert!(longest_held >= chrono::TimeDelta::milliseconds(350 + 300), "{longest_held:?}");

    // Shut down while one runs and others wait: the one finishes, the
    // waiting ones go back unused.
    let ids = send(5, 300).await;
    wait_for(&transport, ids[2], CommandStatus::InProgress).await;
    let report = worker.shutdown().await;
    assert_eq!(report.finished, 1);
    assert!(report.released >= 1, "{report:?}");
    let mut released = 0;
    for id in &ids {
        let record = transport.command_get(DOMAIN, *id).await.expect("get").expect("exists");
        let trail = events(&transport, *id).await;
        match record.status {
            CommandStatus::Completed => {}
            CommandStatus::Pending if trail == [AuditEvent::Sent] => {}
            CommandStatus::Pending => {
                assert_eq!(trail, [AuditEvent::Sent, AuditEvent::Received, AuditEvent::Released]);
                assert_eq!(record.attempts, 0, "the unused attempt is returned");
                released += 1;
            }
            other => panic!("{id} left {other}"),
        }
    }
    assert_eq!(released, report.released);
}

/// A handler that never returns is stopped at its type's timeout, counted
/// as a transient failure, retried, and ends in the troubleshooting queue.
pub async fn a_hung_handler_is_stopped_and_ends_in_the_tsq<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let worker = worker(&bus).await;
    let id = bus.send(Hang {}).await.expect("send").command_id();
    let record = wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    assert_eq!(record.attempts, 2);
    let error = record.last_error.expect("last error");
    assert_eq!((error.code.as_str(), error.kind), ("handler_timeout", crate::ErrorKind::Transient));
    assert!(error.message.contains("100ms timeout"), "{}", error.message);
    worker.shutdown().await;
}

/// A command sent with a delay or for an instant stays PENDING (scheduled)
/// until then, and an idle worker runs it on time without a poll (here 30 s).
pub async fn a_delayed_command_runs_when_due_not_before<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let worker = rarely_polling_worker(&bus).await;
    let options = crate::SendOptions::new().delay(Duration::from_millis(400));
    let later = bus.send_with(Echo { text: "later".into() }, options).await.expect("send");
    let at = chrono::Utc::now() + chrono::TimeDelta::milliseconds(300);
    let options = crate::SendOptions::new().deliver_at(at);
    let at_instant = bus.send_with(Echo { text: "at".into() }, options).await.expect("send");
    let now = bus.send(Echo { text: "now".into() }).await.expect("send");
    wait_for(&transport, now.command_id(), CommandStatus::Completed).await;
    for id in [later.command_id(), at_instant.command_id()] {
        let record = wait_for(&transport, id, CommandStatus::Completed).await;
        let trail = transport.audit_list(DOMAIN, id).await.expect("audit");
        let received = trail.iter().find(|e| e.event == AuditEvent::Received).expect("received");
        assert!(
            received.at >= record.due_at,
            "leased at {} before due {}",
            received.at,
            record.due_at
        );
        // Started by the worker's own timer, not by its fallback poll (30 s);
        // the bound leaves room for a loaded machine (a 250 ms bound and a
        // check timed against another command were flaky beside coverage).
        let late = received.at - record.due_at;
        assert!(late < chrono::TimeDelta::seconds(2), "{id} started {late:?} after due");
    }
    let record =
        transport.command_get(DOMAIN, at_instant.command_id()).await.expect("get").expect("exists");
    assert!((record.due_at - at).num_milliseconds().abs() <= 1, "{} vs {at}", record.due_at);
    worker.shutdown().await;
}

/// An operator cancels a scheduled command before it starts; its sender gets
/// a CANCELED reply; a command that started can no longer be canceled so.
pub async fn a_pending_command_is_canceled_before_it_starts<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let options = crate::SendOptions::new().delay(Duration::from_secs(3600));
    let scheduled = bus.send_with(Echo { text: "x".into() }, options).await.expect("send");
    let started = bus.send(Echo { text: "y".into() }).await.expect("send").command_id();
    let leased =
        transport.commands_lease(lease_params(10, Duration::from_secs(30))).await.expect("lease");
    assert_eq!(leased.len(), 1, "only the due one is leased");
    let operator = crate::Operator::new("ops@example.com").expect("operator");
    let cancel = |id| {
        crate::Transition::cancel_before_start(DOMAIN.to_owned(), id, &operator, "order withdrawn")
    };
    let applied = transport
        .transitions_apply(vec![cancel(scheduled.command_id()), cancel(started)])
        .await
        .expect("apply");
    assert_eq!(applied, [true, false], "a started command is not canceled");
    let record = wait_for(&transport, scheduled.command_id(), CommandStatus::Canceled).await;
    assert_eq!(record.attempts, 0);
    let trail = transport.audit_list(DOMAIN, scheduled.command_id()).await.expect("audit");
    let events: Vec<AuditEvent> = trail.iter().map(|e| e.event).collect();
    assert_eq!(events, [AuditEvent::Sent, AuditEvent::OperatorCancel]);
    assert_eq!(trail[1].details["operator"], "ops@example.com");
    let reply = bus
        .wait_reply::<Echo>(scheduled.command_id(), Duration::from_secs(1))
        .await
        .expect("reply");
    assert_eq!(
        reply,
        crate::TypedReply::Canceled {
            reason: "order withdrawn".into(),
            operator: "ops@example.com".into()
        }
    );
    let record = transport.command_get(DOMAIN, started).await.expect("get").expect("exists");
    assert_eq!(record.status, CommandStatus::InProgress);
}

/// A paused command type or domain is not leased (its commands stay
/// PENDING, other types run); resuming wakes the workers at once.
pub async fn paused_work_stays_pending_until_resumed<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let operator = crate::Operator::new("ops@example.com").expect("operator");
    let echo = crate::FlowTarget::of::<Echo>();
    let domain = crate::FlowTarget::domain(DOMAIN).expect("domain");
    assert!(bus.pause(&echo, &operator, " ").await.is_err(), "a pause says why");
    assert!(bus.pause(&echo, &operator, "partner outage").await.expect("pause"));
    assert!(!bus.pause(&echo, &operator, "again").await.expect("pause"), "already paused");
    let pauses = bus.pauses().await.expect("pauses");
    assert_eq!(pauses.len(), 1);
    assert_eq!(
        (pauses[0].operator.as_str(), pauses[0].reason.as_str()),
        ("ops@example.com", "partner outage")
    );

    let worker = rarely_polling_worker(&bus).await;
    let held = bus.send(Echo { text: "held".into() }).await.expect("send").command_id();
    let other = bus.send(Flaky { fail_times: 0 }).await.expect("send").command_id();
    wait_for(&transport, other, CommandStatus::Completed).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let record = transport.command_get(DOMAIN, held).await.expect("get").expect("exists");
    assert_eq!((record.status, record.attempts), (CommandStatus::Pending, 0));

    assert!(bus.pause(&domain, &operator, "maintenance").await.expect("pause"));
    let blocked = bus.send(Flaky { fail_times: 0 }).await.expect("send").command_id();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let record = transport.command_get(DOMAIN, blocked).await.expect("get").expect("exists");
    assert_eq!(record.status, CommandStatus::Pending, "the whole domain is paused");

    assert!(bus.resume(&domain, &operator).await.expect("resume"));
    wait_for(&transport, blocked, CommandStatus::Completed).await;
    let record = transport.command_get(DOMAIN, held).await.expect("get").expect("exists");
    assert_eq!(record.status, CommandStatus::Pending, "its type is still paused");

    assert!(bus.resume(&echo, &operator).await.expect("resume"));
    assert!(!bus.resume(&echo, &operator).await.expect("resume"), "not paused any more");
    wait_for(&transport, held, CommandStatus::Completed).await;
    assert!(bus.pauses().await.expect("pauses").is_empty());
    worker.shutdown().await;
}

/// The queue sample behind the depth and age gauges counts due commands up
/// to [`QUEUE_DEPTH_COUNTED_UP_TO`](crate::QUEUE_DEPTH_COUNTED_UP_TO), so a
/// deep backlog costs every worker's sample the same, and leaves out
/// commands not due yet and paused ones.
pub async fn queue_stats_count_up_to_a_bound_and_age_from_the_oldest<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let bound = usize::try_from(crate::QUEUE_DEPTH_COUNTED_UP_TO).expect("fits");
    let domains = [DOMAIN.to_owned(), "cmdbus-conformance-idle".to_owned()];
    let later = SendOptions::new().delay(Duration::from_secs(600));
    bus.send_with(Echo { text: "later".into() }, later).await.expect("send");
    assert!(transport.queue_stats(&domains).await.expect("stats").is_empty(), "nothing due");

    bus.send_batch((0..bound + 5).map(|i| Echo { text: i.to_string() })).await.expect("send");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = transport.queue_stats(&domains).await.expect("stats");
    assert_eq!(stats.len(), 1, "idle domains are left out: {stats:?}");
    assert_eq!(
        (stats[0].domain.as_str(), stats[0].due),
        (DOMAIN, crate::QUEUE_DEPTH_COUNTED_UP_TO)
    );
    assert!(stats[0].oldest_due_age >= Duration::from_millis(50), "{stats:?}");

    let operator = crate::Operator::new("ops@example.com").expect("operator");
    let echo = crate::FlowTarget::of::<Echo>();
    assert!(bus.pause(&echo, &operator, "not waiting for a worker").await.expect("pause"));
    assert!(transport.queue_stats(&domains).await.expect("stats").is_empty(), "paused");
}

/// A limit on a command type caps how many of it are leased at once, even
/// when the worker has free slots; other types are not held back by it.
pub async fn a_limit_caps_commands_in_flight<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let operator = crate::Operator::new("ops@example.com").expect("operator");
    let long = crate::FlowTarget::of::<Long>();
    assert!(bus.limit(&long, 0, &operator).await.is_err(), "0 is a pause, not a limit");
    bus.limit(&long, 2, &operator).await.expect("limit");
    let limits = bus.limits().await.expect("limits");
    assert_eq!((limits.len(), limits[0].max_in_flight, limits[0].per_second), (1, Some(2), None));
    assert_eq!(limits[0].operator, "ops@example.com");

    let worker = bus.worker().domain(DOMAIN).concurrency(8).start().await.expect("worker");
    let ids: Vec<Uuid> = bus
        .send_batch((0..6).map(|_| Long { ms: 200 }))
        .await
        .expect("send")
        .iter()
        .map(crate::SendOutcome::command_id)
        .collect();
    let quick = bus.send(Echo { text: "not limited".into() }).await.expect("send").command_id();
    wait_for(&transport, quick, CommandStatus::Completed).await;
    let (mut most, deadline) = (0, tokio::time::Instant::now() + WAIT);
    loop {
        let mut in_flight = 0;
        let mut completed = 0;
        for id in &ids {
            let record = transport.command_get(DOMAIN, *id).await.expect("get").expect("exists");
            in_flight += usize::from(record.status == CommandStatus::InProgress);
            completed += usize::from(record.status == CommandStatus::Completed);
        }
        most = most.max(in_flight);
        assert!(in_flight <= 2, "{in_flight} in flight under a limit of 2");
        if completed == ids.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {completed} completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(most, 2, "the limit is used, not just respected");
    assert!(bus.unlimit(&long, &operator).await.expect("unlimit"));
    assert!(!bus.unlimit(&long, &operator).await.expect("unlimit"), "no limit any more");
    worker.shutdown().await;
}

/// A rate limit lets a burst of one second's worth through, then spreads
/// the rest at the rate, across however many workers.
pub async fn a_rate_limit_spreads_leases_over_time<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let operator = crate::Operator::new("ops@example.com").expect("operator");
    let echo = crate::FlowTarget::of::<Echo>();
    assert!(bus.rate_limit(&echo, 0.0, &operator).await.is_err(), "a rate is positive");
    bus.rate_limit(&echo, 10.0, &operator).await.expect("rate limit");
    bus.limit(&echo, 50, &operator).await.expect("and a concurrency limit");
    let limits = bus.limits().await.expect("limits");
    assert_eq!((limits[0].max_in_flight, limits[0].per_second), (Some(50), Some(10.0)));

    let worker = rarely_polling_worker(&bus).await;
    let started = tokio::time::Instant::now();
    let ids: Vec<Uuid> = bus
        .send_batch((0..30).map(|i| Echo { text: i.to_string() }))
        .await
        .expect("send")
        .iter()
        .map(crate::SendOutcome::command_id)
        .collect();
    loop {
        let mut completed = 0;
        for id in &ids {
            let record = transport.command_get(DOMAIN, *id).await.expect("get").expect("exists");
            completed += usize::from(record.status != CommandStatus::Pending);
        }
        let allowed = 10.0 + 10.0 * started.elapsed().as_secs_f64() + 1.0;
        assert!(completed as f64 <= allowed, "{completed} leased, at most {allowed:.0} allowed");
        if completed == ids.len() {
            break;
        }
        assert!(started.elapsed() < WAIT, "only {completed} leased");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_800), "30 at 10/s after a burst of 10 took {took:?}");
    assert!(
        took < Duration::from_secs(4),
        "the worker waits for tokens, not for its poll: {took:?}"
    );
    worker.shutdown().await;
}

/// A retry runs when its backoff is over, without waiting for the fallback
/// poll (here 30 s) or a wake-up from elsewhere.
pub async fn retry_runs_when_due_not_at_the_next_poll<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let worker = rarely_polling_worker(&bus).await;
    let id = bus.send(Flaky { fail_times: 2 }).await.expect("send").command_id();
    let reply = bus.wait_reply::<Flaky>(id, Duration::from_secs(10)).await;
    worker.shutdown().await;
    assert_eq!(reply.expect("retried on time, not after the 30 s poll"), TypedReply::Success(3));
}

/// A batch is all or none: one invalid name refuses every command in it.
pub async fn a_batch_with_an_invalid_command_stores_nothing<T: Transport>(transport: T) {
    let good = raw("Echo", r#"{"text":"fine"}"#);
    let good_id = good.command_id;
    let mut bad = raw("Echo", "{}");
    bad.domain = "Not A Domain".to_owned();
    let error = transport.commands_send(vec![good, bad]).await.expect_err("refused");
    assert!(matches!(error, crate::Error::InvalidName { kind: "domain", .. }), "{error}");
    assert!(transport.command_get(DOMAIN, good_id).await.expect("get").is_none());
}

/// Senders and workers record command types: the same definition is one
/// version (stamped again), a changed one the next version (the old one
/// kept); a worker marks its types served, a sender does not.
pub async fn the_catalog_keeps_each_version_and_who_serves_it<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    // Nothing ever served the domain: the sender is told so.
    let first = bus.register::<Echo>().await.expect("register");
    assert_eq!((first.version, first.new_version, first.domain_served_at), (1, true, None));
    let again = bus.register::<Echo>().await.expect("register again");
    assert_eq!((again.version, again.new_version), (1, false));

    // A new build of the type: another reply schema and policy.
    let mut changed = crate::CommandType::of::<Echo>();
    changed.reply_schema = serde_json::json!({ "type": "integer" });
    changed.max_attempts = 9;
    let outcomes = transport.catalog_register(vec![changed.clone()], false).await.expect("v2");
    assert_eq!((outcomes[0].version, outcomes[0].new_version), (2, true));

    let catalog = bus.catalog().await.expect("catalog");
    let versions: Vec<_> = catalog.versions(DOMAIN, "Echo").collect();
    assert_eq!(versions.len(), 2, "{catalog:?}");
    assert_eq!(versions[0].definition, crate::CommandType::of::<Echo>());
    assert_eq!(versions[0].definition.reply_schema["type"], "string");
    assert_eq!(versions[1].definition, changed);
    let latest = catalog.latest(DOMAIN, "Echo").expect("latest");
    assert_eq!((latest.version, latest.definition.max_attempts), (2, 9));
    assert!(versions[0].first_seen_at <= versions[0].last_seen_at);
    assert!(!catalog.served(DOMAIN, None).live, "a sender does not serve");
    assert_eq!(catalog.served(DOMAIN, None).last_served_at, None);

    // A worker records the types it handles, served by a live worker now.
    let running = worker(&bus).await;
    let catalog = bus.catalog().await.expect("catalog");
    let served = catalog.served(DOMAIN, Some("Flaky"));
    assert!(served.live && served.last_served_at.is_some(), "{catalog:?}");
    let flaky = catalog.latest(DOMAIN, "Flaky").expect("Flaky recorded by the worker");
    assert_eq!(
        (flaky.definition.max_attempts, flaky.definition.backoff_ms.as_slice()),
        (3, &[20][..])
    );
    assert_eq!(catalog.latest(DOMAIN, "Hang").expect("Hang").definition.timeout_ms, Some(100));
    // The worker's build of Echo is version 1 again, now served; a sender
    // is told when the domain was last served.
    assert!(catalog.versions(DOMAIN, "Echo").next().is_some_and(|v| v.live));
    let later = bus.register::<Echo>().await.expect("register after a worker");
    assert!(later.domain_served_at.is_some());
    running.shutdown().await;
}

/// The operator API ([`Bus::troubleshooting`]) on this transport: lists and
/// counts the TSQ by filter and page, acts on one item or on a filter,
/// checks JSON results against the catalog, refuses in an operator's words,
/// and its dry run changes nothing.
pub async fn the_operator_api_lists_and_acts_on_the_tsq<T: Transport>(transport: T) {
    use crate::{CommandKey, Error, Operator, TsqFilter};

    let bus = Bus::new(transport.clone());
    bus.register::<Broken>().await.expect("catalog");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(bus.send(Broken {}).await.expect("send").command_id());
    }
    let worker = worker(&bus).await;
    for id in &ids {
        wait_for(&transport, *id, CommandStatus::InTroubleshootingQueue).await;
    }
    worker.shutdown().await;
    let tsq = bus.troubleshooting();
    let all = TsqFilter::new().domain(DOMAIN);

    // Pages of two cover every item once, most recently failed first.
    let (mut listed, mut after) = (Vec::new(), None);
    loop {
        let page = tsq.list(&all, 2, after).await.expect("list");
        assert!(page.items.len() <= 2);
        listed.extend(page.items.into_iter().map(|r| (r.updated_at, r.command_id)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut newest_first = listed.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, newest_first);
    let listed: HashSet<Uuid> = listed.into_iter().map(|(_, id)| id).collect();
    assert_eq!(listed, ids.iter().copied().collect());
    let counts = tsq.counts(&all).await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].command_type.as_str(), counts[0].error_code.as_deref(), counts[0].count),
        ("Broken", Some("bad_account"), 5)
    );
    let other_code = all.clone().error_code("partner_timeout");
    assert!(tsq.list(&other_code, 10, None).await.expect("list").items.is_empty());
    let invalid = tsq.list(&TsqFilter::new().domain("no spaces allowed"), 10, None).await;
    assert!(matches!(invalid, Err(Error::InvalidName { .. })), "{invalid:?}");

    // A dry run lists what it would touch and changes nothing.
    let ops = Operator::new("ops@example.com").expect("operator");
    let dry = tsq.retry_all(&all, &ops, true).await.expect("dry run");
    assert_eq!((dry.matched, dry.acted), (5, 0));
    assert_eq!(dry.ids.map(|ids| ids.len()), Some(5));
    assert_eq!(tsq.counts(&all).await.expect("counts")[0].count, 5);

    // One at a time, by id alone or with its domain.
    tsq.retry(ids[0], &ops).await.expect("retry");
    let again = tsq.retry(ids[0], &ops).await;
    assert!(
        matches!(
            again,
            Err(Error::NotInTroubleshootingQueue { status: CommandStatus::Pending, .. })
        ),
        "{again:?}"
    );
    tsq.cancel(CommandKey::of::<Broken>(ids[1]), &ops, "duplicate order").await.expect("cancel");
    let trail = transport.audit_list(DOMAIN, ids[1]).await.expect("audit");
    let canceled = trail.last().expect("audited");
    assert_eq!(canceled.event, AuditEvent::OperatorCancel);
    assert_eq!(canceled.details["operator"], "ops@example.com");

    // A JSON result must fit the type's reply schema; a typed one always does.
    let wrong = tsq.complete_json(ids[2], &ops, &serde_json::json!({"x": 1})).await;
    assert!(matches!(wrong, Err(Error::ResultMismatch { .. })), "{wrong:?}");
    tsq.complete_json(ids[2], &ops, &serde_json::Value::Null).await.expect("complete");
    tsq.complete::<Broken>(ids[3], &ops, ()).await.expect("complete typed");
    for (id, status) in [
        (ids[0], CommandStatus::Pending),
        (ids[1], CommandStatus::Canceled),
        (ids[2], CommandStatus::Completed),
        (ids[3], CommandStatus::Completed),
    ] {
        wait_for(&transport, id, status).await;
    }

    // What is left, by filter; then nothing is.
    let done = tsq.cancel_all(&all, &ops, "closing the incident", false).await.expect("bulk");
    assert_eq!((done.matched, done.acted, done.ids), (1, 1, Some(vec![ids[4]])));
    wait_for(&transport, ids[4], CommandStatus::Canceled).await;
    assert!(tsq.list(&all, 10, None).await.expect("list").items.is_empty());
    assert!(tsq.counts(&all).await.expect("counts").is_empty());

    // Refusals name what is wrong.
    let unknown = tsq.cancel(Uuid::now_v7(), &ops, "x").await;
    assert!(matches!(unknown, Err(Error::UnknownCommandId { .. })), "{unknown:?}");
    let elsewhere = tsq.retry(CommandKey::new("elsewhere", ids[4]), &ops).await;
    assert!(matches!(elsewhere, Err(Error::NotFound { .. })), "{elsewhere:?}");
}

/// An operator's payload edit ([`Troubleshooting::edit_and_retry`](crate::Troubleshooting::edit_and_retry)):
/// checked against the catalog's payload schema (the wrong field named),
/// a dry run stores nothing, the stored edit retries the command with the
/// new payload and its audit row names the operator and every change, and
/// an edit made against a payload that changed meanwhile is refused.
pub async fn an_operator_corrects_a_payload_and_retries_it<T: Transport>(transport: T) {
    use crate::{Error, FieldChange, Operator};
    use serde_json::json;

    let bus = Bus::new(transport.clone());
    bus.register::<Charge>().await.expect("catalog");
    let id =
        bus.send(Charge { account: "closed".into(), amount: 5 }).await.expect("send").command_id();
    let worker = worker(&bus).await;
    wait_for(&transport, id, CommandStatus::InTroubleshootingQueue).await;
    let tsq = bus.troubleshooting();
    let ops = Operator::new("ops@example.com").expect("operator");
    let stored =
        || async { bus.command::<Charge>(id).await.expect("command").payload.get().to_owned() };
    let original = stored().await;

    let wrong = tsq.edit_and_retry(id, &ops, &json!({ "account": 7, "amount": 5 }), false).await;
    let Err(Error::PayloadMismatch { problems, .. }) = &wrong else { panic!("{wrong:?}") };
    assert!(problems.iter().any(|p| p.starts_with("/account")), "{problems:?}");
    let missing = tsq.edit_and_retry(id, &ops, &json!({ "account": "open" }), false).await;
    assert!(matches!(missing, Err(Error::PayloadMismatch { .. })), "{missing:?}");
    let same =
        tsq.edit_and_retry(id, &ops, &json!({ "account": "closed", "amount": 5 }), false).await;
    assert!(matches!(same, Err(Error::EditRefused { .. })), "{same:?}");

    let fixed = json!({ "account": "open", "amount": 5 });
    let dry = tsq.edit_and_retry(id, &ops, &fixed, true).await.expect("dry run");
    assert!(!dry.applied);
    assert_eq!(
        dry.changes,
        FieldChange::between(&json!({ "account": "closed", "amount": 5 }), &fixed)
    );
    assert_eq!(stored().await, original, "a dry run stores nothing");

    // Another operator's edit won the race: this one was made against the old payload.
    let mut stale = dry.clone();
    stale.before =
        serde_json::value::to_raw_value(&json!({ "account": "x", "amount": 1 })).expect("json");
    let refused = transport.tsq_edit(&stale, Transition::operator_edit(&stale, &ops)).await;
    assert!(!refused.expect("refused, not failed"));

    let edit = tsq.edit_and_retry(id, &ops, &fixed, false).await.expect("edit");
    assert!(edit.applied);
    wait_for(&transport, id, CommandStatus::Completed).await;
    worker.shutdown().await;
    let payload: serde_json::Value = serde_json::from_str(&stored().await).expect("json");
    assert_eq!(payload, fixed);
    let trail = transport.audit_list(DOMAIN, id).await.expect("audit");
    let retried = trail.iter().find(|e| e.event == AuditEvent::OperatorRetry).expect("audited");
    assert_eq!(retried.details["operator"], "ops@example.com");
    assert_eq!(
        retried.details["payload_changes"],
        json!([{ "path": "/account", "before": "closed", "after": "open" }])
    );
    let again = tsq.edit_and_retry(id, &ops, &json!({ "account": "b", "amount": 5 }), false).await;
    assert!(
        matches!(
            again,
            Err(Error::NotInTroubleshootingQueue { status: CommandStatus::Completed, .. })
        ),
        "{again:?}"
    );
}

/// Commands a handler sends ([`HandlerContext::send`]) are stored with its
/// completion, in the same unit of work, or not at all when it fails; they
/// share its correlation id, and an id sent twice is a duplicate.
pub async fn a_handler_sends_with_its_completion_or_not_at_all<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let (sent_next, rolled_back_next) = (Uuid::now_v7(), Uuid::now_v7());
    let ok = bus.send(Chain { next: sent_next, fail: false }).await.expect("send");
    let failed = bus.send(Chain { next: rolled_back_next, fail: true }).await.expect("send");
    let worker = worker(&bus).await;
    let reply = ok.wait_reply(WAIT).await.expect("reply");
    assert_eq!(reply, TypedReply::Success(true), "the second send was a duplicate");
    let echoed = wait_for(&transport, sent_next, CommandStatus::Completed).await;
    assert_eq!(echoed.correlation_id, ok.command_id(), "it shares the sender's correlation");
    wait_for(&transport, failed.command_id(), CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;
    let kept = transport.command_get(DOMAIN, rolled_back_next).await.expect("get");
    assert!(kept.is_none(), "a failed handler's sends are rolled back: {kept:?}");
}

/// A batch sent with options per command keeps each command's id,
/// correlation id and reply queue; sent again it stores nothing twice, and
/// an id twice in one batch is stored once.
pub async fn a_batch_carries_options_per_command_and_is_idempotent<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let correlation = Uuid::now_v7();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let batch = || {
        ids.iter().map(|id| {
            let options =
                SendOptions::new().command_id(*id).correlation_id(correlation).reply_to("billing");
            (Echo { text: id.to_string() }, options)
        })
    };
    let first = bus.send_batch_with(batch()).await.expect("send");
    assert!(first.iter().all(|o| !o.is_duplicate()), "{first:?}");
    assert_eq!(first.iter().map(crate::SendOutcome::command_id).collect::<Vec<_>>(), ids);
    let again = bus.send_batch_with(batch()).await.expect("send again");
    assert!(again.iter().all(crate::SendOutcome::is_duplicate), "{again:?}");
    for id in &ids {
        let record = transport.command_get(DOMAIN, *id).await.expect("get").expect("stored");
        assert_eq!((record.correlation_id, record.reply_to.as_str()), (correlation, "billing"));
    }
    let twice = Uuid::now_v7();
    let same = || (Echo { text: "twice".into() }, SendOptions::new().command_id(twice));
    let outcomes = bus.send_batch_with([same(), same()]).await.expect("send");
    let duplicates: Vec<bool> = outcomes.iter().map(crate::SendOutcome::is_duplicate).collect();
    assert_eq!(duplicates, [false, true], "the second of one id in a batch is a duplicate");
}

/// The completion command of a tracked batch, with `BatchDone`'s payload.
fn completion_of(record: &crate::CommandRecord) -> crate::BatchOutcome {
    let done: BatchDone = serde_json::from_str(record.payload.get()).expect("a BatchDone");
    done.batch
}

/// Waits for a batch to end and returns it with its completion command.
async fn batch_ended<T: Transport>(
    bus: &Bus<T>,
    batch_id: Uuid,
) -> (crate::BatchStatus, crate::CommandRecord) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = bus.batch(batch_id).await.expect("batch");
        if let (true, Some((_, id))) = (status.is_finished(), &status.completion) {
            let completion = wait_for(bus.transport(), *id, CommandStatus::Completed).await;
            return (status, completion);
        }
        assert!(tokio::time::Instant::now() < deadline, "batch never ended: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A tracked batch of different command types counts its members as they
/// end; the last to end sends the completion command, once, carrying the
/// counts. Opening it again changes nothing.
pub async fn a_batch_completion_is_sent_once_when_every_member_has_ended<T: Transport>(
    transport: T,
) {
    let bus = Bus::new(transport.clone());
    let batch_id = Uuid::now_v7();
    let existing = bus.send(Echo { text: "sent before".into() }).await.expect("send").command_id();
    let open = || {
        crate::Batch::with_id(batch_id)
            .member(Echo { text: "a".into() })
            .and_then(|b| b.member(Echo { text: "b".into() }))
            .and_then(|b| b.member(Refuse {}))
            .and_then(|b| {
                b.member_with(
                    Echo { text: "again".into() },
                    SendOptions::new().command_id(existing),
                )
            })
            .and_then(|b| b.on_done(|batch| BatchDone { batch }))
            .expect("batch")
            .with_member_ids()
    };
    let opened = bus.open_batch(open()).await.expect("open");
    let duplicates: Vec<bool> =
        opened.outcomes.iter().map(crate::SendOutcome::is_duplicate).collect();
    assert_eq!(duplicates, [false, false, false, true], "an existing command is not a member");
    let status = bus.batch(batch_id).await.expect("batch");
    assert_eq!((status.total, status.pending, status.is_finished()), (3, 3, false));
    let worker = worker(&bus).await;
    let (status, completion) = batch_ended(&bus, batch_id).await;
    worker.shutdown().await;
    assert_eq!((status.completed, status.failed, status.pending), (2, 1, 0));
    let outcome = completion_of(&completion);
    assert_eq!(
        (outcome.batch_id, outcome.total, outcome.completed, outcome.failed),
        (batch_id, 3, 2, 1)
    );
    let again = bus.open_batch(open()).await.expect("open again");
    assert!(again.outcomes.iter().all(crate::SendOutcome::is_duplicate), "{again:?}");
    let completions = transport.commands_find(completion.command_id).await.expect("find");
    assert_eq!(completions.len(), 1, "the completion is sent once");
    let unknown = bus.batch(Uuid::now_v7()).await;
    assert!(matches!(unknown, Err(crate::Error::UnknownBatch { .. })), "{unknown:?}");
    let empty = bus.open_batch(crate::Batch::new()).await;
    assert!(matches!(empty, Err(crate::Error::InvalidBatch { .. })), "{empty:?}");
}

/// A member in the troubleshooting queue holds its batch open; once an
/// operator retries it and it completes, the batch ends and its completion
/// command is sent.
pub async fn a_member_in_the_tsq_holds_its_batch_open_until_an_operator_acts<T: Transport>(
    transport: T,
) {
    let bus = Bus::new(transport.clone());
    let batch = crate::Batch::new()
        .member(Echo { text: "fine".into() })
        .and_then(|b| b.member(FailsOnce {}))
        .and_then(|b| b.on_done(|batch| BatchDone { batch }))
        .expect("batch");
    let batch_id = batch.id();
    let opened = bus.open_batch(batch).await.expect("open");
    let held = opened.outcomes[1].command_id();
    let worker = worker(&bus).await;
    wait_for(&transport, held, CommandStatus::InTroubleshootingQueue).await;
    wait_for(&transport, opened.outcomes[0].command_id(), CommandStatus::Completed).await;
    let status = bus.batch(batch_id).await.expect("batch");
    assert_eq!((status.completed, status.in_troubleshooting_queue), (1, 1));
    assert!(!status.is_finished(), "a member in the TSQ holds the batch open");
    let holding = crate::TsqFilter::new().batch(batch_id);
    let listed = bus.troubleshooting().list(&holding, 10, None).await.expect("list");
    let listed: Vec<Uuid> = listed.items.iter().map(|r| r.command_id).collect();
    assert_eq!(listed, [held], "the TSQ lists the member holding the batch open");
    let elsewhere = crate::TsqFilter::new().batch(Uuid::now_v7());
    assert!(bus.troubleshooting().list(&elsewhere, 10, None).await.expect("list").items.is_empty());
    let operator = crate::Operator::new("ops@example.com").expect("operator");
    bus.troubleshooting().retry(held, &operator).await.expect("retry");
    let (status, completion) = batch_ended(&bus, batch_id).await;
    worker.shutdown().await;
    assert_eq!((status.completed, status.in_troubleshooting_queue), (2, 0));
    let outcome = completion_of(&completion);
    assert_eq!((outcome.total, outcome.completed, outcome.failed, outcome.canceled), (2, 2, 0, 0));
    assert_eq!(outcome.members, None, "ids only when asked for");
}
