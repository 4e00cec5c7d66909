//! Conformance cases for process managers: a process moves through the
//! transport's units of work and tracked batches, so every backend that
//! passes these runs processes correctly.

use std::{sync::Mutex, time::Duration};

use uuid::Uuid;

use super::{DOMAIN, WAIT};
use crate::{
    Bus, HandlerError, Process, ProcessStatus, Reacts, Steps, Transport, TypedReply, command,
    handler,
    process::{ProcessFilter, ProcessView},
};

/// What the order's step handlers did, per order, in order.
static LOG: Mutex<Vec<(Uuid, String)>> = Mutex::new(Vec::new());

fn log(order: Uuid, what: &str) {
    LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((order, what.to_owned()));
}

fn logged(order: Uuid) -> Vec<String> {
    let log = LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    log.iter().filter(|(o, _)| *o == order).map(|(_, what)| what.clone()).collect()
}

/// Reserves stock; replies with a reservation id.
#[command(domain = "cmdbus-conformance", reply = String)]
pub struct ProcReserve {
    /// The order.
    pub order: Uuid,
}

/// Debits the payment; replies with the amount.
#[command(domain = "cmdbus-conformance", reply = u64)]
pub struct ProcDebit {
    /// The order.
    pub order: Uuid,
}

/// Ships, or refuses to (a FAILED reply) when `refuse`; with `hold`, fails
/// transiently into the TSQ once.
#[command(domain = "cmdbus-conformance", max_attempts = 1)]
pub struct ProcShip {
    /// The order.
    pub order: Uuid,
    /// Refuse by a business rule.
    pub refuse: bool,
}

/// Releases a reservation (a compensation).
#[command(domain = "cmdbus-conformance")]
pub struct ProcRelease {
    /// The order.
    pub order: Uuid,
}

/// Refunds a payment (a compensation), slowly; refused when `refuse`.
#[command(domain = "cmdbus-conformance", max_attempts = 1)]
pub struct ProcRefund {
    /// The order.
    pub order: Uuid,
    /// Refuse by a business rule (the process gets stuck).
    pub refuse: bool,
}

#[handler]
async fn proc_reserve(cmd: ProcReserve) -> Result<String, HandlerError> {
    log(cmd.order, "reserve");
    Ok(format!("r-{}", cmd.order))
}

#[handler]
async fn proc_debit(cmd: ProcDebit) -> Result<u64, HandlerError> {
    log(cmd.order, "debit");
    Ok(42)
}

#[handler]
async fn proc_ship(cmd: ProcShip) -> Result<(), HandlerError> {
    log(cmd.order, "ship");
    if cmd.refuse {
        return Err(HandlerError::business_rule("no_carrier", "no carrier for this address"));
    }
    Ok(())
}

#[handler]
async fn proc_release(cmd: ProcRelease) -> Result<(), HandlerError> {
    log(cmd.order, "release");
    Ok(())
}

#[handler]
async fn proc_refund(cmd: ProcRefund) -> Result<(), HandlerError> {
    log(cmd.order, "refund:start");
    // Slow, so a compensation sent without waiting would overtake it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    log(cmd.order, "refund:end");
    if cmd.refuse {
        return Err(HandlerError::business_rule("refund_refused", "the bank refused the refund"));
    }
    Ok(())
}

/// Reserve, debit, ship; compensations release and refund.
#[derive(crate::Process, Debug, Clone, PartialEq)]
#[process(
    domain = "cmdbus-conformance",
    steps(ProcReserve, ProcDebit, ProcShip),
    compensations(ProcRelease, ProcRefund)
)]
pub struct ProcOrder {
    /// The order.
    pub order: Uuid,
    /// Shipping is refused.
    pub ship_refused: bool,
    /// The refund is refused.
    pub refund_refused: bool,
    /// Instead of starting, wait this long for a timeout first.
    pub wait_ms: Option<u64>,
    /// What the process saw, in order.
    pub seen: Vec<String>,
}

