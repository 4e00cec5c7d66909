//! The troubleshooting queue's operator API on PostgreSQL.

use std::{
    collections::HashSet,
    sync::{LazyLock, Mutex},
    time::Duration,
};

use cmdbus::{
    AuditEvent, CommandStatus, Error, HandlerError, Operator, TypedReply, command, handler,
};
use cmdbus::{CommandKey, TsqFilter};
use cmdbus_pg::PgBus;
use cmdbus_tests::pg_bus;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

const DOMAIN: &str = "tsq-it";
const WAIT: Duration = Duration::from_secs(20);

/// Keys whose partner is "fixed": their next attempt succeeds.
static FIXED: LazyLock<Mutex<HashSet<Uuid>>> = LazyLock::new(Mutex::default);
/// How many times each key's handler ran.
static RUNS: LazyLock<Mutex<Vec<Uuid>>> = LazyLock::new(Mutex::default);

#[cmdbus::reply]
#[derive(Debug, PartialEq)]
struct Receipt {
    reference: String,
}

#[command(domain = "tsq-it", reply = Receipt)]
#[derive(Debug)]
struct Charge {
    key: Uuid,
    code: String,
}

#[command(domain = "tsq-it", name = "Refund")]
struct Refund {
    key: Uuid,
}

#[handler]
async fn charge(cmd: Charge) -> Result<Receipt, HandlerError> {
    RUNS.lock().expect("runs").push(cmd.key);
    if FIXED.lock().expect("fixed").contains(&cmd.key) {
        return Ok(Receipt { reference: format!("charged-{}", cmd.key) });
    }
    Err(HandlerError::permanent(cmd.code, "partner refused"))
}

#[handler]
async fn refund(_cmd: Refund) -> Result<(), HandlerError> {
    Err(HandlerError::permanent("refund_refused", "no"))
}

fn ops() -> Operator {
    Operator::new("ops@example.com").expect("valid operator")
}

/// Sends commands and runs a worker until they are all in the TSQ.
async fn into_tsq(bus: &PgBus, charges: &[(&str, Uuid)], refunds: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for (code, key) in charges {
        ids.push(
            bus.send(Charge { key: *key, code: (*code).to_owned() })
                .await
                .expect("send")
                .command_id(),
        );
    }
    for _ in 0..refunds {
        ids.push(bus.send(Refund { key: Uuid::new_v4() }).await.expect("send").command_id());
    }
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("worker");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = bus.troubleshooting().list(&TsqFilter::new(), 1000, None).await.expect("list");
        if page.items.len() == ids.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} in the TSQ", page.items.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    ids
}

