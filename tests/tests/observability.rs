//! Audit trail, spans, metrics and health, on PostgreSQL.

use std::{
    collections::HashMap,
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use cmdbus::{
    AuditEvent, CommandStatus, HandlerContext, HandlerError, Operator, SendOptions, TraceParent,
    command, handler,
};
use cmdbus_pg::PgBus;
use cmdbus_tests::pg_bus;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

const DOMAIN: &str = "obs-it";
const WAIT: Duration = Duration::from_secs(20);

static PARTNER_FIXED: AtomicBool = AtomicBool::new(false);

/// Fails transiently until the partner is fixed.
#[command(domain = "obs-it", reply = String, max_attempts = 2, backoff = ["10ms"])]
struct Story {}

#[handler]
async fn story(_cmd: Story, ctx: &mut HandlerContext) -> Result<String, HandlerError> {
    if PARTNER_FIXED.load(Ordering::SeqCst) {
        Ok(format!("done on attempt {}", ctx.attempt()))
    } else {
        Err(HandlerError::transient(
            "partner_down",
            format!("partner down on attempt {}", ctx.attempt()),
        ))
    }
}

/// Succeeds at once.
#[command(domain = "obs-it")]
struct Ping {}

#[handler]
async fn ping(_cmd: Ping) -> Result<(), HandlerError> {
    Ok(())
}

async fn wait_status(bus: &PgBus, id: uuid::Uuid, status: CommandStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while bus.command::<Story>(id).await.expect("exists").status != status {
        assert!(tokio::time::Instant::now() < deadline, "never reached {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_tells_the_whole_story_in_order() {
    let bus = pg_bus().await;
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("worker");
    let id = bus.send(Story {}).await.expect("send").command_id();
    wait_status(&bus, id, CommandStatus::InTroubleshootingQueue).await;
    PARTNER_FIXED.store(true, Ordering::SeqCst);
    bus.troubleshooting().retry(id, &Operator::new("ada").expect("operator")).await.expect("retry");
    let reply = bus.wait_reply::<Story>(id, WAIT).await.expect("reply");
    worker.shutdown().await;
    assert_eq!(reply.success().as_deref(), Some("done on attempt 1"));

    let trail = bus.audit_trail_in(DOMAIN, id).await.expect("audit");
    let events: Vec<(AuditEvent, u32)> = trail.iter().map(|e| (e.event, e.attempt)).collect();
    use AuditEvent::*;
    assert_eq!(
        events,
        [
            (Sent, 0),
            (Received, 1),
            (Failed, 1),
            (RetryScheduled, 1),
            (Received, 2),
            (Failed, 2),
            (RetryExhausted, 2),
            (MovedToTsq, 2),
            (OperatorRetry, 0),
            (Received, 1),
            (Completed, 1),
        ]
    );
    assert!(trail.windows(2).all(|w| w[0].at <= w[1].at), "in time order");
    let failed = &trail[2].details;
    assert_eq!(
        (failed["code"].as_str(), failed["kind"].as_str()),
        (Some("partner_down"), Some("transient"))
    );
    assert_eq!(failed["message"], "partner down on attempt 1");
    assert_eq!(trail[3].details["delay_ms"], 10);
    assert!(trail[3].details["due_at"].is_string());
    assert_eq!(trail[7].details["reason"], "retries_exhausted");
    assert_eq!(trail[8].details["operator"], "ada");
    assert!(trail[1].details["worker"].is_string());
}

/// One span's name and fields.
type SeenSpan = (String, HashMap<String, String>);

/// Spans seen by a test subscriber, in creation order.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SeenSpan>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().expect("spans");
        spans.push((attrs.metadata().name().to_owned(), fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(spans.len() - 1);
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(index) = span.extensions().get::<usize>().copied() else { return };
        let mut spans = self.0.lock().expect("spans");
        values.record(&mut Fields(&mut spans[index].1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_the_command_and_link_handler_to_sender() {
    let spans = Spans::default();
    tracing_subscriber::registry().with(spans.clone()).init();
    let bus = pg_bus().await;
    let worker = bus.worker().domain(DOMAIN).start().await.expect("worker");
    let parent: TraceParent =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
    let id = bus
        .send_with(Ping {}, SendOptions::new().traceparent(parent))
        .await
        .expect("send")
        .command_id();
    bus.wait_reply::<Ping>(id, WAIT).await.expect("reply");
    PARTNER_FIXED.store(false, Ordering::SeqCst);
    let failing = bus.send(Story {}).await.expect("send").command_id();
    wait_status(&bus, failing, CommandStatus::InTroubleshootingQueue).await;
    worker.shutdown().await;

    let spans = spans.0.lock().expect("spans").clone();
    let find = |name: &str, id: uuid::Uuid| {
        spans
            .iter()
            .filter(|(n, f)| n == name && f.get("command_id") == Some(&id.to_string()))
            .map(|(_, f)| f.clone())
            .collect::<Vec<_>>()
    };
    let send = find("cmdbus.send", id).pop().expect("send span");
    assert_eq!((send["domain"].as_str(), send["command_type"].as_str()), ("obs-it", "Ping"));
    assert_eq!(send["outcome"], "accepted");
    let sent_trace: TraceParent = send["traceparent"].parse().expect("send traceparent");
    assert_eq!(sent_trace.trace_id(), parent.trace_id(), "the send continues the caller's trace");

    let handle = find("cmdbus.handle", id).pop().expect("handle span");
    assert_eq!(handle["parent_traceparent"], send["traceparent"], "handler links to the send");
    let handled: TraceParent = handle["traceparent"].parse().expect("handle traceparent");
    assert_eq!(handled.trace_id(), parent.trace_id());
    assert_eq!((handle["attempt"].as_str(), handle["outcome"].as_str()), ("1", "completed"));
    assert_eq!(handle["correlation_id"], id.to_string());

    let failures = find("cmdbus.handle", failing);
    assert_eq!(failures.len(), 2, "one span per attempt");
    assert_eq!(failures[0]["outcome"], "retry");
    assert_eq!(failures[1]["outcome"], "troubleshoot");
    assert_eq!(failures[1]["error.code"], "partner_down");
    assert_eq!(failures[1]["error.message"], "partner down on attempt 2");
}

static SNAPSHOTTER: LazyLock<Snapshotter> = LazyLock::new(|| {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder in this process");
    snapshotter
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_outcome() {
    let snapshotter = &*SNAPSHOTTER;
    let bus = pg_bus().await;
    PARTNER_FIXED.store(false, Ordering::SeqCst);
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .rescue_interval(Duration::from_millis(20))
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker");
    for _ in 0..3 {
        bus.send(Ping {}).await.expect("send");
    }
    let story = bus.send(Story {}).await.expect("send").command_id();
    wait_status(&bus, story, CommandStatus::InTroubleshootingQueue).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.shutdown().await;

    let mut values: HashMap<String, f64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> =
            key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        let number = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        };
        values.insert(name, number);
    }
    let get = |name: &str| {
        values.get(name).copied().unwrap_or_else(|| panic!("missing {name} in {values:#?}"))
    };
    assert_eq!(get("cmdbus_commands_sent_total{domain=obs-it,command_type=Ping}"), 3.0);
    assert_eq!(get("cmdbus_commands_completed_total{domain=obs-it,command_type=Ping}"), 3.0);
    assert_eq!(get("cmdbus_commands_retried_total{domain=obs-it,command_type=Story}"), 1.0);
    assert_eq!(
        get("cmdbus_commands_failed_total{domain=obs-it,command_type=Story,kind=transient}"),
        2.0
    );
    assert_eq!(
        get(
            "cmdbus_commands_moved_to_tsq_total{domain=obs-it,command_type=Story,reason=retries_exhausted}"
        ),
        1.0
    );
    assert_eq!(
        get("cmdbus_handler_duration_seconds{domain=obs-it,command_type=Ping,outcome=completed}"),
        3.0
    );
    assert_eq!(get("cmdbus_lease_to_complete_seconds{domain=obs-it}"), 5.0);
    assert_eq!(get("cmdbus_queue_depth{domain=obs-it}"), 0.0);
    assert!(get("cmdbus_oldest_pending_age_seconds{domain=obs-it}") >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_connection_and_lag() {
    let database = cmdbus_tests::TestDatabase::create().await;
    let admin = database.admin().clone();
    let bus = PgBus::connect(&database.url).await.expect("connect");
    let worker = bus
        .worker()
        .domain(DOMAIN)
        .poll_interval(Duration::from_millis(50))
        .rescue_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("worker");
    let until = |want: bool| {
        let worker = &worker;
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let health = worker.health();
                if health.is_ready() == want {
                    return health;
                }
                assert!(tokio::time::Instant::now() < deadline, "health stuck: {health:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let ready = until(true).await;
    assert_eq!((ready.connected, ready.lease_errors), (true, 0));

    // The database goes away: not connected, not ready.
    let block = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", database.name);
    sqlx::query(sqlx::AssertSqlSafe(block)).execute(&admin).await.expect("block");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database.name)
        .execute(&admin)
        .await
        .expect("terminate");
    let down = until(false).await;
    assert!(!down.connected);

    // It comes back: the worker reconnects by itself.
    let allow = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", database.name);
    sqlx::query(sqlx::AssertSqlSafe(allow)).execute(&admin).await.expect("allow");
    until(true).await;
    let id = bus.send(Ping {}).await.expect("send after reconnect").command_id();
    bus.wait_reply::<Ping>(id, WAIT).await.expect("processed after reconnect");
    worker.shutdown().await;
    drop(bus);
    database.drop_now().await;
}