impl Process for ProcOrder {
    type Timeout = String;

    fn start(&mut self, steps: &mut Steps<Self>) {
        match self.wait_ms {
            Some(ms) => {
                steps.timeout_after(Duration::from_millis(ms), "waited".to_owned());
            }
            None => {
                steps.send(ProcReserve { order: self.order });
            }
        }
    }

    fn on_timeout(&mut self, timeout: String, steps: &mut Steps<Self>) {
        self.seen.push(timeout);
        steps.send(ProcReserve { order: self.order });
    }
}

impl Reacts<ProcReserve> for ProcOrder {
    fn on_reply(&mut self, reply: TypedReply<String>, steps: &mut Steps<Self>) {
        if let TypedReply::Success(reservation) = reply {
            self.seen.push(reservation);
            steps.compensate_with(ProcRelease { order: self.order });
            steps.send(ProcDebit { order: self.order });
        }
    }
}

impl Reacts<ProcDebit> for ProcOrder {
    fn on_reply(&mut self, reply: TypedReply<u64>, steps: &mut Steps<Self>) {
        if let TypedReply::Success(amount) = reply {
            self.seen.push(format!("debited {amount}"));
            let refuse = self.refund_refused;
            steps.compensate_with(ProcRefund { order: self.order, refuse });
            steps.send(ProcShip { order: self.order, refuse: self.ship_refused });
        }
    }
}

impl Reacts<ProcShip> for ProcOrder {
    fn on_reply(&mut self, reply: TypedReply<()>, steps: &mut Steps<Self>) {
        match reply {
            TypedReply::Success(()) => self.seen.push("shipped".into()),
            TypedReply::Failed { code, .. } => {
                self.seen.push(code);
                steps.fail("shipping failed");
            }
            _ => steps.fail("shipping canceled"),
        }
    }
}

fn order(order: Uuid) -> ProcOrder {
    ProcOrder { order, ship_refused: false, refund_refused: false, wait_ms: None, seen: Vec::new() }
}

async fn worker<T: Transport>(bus: &Bus<T>) -> crate::Worker {
    super::worker(bus).await
}

/// Waits until the process reaches `status`.
async fn wait_status<T: Transport>(
    bus: &Bus<T>,
    id: Uuid,
    status: ProcessStatus,
) -> ProcessView<ProcOrder> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(view) = bus.process::<ProcOrder>(id).await
            && view.status == status
        {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "process never reached {status}: {:?}",
            bus.process::<ProcOrder>(id).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A process runs its steps in order, each driven by the previous reply,
/// keeps its state, and completes; starting it twice starts it once. Its
/// commands carry its correlation id.
pub async fn a_process_runs_its_steps_and_completes<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = Uuid::now_v7();
    let first = bus.start_process(id, order(id)).await.expect("start");
    let again = bus.start_process(id, order(id)).await.expect("start again");
    assert!(!first.is_duplicate() && again.is_duplicate(), "starting twice starts once");
    let worker = worker(&bus).await;
    let done = wait_status(&bus, id, ProcessStatus::Completed).await;
    worker.shutdown().await;
    assert_eq!(logged(id), ["reserve", "debit", "ship"]);
    assert_eq!(done.state.seen, [format!("r-{id}"), "debited 42".into(), "shipped".into()]);
    assert_eq!(done.correlation_id, id);
    let listed = bus
        .processes()
        .list(&ProcessFilter::new().correlation_id(id), None, 10)
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].process_type, "ProcOrder");
    let unknown = bus.process::<ProcOrder>(Uuid::now_v7()).await;
    assert!(matches!(unknown, Err(crate::Error::UnknownProcess { .. })), "{unknown:?}");
}