async fn status(bus: &PgBus, id: Uuid) -> CommandStatus {
    bus.find(id).await.expect("find")[0].status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages_newest_first() {
    let bus = pg_bus().await;
    let keys: Vec<(&str, Uuid)> = (0..5)
        .map(|i| (if i % 2 == 0 { "card_declined" } else { "fraud" }, Uuid::new_v4()))
        .collect();
    let ids = into_tsq(&bus, &keys, 2).await;
    let tsq = bus.troubleshooting();

    let all = tsq.list(&TsqFilter::new(), 1000, None).await.expect("list");
    assert_eq!(all.items.len(), 7);
    assert!(all.next.is_none());
    let entered: Vec<_> = all.items.iter().map(|r| (r.updated_at, r.command_id)).collect();
    let mut sorted = entered.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(entered, sorted, "newest first");

    // Pages of 3 cover everything exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = tsq.list(&TsqFilter::new(), 3, after).await.expect("page");
        seen.extend(page.items.iter().map(|r| r.command_id));
        match page.next {
            Some(next) => after = Some(next.to_string().parse().expect("cursor round-trips")),
            None => break,
        }
    }
    assert_eq!(seen, all.items.iter().map(|r| r.command_id).collect::<Vec<_>>());

    let by_code =
        tsq.list(&TsqFilter::new().error_code("card_declined"), 100, None).await.expect("list");
    assert_eq!(by_code.items.len(), 3);
    let by_type = tsq.list(&TsqFilter::new().of_type::<Refund>(), 100, None).await.expect("list");
    assert_eq!(by_type.items.len(), 2);
    let by_domain = tsq.list(&TsqFilter::new().domain(DOMAIN), 100, None).await.expect("list");
    assert_eq!(by_domain.items.len(), 7);
    let other_domain =
        tsq.list(&TsqFilter::new().domain("elsewhere"), 100, None).await.expect("list");
    assert!(other_domain.items.is_empty());
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        tsq.list(&TsqFilter::new().since(future), 100, None).await.expect("list").items.is_empty()
    );
    assert_eq!(
        tsq.list(&TsqFilter::new().until(future), 100, None).await.expect("list").items.len(),
        7
    );

    let counts = tsq.counts(&TsqFilter::new()).await.expect("counts");
    let summary: Vec<(String, Option<String>, i64)> =
        counts.into_iter().map(|c| (c.command_type, c.error_code, c.count)).collect();
    assert_eq!(
        summary,
        [
            ("Charge".into(), Some("card_declined".into()), 3),
            ("Charge".into(), Some("fraud".into()), 2),
            ("Refund".into(), Some("refund_refused".into()), 2),
        ]
    );
    let item = &all.items[0];
    assert!(ids.contains(&item.command_id));
    assert_eq!(item.attempts, 1);
    assert!(item.last_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_list_keeps_undecodable_payloads() {
    let bus = pg_bus().await;
    let ids = into_tsq(&bus, &[("x", Uuid::new_v4()), ("x", Uuid::new_v4())], 0).await;
    let garble = format!(
        "UPDATE \"{}\".commands SET payload = '[1]' WHERE command_id = $1",
        bus.transport().schema()
    );
    sqlx::query(AssertSqlSafe(garble)).bind(ids[0]).execute(bus.pool()).await.expect("garble");
    let page = bus
        .troubleshooting()
        .list_typed::<Charge>(&TsqFilter::new(), 10, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 2);
    let broken = page.items.iter().find(|i| i.record.command_id == ids[0]).expect("listed");
    assert!(
        broken.payload.as_ref().is_err_and(|e| e.contains("invalid type")),
        "{:?}",
        broken.payload
    );
    assert_eq!(broken.record.payload.get(), "[1]");
    let fine = page.items.iter().find(|i| i.record.command_id == ids[1]).expect("listed");
    assert_eq!(fine.payload.as_ref().expect("decodes").code, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_the_command_to_completion() {
    let bus = pg_bus().await;
    let key = Uuid::new_v4();
    let id = into_tsq(&bus, &[("partner_down", key)], 0).await[0];
    FIXED.lock().expect("fixed").insert(key);
    bus.troubleshooting().retry(id, &ops()).await.expect("retry");
    let record = &bus.find(id).await.expect("find")[0];
    assert_eq!((record.status, record.attempts), (CommandStatus::Pending, 0));
    let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
    let reply = bus.wait_reply::<Charge>(id, WAIT).await.expect("reply");
    worker.shutdown().await;
    assert_eq!(reply, TypedReply::Success(Receipt { reference: format!("charged-{key}") }));
    let trail = bus.audit_trail_in(DOMAIN, id).await.expect("audit");
    let retry = trail.iter().find(|e| e.event == AuditEvent::OperatorRetry).expect("audited");
    assert_eq!(retry.details["operator"], "ops@example.com");
    assert_eq!(trail.last().map(|e| e.event), Some(AuditEvent::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sends_one_canceled_reply() {
    let bus = pg_bus().await;
    let id = into_tsq(&bus, &[("x", Uuid::new_v4())], 0).await[0];
    bus.troubleshooting().cancel(id, &ops(), "duplicate order").await.expect("cancel");
    assert_eq!(status(&bus, id).await, CommandStatus::Canceled);
    let reply = bus.wait_reply::<Charge>(id, WAIT).await.expect("reply");
    assert_eq!(
        reply,
        TypedReply::Canceled {
            reason: "duplicate order".into(),
            operator: "ops@example.com".into()
        }
    );
    let trail = bus.audit_trail_in(DOMAIN, id).await.expect("audit");
    let cancel = trail.last().expect("audited");
    assert_eq!(cancel.event, AuditEvent::OperatorCancel);
    assert_eq!(
        (cancel.details["operator"].as_str(), cancel.details["reason"].as_str()),
        (Some("ops@example.com"), Some("duplicate order"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_hands_a_typed_result_to_a_waiting_caller() {
    let bus = pg_bus().await;
    let id = into_tsq(&bus, &[("x", Uuid::new_v4())], 0).await[0];
    let waiter = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.wait_reply::<Charge>(id, WAIT).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let receipt = Receipt { reference: "manual-42".into() };
    bus.troubleshooting().complete::<Charge>(id, &ops(), receipt).await.expect("complete");
    let reply = waiter.await.expect("join").expect("reply");
    assert_eq!(reply, TypedReply::Success(Receipt { reference: "manual-42".into() }));
    assert_eq!(status(&bus, id).await, CommandStatus::Completed);
    let trail = bus.audit_trail_in(DOMAIN, id).await.expect("audit");
    let complete = trail.last().expect("audited");
    assert_eq!(complete.event, AuditEvent::OperatorComplete);
    assert_eq!(complete.details["result"]["reference"], "manual-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_outside_the_tsq_fail_cleanly() {
    let bus = pg_bus().await;
    let tsq = bus.troubleshooting();
    let pending = bus
        .send(Charge { key: Uuid::new_v4(), code: "x".into() })
        .await
        .expect("send")
        .command_id();
    let error = tsq.retry(pending, &ops()).await.expect_err("not in the TSQ");
    assert!(
        matches!(
            error,
            Error::NotInTroubleshootingQueue { status: CommandStatus::Pending, command_id, .. }
                if command_id == pending
        ),
        "{error}"
    );
    let error = tsq.cancel(Uuid::new_v4(), &ops(), "x").await.expect_err("unknown id");
    assert!(matches!(error, Error::UnknownCommandId { .. }), "{error}");
    let error = tsq
        .cancel(CommandKey::new("elsewhere", pending), &ops(), "x")
        .await
        .expect_err("not in that domain");
    assert!(
        matches!(error, Error::NotFound { ref domain, .. } if domain == "elsewhere"),
        "{error}"
    );
    let error = tsq
        .complete_json(pending, &ops(), &serde_json::json!({}))
        .await
        .expect_err("not in the TSQ");
    assert_eq!(
        error.to_string(),
        format!(
            "command {pending} in domain \"tsq-it\" is PENDING, not in the troubleshooting queue"
        )
    );
    assert_eq!(
        bus.audit_trail_in(DOMAIN, pending).await.expect("audit").len(),
        1,
        "nothing audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_retries_make_one_retry_and_one_rerun() {
    let bus = pg_bus().await;
    let key = Uuid::new_v4();
    let id = into_tsq(&bus, &[("x", key)], 0).await[0];
    FIXED.lock().expect("fixed").insert(key);
    let retries = (0..50).map(|_| {
        let tsq = bus.troubleshooting();
        tokio::spawn(async move { tsq.retry(id, &ops()).await })
    });
    let mut ok = 0;
    for retry in retries {
        match retry.await.expect("join") {
            Ok(()) => ok += 1,
            Err(Error::NotInTroubleshootingQueue { .. }) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(ok, 1);
    let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
    bus.wait_reply::<Charge>(id, WAIT).await.expect("reply");
    worker.shutdown().await;
    let trail = bus.audit_trail_in(DOMAIN, id).await.expect("audit");
    assert_eq!(trail.iter().filter(|e| e.event == AuditEvent::OperatorRetry).count(), 1);
    assert_eq!(
        trail.iter().filter(|e| e.event == AuditEvent::Received).count(),
        2,
        "first run + one re-run"
    );
    assert_eq!(RUNS.lock().expect("runs").iter().filter(|k| **k == key).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_count_first_then_act_on_exactly_that_many() {
    let bus = pg_bus().await;
    let keys: Vec<(&str, Uuid)> =
        (0..6).map(|i| (if i < 4 { "card_declined" } else { "fraud" }, Uuid::new_v4())).collect();
    into_tsq(&bus, &keys, 1).await;
    let tsq = bus.troubleshooting();
    let declined = TsqFilter::new().of_type::<Charge>().error_code("card_declined");
    let dry = tsq.retry_all(&declined, &ops(), true).await.expect("dry run");
    assert_eq!((dry.matched, dry.acted), (4, 0));
    assert_eq!(
        tsq.list(&declined, 100, None).await.expect("list").items.len(),
        4,
        "dry run changed nothing"
    );
    let done = tsq.retry_all(&declined, &ops(), false).await.expect("retry all");
    assert_eq!((done.matched, done.acted), (dry.matched, dry.matched));
    let canceled = tsq
        .cancel_all(&TsqFilter::new().error_code("fraud"), &ops(), "fraud ring", false)
        .await
        .expect("cancel");
    assert_eq!(canceled.acted, 2);
    let left = tsq.list(&TsqFilter::new(), 100, None).await.expect("list");
    assert_eq!(left.items.len(), 1, "only the refund remains");
    let summaries = format!(
        "SELECT action, affected, operator FROM \"{}\".operator_actions ORDER BY id",
        bus.transport().schema()
    );
    let rows: Vec<(String, i32, String)> =
        sqlx::query_as(AssertSqlSafe(summaries)).fetch_all(bus.pool()).await.expect("summaries");
    assert_eq!(
        rows,
        [
            ("retry_all".into(), 4, "ops@example.com".into()),
            ("cancel_all".into(), 2, "ops@example.com".into())
        ]
    );
}

/// Ships an order; refused permanently. Its command ids are order ids, like
/// `Charge`'s in the test below, so one id lives in two domains.
#[command(domain = "tsq-ship")]
struct Ship {}

#[handler]
async fn ship(_cmd: Ship) -> Result<(), HandlerError> {
    Err(HandlerError::permanent("no_carrier", "no carrier"))
}

/// Sends a `Charge` and a `Ship` under one id and waits until both are in the TSQ.
async fn same_id_in_two_domains(bus: &PgBus) -> Uuid {
    let id = Uuid::now_v7();
    let options = cmdbus::SendOptions::new().command_id(id);
    let charge = Charge { key: Uuid::new_v4(), code: "declined".into() };
    bus.send_with(charge, options.clone()).await.expect("send charge");
    bus.send_with(Ship {}, options).await.expect("send ship");
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .domain("tsq-ship")
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    let deadline = tokio::time::Instant::now() + WAIT;
    let filter = TsqFilter::new();
    loop {
        let items = bus.troubleshooting().list(&filter, 10, None).await.expect("list").items;
        if items.iter().filter(|r| r.command_id == id).count() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never both in the TSQ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_held_by_two_domains_is_acted_on_in_the_domain_named() {
    let bus = pg_bus().await;
    let tsq = bus.troubleshooting();
    let id = same_id_in_two_domains(&bus).await;
    let error = tsq.retry(id, &ops()).await.expect_err("which one?");
    assert!(
        matches!(error, Error::AmbiguousCommandId { ref domains, .. } if domains.len() == 2),
        "{error}"
    );
    tsq.cancel(CommandKey::new("tsq-ship", id), &ops(), "not shipping").await.expect("cancel");
    let ship = bus.command::<Ship>(id).await.expect("ship");
    assert_eq!(ship.status, CommandStatus::Canceled);
    assert_eq!(status(&bus, id).await, CommandStatus::InTroubleshootingQueue, "charge untouched");

    // A typed call names its domain itself.
    let receipt = Receipt { reference: "manual".into() };
    tsq.complete::<Charge>(id, &ops(), receipt).await.expect("typed complete");
    assert_eq!(status(&bus, id).await, CommandStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_action_acts_on_every_item_it_matched_even_with_shared_ids() {
    let bus = pg_bus().await;
    let id = same_id_in_two_domains(&bus).await;
    let filter = TsqFilter::new().domain("tsq-ship");
    let outcome = bus.troubleshooting().retry_all(&filter, &ops(), false).await.expect("bulk");
    assert_eq!((outcome.matched, outcome.acted), (1, 1));
    assert_eq!(bus.command::<Ship>(id).await.expect("ship").status, CommandStatus::Pending);
    assert_eq!(status(&bus, id).await, CommandStatus::InTroubleshootingQueue, "charge untouched");
}

/// Scheduled commands are found by `CommandQuery::scheduled` and canceled
/// before they start through the operator API; refusals name the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_command_is_canceled_before_it_starts() {
    let bus = pg_bus().await;
    let later = cmdbus::SendOptions::new().delay(Duration::from_secs(3600));
    let key = Uuid::now_v7();
    let id = bus.send_with(Refund { key }, later).await.expect("send").command_id();
    let now = bus.send(Refund { key }).await.expect("send").command_id();
    let scheduled = bus.query(&cmdbus_pg::CommandQuery::new().scheduled()).await.expect("query");
    let ids: Vec<Uuid> = scheduled.items.iter().map(|r| r.command_id).collect();
    assert_eq!(ids, [id]);
    assert!(scheduled.items[0].due_at > chrono::Utc::now() + chrono::TimeDelta::minutes(59));

    let api = bus.troubleshooting();
    api.cancel_pending(id, &ops(), "customer withdrew").await.expect("cancel");
    let record = bus.command::<Refund>(id).await.expect("record");
    assert_eq!(record.status, CommandStatus::Canceled);
    let reply = bus.wait_reply::<Refund>(id, Duration::from_secs(1)).await.expect("reply");
    assert!(matches!(reply, TypedReply::Canceled { .. }), "{reply:?}");
    let refused = api.cancel_pending(id, &ops(), "again").await.expect_err("not pending");
    assert!(
        matches!(refused, Error::NotPending { status: CommandStatus::Canceled, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("can no longer be canceled before it starts"));
    let missing = api.cancel_pending(CommandKey::new(DOMAIN, Uuid::nil()), &ops(), "x").await;
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");

    // The due one is still pending and can be canceled too; audited with the operator.
    api.cancel_pending(now, &ops(), "duplicate").await.expect("cancel");
    let trail = bus.audit_trail_in(DOMAIN, now).await.expect("audit");
    let events: Vec<AuditEvent> = trail.iter().map(|e| e.event).collect();
    assert_eq!(events, [AuditEvent::Sent, AuditEvent::OperatorCancel]);
    assert_eq!(trail[1].details["operator"], "ops@example.com");
}

/// A bulk completion checks its one result against the reply schema of
/// every type it matched: one misfit refuses the whole action, nothing
/// changes; a fitting result completes them all and lists their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_completion_checks_the_result_for_every_type_it_matched() {
    let bus = pg_bus().await;
    let ids =
        into_tsq(&bus, &[("card_declined", Uuid::new_v4()), ("card_declined", Uuid::new_v4())], 1)
            .await;
    let tsq = bus.troubleshooting();
    let charges = TsqFilter::new().of_type::<Charge>();
    let wrong = serde_json::json!({ "ref": "manual" });
    for dry_run in [true, false] {
        let error =
            tsq.complete_all_json(&charges, &ops(), &wrong, dry_run).await.expect_err("misfit");
        assert!(
            matches!(&error, Error::ResultMismatch { command_type, version: 1, problems, .. }
                if command_type == "Charge" && problems == &[r#"the result: "reference" is a required property"#]),
            "{error}"
        );
    }
    // Charge replies a Receipt, Refund replies (): no one result fits both.
    let every = TsqFilter::new();
    let error = tsq.complete_all_json(&every, &ops(), &serde_json::json!(null), false).await;
    assert!(
        matches!(error, Err(Error::ResultMismatch { ref command_type, .. }) if command_type == "Charge")
    );
    assert_eq!(tsq.list(&every, 100, None).await.expect("list").items.len(), 3, "nothing changed");
    // And nothing stays locked: another session takes every item at once.
    let mut other =
        <sqlx::PgConnection as sqlx::Connection>::connect(&cmdbus_tests::database_url())
            .await
            .expect("another session");
    let free = format!(
        r#"SELECT count(*) FROM (SELECT 1 FROM "{}".commands FOR UPDATE SKIP LOCKED) AS free"#,
        bus.transport().schema()
    );
    let free: i64 =
        sqlx::query_scalar(AssertSqlSafe(free)).fetch_one(&mut other).await.expect("lockable");
    assert_eq!(free, 3, "a refused bulk action left rows locked");

    let right = serde_json::json!({ "reference": "manual-7" });
    let done = tsq.complete_all_json(&charges, &ops(), &right, false).await.expect("complete");
    assert_eq!((done.matched, done.acted), (2, 2));
    let mut acted = done.ids.expect("ids listed");
    acted.sort();
    let mut charged = ids[..2].to_vec();
    charged.sort();
    assert_eq!(acted, charged);
    let receipt = bus.wait_reply::<Charge>(ids[0], WAIT).await.expect("reply").success();
    assert_eq!(receipt, Some(Receipt { reference: "manual-7".into() }));

    // Unchecked, the operator vouches for the result: stored as given.
    let refund = CommandKey::new(DOMAIN, ids[2]);
    tsq.clone()
        .unchecked()
        .complete_json(refund, &ops(), &serde_json::json!({ "any": 1 }))
        .await
        .expect("unchecked");
    assert_eq!(status(&bus, ids[2]).await, CommandStatus::Completed);
}