/// A failed step runs the compensations of the completed steps newest
/// first, each awaited: the release starts only after the slow refund has
/// ended. The process ends COMPENSATED.
pub async fn a_failed_step_is_compensated_in_reverse_order_each_awaited<T: Transport>(
    transport: T,
) {
    let bus = Bus::new(transport);
    let id = Uuid::now_v7();
    bus.start_process(id, ProcOrder { ship_refused: true, ..order(id) }).await.expect("start");
    let worker = worker(&bus).await;
    let done = wait_status(&bus, id, ProcessStatus::Compensated).await;
    worker.shutdown().await;
    assert_eq!(logged(id), ["reserve", "debit", "ship", "refund:start", "refund:end", "release"]);
    assert_eq!(done.state.seen.last().map(String::as_str), Some("no_carrier"));
    let error = done.last_error.expect("why it failed");
    assert_eq!(error["message"], "shipping failed");
}

/// A compensation that fails leaves the process STUCK where operators see
/// it; a dry run changes nothing; retrying sends the compensation again,
/// abandoning ends it; both refuse in plain words where they do not apply.
pub async fn a_failed_compensation_is_stuck_until_an_operator_acts<T: Transport>(transport: T) {
    let bus = Bus::new(transport);
    let id = Uuid::now_v7();
    let state = ProcOrder { ship_refused: true, refund_refused: true, ..order(id) };
    bus.start_process(id, state).await.expect("start");
    let worker = worker(&bus).await;
    let stuck = wait_status(&bus, id, ProcessStatus::Stuck).await;
    assert_eq!(stuck.last_error.expect("why")["message"], "a compensation failed");
    let ops = crate::Operator::new("ops@example.com").expect("operator");
    let processes = bus.processes();
    let listed = processes
        .list(
            &ProcessFilter::new().process_type("ProcOrder").status(ProcessStatus::Stuck),
            None,
            1000,
        )
        .await
        .expect("list");
    assert!(listed.items.iter().any(|p| p.process_id == id), "stuck processes are listed");
    let dry = processes.retry("ProcOrder", id, &ops, true).await.expect("dry run");
    assert_eq!((dry.status, dry.event_id), (ProcessStatus::Stuck, None));
    let unchanged = processes.get("ProcOrder", id).await.expect("get");
    assert_eq!(
        (unchanged.status, unchanged.version),
        (ProcessStatus::Stuck, stuck_version(&bus, id).await)
    );
    let retried = processes.retry("ProcOrder", id, &ops, false).await.expect("retry");
    assert!(retried.event_id.is_some());
    // The refund is refused again (its payload says so): stuck again.
    let deadline = tokio::time::Instant::now() + WAIT;
    while logged(id).iter().filter(|w| *w == "refund:end").count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the retry never ran: {:?}", logged(id));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_status(&bus, id, ProcessStatus::Stuck).await;
    let blank = processes.abandon("ProcOrder", id, " ", &ops, false).await;
    assert!(matches!(blank, Err(crate::Error::InvalidName { .. })), "{blank:?}");
    processes.abandon("ProcOrder", id, "refunded by hand", &ops, false).await.expect("abandon");
    let abandoned = wait_status(&bus, id, ProcessStatus::Abandoned).await;
    worker.shutdown().await;
    let error = abandoned.last_error.expect("why");
    assert_eq!(
        (error["abandoned"].as_str(), error["operator"].as_str()),
        (Some("refunded by hand"), Some("ops@example.com"))
    );
    let refused =
        processes.retry("ProcOrder", id, &ops, false).await.expect_err("refused").to_string();
    assert!(refused.contains("only a STUCK process can be retried"), "{refused}");
    let refused =
        processes.abandon("ProcOrder", id, "again", &ops, true).await.expect_err("refused");
    assert!(refused.to_string().contains("has ended"), "{refused}");
    assert_eq!(
        logged(id).iter().filter(|w| *w == "release").count(),
        0,
        "never released past a stuck refund"
    );
}

async fn stuck_version<T: Transport>(bus: &Bus<T>, id: Uuid) -> i64 {
    bus.processes().get("ProcOrder", id).await.expect("get").version
}

/// A timeout is durable (a command due later): the process WAITs, then
/// its timeout fires and it goes on.
pub async fn a_process_timeout_fires_and_drives_it_on<T: Transport>(transport: T) {
    let bus = Bus::new(transport);
    let id = Uuid::now_v7();
    bus.start_process(id, ProcOrder { wait_ms: Some(300), ..order(id) }).await.expect("start");
    let worker = worker(&bus).await;
    let waiting = wait_status(&bus, id, ProcessStatus::Waiting).await;
    assert!(waiting.state.seen.is_empty());
    assert!(logged(id).is_empty(), "nothing runs before the timeout");
    let done = wait_status(&bus, id, ProcessStatus::Completed).await;
    worker.shutdown().await;
    assert_eq!(done.state.seen.first().map(String::as_str), Some("waited"));
    assert_eq!(logged(id), ["reserve", "debit", "ship"]);
}

/// An event delivered twice moves the process once: a timeout's event
/// sent again (another command, as a redelivery would be) fires the
/// timeout once, and a step's end for a step it does not wait for changes
/// nothing; both are acknowledged with why.
pub async fn a_duplicate_event_is_ignored<T: Transport>(transport: T) {
    let bus = Bus::new(transport.clone());
    let id = Uuid::now_v7();
    bus.start_process(id, ProcOrder { wait_ms: Some(400), ..order(id) }).await.expect("start");
    let worker = worker(&bus).await;
    wait_status(&bus, id, ProcessStatus::Waiting).await;
    let record = bus.processes().get("ProcOrder", id).await.expect("get");
    let [crate::process::Awaited::Timer { id: timer }] = record.awaiting.as_slice() else {
        panic!("waits for its timeout: {:?}", record.awaiting)
    };
    let unknown_step = serde_json::json!({
        "event": "step",
        "process_id": id,
        "batch": { "batch_id": Uuid::now_v7(), "total": 1, "completed": 1, "failed": 0, "canceled": 0, "members": null }
    });
    let stale = replay(&transport, id, &unknown_step).await;
    let timeout = serde_json::json!({ "event": "timeout", "process_id": id, "timer": timer, "timeout": "waited" });
    let early = replay(&transport, id, &timeout).await;
    let done = wait_status(&bus, id, ProcessStatus::Completed).await;
    // The timeout's own event, due later, finds nothing to do.
    let late = transport.reply_wait(DOMAIN, *timer, WAIT).await.expect("reply").expect("replied");
    worker.shutdown().await;
    assert_eq!(stale.ignored.as_deref(), Some("not waiting for this step"));
    assert!(early.ignored.is_none(), "the first delivery of the timeout moves the process");
    assert_eq!(
        done.state.seen.iter().filter(|s| *s == "waited").count(),
        1,
        "{:?}",
        done.state.seen
    );
    assert_eq!(logged(id), ["reserve", "debit", "ship"], "no step ran twice");
    let late: crate::process::ProcessReport =
        serde_json::from_str(late.body.get()).expect("report");
    assert!(late.ignored.is_some(), "{late:?}");
}

/// Sends a process event as another command would carry it, and returns
/// what handling it reported.
async fn replay<T: Transport>(
    transport: &T,
    process_id: Uuid,
    event: &serde_json::Value,
) -> crate::process::ProcessReport {
    let id = Uuid::now_v7();
    let command = crate::NewCommand::new(
        DOMAIN.to_owned(),
        "ProcOrder".to_owned(),
        id,
        process_id,
        crate::process::PROCESS_REPLY_QUEUE.to_owned(),
        1,
        serde_json::value::to_raw_value(event).expect("json"),
    );
    transport.commands_send(vec![command]).await.expect("send");
    let reply = transport.reply_wait(DOMAIN, id, WAIT).await.expect("reply").expect("replied");
    serde_json::from_str(reply.body.get()).expect("a report")
}
