//! Migration 0002 keeps a version-1 schema's history: a schema filled as
//! version 1 wrote it (its SQL, its audit rows, its replies) is migrated, read
//! back unchanged, and served by workers.

use std::time::Duration;

use cmdbus::{AuditEvent, Command, CommandStatus, HandlerError, Operator, TypedReply, handler};
use cmdbus_pg::{CommandQuery, PgBus};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

/// Replies with its text.
#[derive(Command)]
#[command(domain = "migrate-it", reply = String, max_attempts = 3, backoff = ["10ms"])]
struct Note {
    text: String,
}

#[handler]
async fn note(cmd: Note) -> Result<String, HandlerError> {
    Ok(cmd.text)
}

const PENDING: u128 = 1;
const LEASED: u128 = 2;
const COMPLETED: u128 = 3;
const IN_TSQ: u128 = 4;

/// The rows version 1 wrote for a command in each state (its send, lease,
/// record and rescue statements), including a lease that has expired.
fn v1_history(s: &str) -> String {
    format!(
        r#"INSERT INTO "{s}".commands (domain, command_id, command_type, correlation_id, reply_to, status,
               attempts, max_attempts, payload, lease_id, lease_expires_at, leased_by, last_error)
           VALUES
             ('migrate-it', '{PENDING:032x}', 'Note', gen_random_uuid(), 'default', 'PENDING', 0, 3,
              '{{"text": "pending"}}', NULL, NULL, NULL, NULL),
             ('migrate-it', '{LEASED:032x}', 'Note', gen_random_uuid(), 'default', 'IN_PROGRESS', 1, 3,
              '{{"text": "leased"}}', gen_random_uuid(), now() - interval '1 minute', 'v1-worker', NULL),
             ('migrate-it', '{COMPLETED:032x}', 'Note', gen_random_uuid(), 'default', 'COMPLETED', 1, 3,
              '{{"text": "done"}}', NULL, NULL, NULL, NULL),
             ('migrate-it', '{IN_TSQ:032x}', 'Note', gen_random_uuid(), 'default', 'IN_TROUBLESHOOTING_QUEUE', 1, 3,
              '{{"text": "tsq"}}', NULL, NULL, NULL, '{{"kind": "permanent", "error_type": "E", "code": "bad", "message": "bad"}}');
           INSERT INTO "{s}".audit (domain, command_id, event, attempt, details)
           SELECT 'migrate-it', command_id, event, attempt, details::jsonb
           FROM (VALUES
             ('{PENDING:032x}'::uuid, 'SENT', 0, '{{}}'),
             ('{LEASED:032x}'::uuid, 'SENT', 0, '{{}}'),
             ('{LEASED:032x}'::uuid, 'RECEIVED', 1, '{{"worker": "v1-worker"}}'),
             ('{COMPLETED:032x}'::uuid, 'SENT', 0, '{{}}'),
             ('{COMPLETED:032x}'::uuid, 'RECEIVED', 1, '{{"worker": "v1-worker"}}'),
             ('{COMPLETED:032x}'::uuid, 'COMPLETED', 1, '{{}}'),
             ('{IN_TSQ:032x}'::uuid, 'SENT', 0, '{{}}'),
             ('{IN_TSQ:032x}'::uuid, 'RECEIVED', 1, '{{"worker": "v1-worker"}}'),
             ('{IN_TSQ:032x}'::uuid, 'FAILED', 1, '{{"code": "bad"}}'),
             ('{IN_TSQ:032x}'::uuid, 'MOVED_TO_TSQ', 1, '{{"reason": "permanent"}}')
           ) AS e(command_id, event, attempt, details);
           INSERT INTO "{s}".replies (domain, command_id, correlation_id, reply_to, status, body)
           SELECT domain, command_id, correlation_id, reply_to, 'SUCCESS', '"done"'
           FROM "{s}".commands WHERE status = 'COMPLETED';"#
    )
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

async fn events(bus: &PgBus, n: u128) -> Vec<AuditEvent> {
    let trail = bus.audit_trail_in("migrate-it", id(n)).await.expect("audit");
    trail.into_iter().map(|e| e.event).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_keeps_its_history_and_is_served_after_migrating() {
    use AuditEvent::{
        Completed, Failed, LeaseExpired, MovedToTsq, OperatorRetry, Received, RetryScheduled, Sent,
    };
    let pool = cmdbus_tests::pool().await;
    let schema = cmdbus_tests::fresh_schema();
    let v1 = &cmdbus_pg::migrations_sql(&schema).expect("valid")[0];
    assert_eq!(v1.0, 1);
    let setup = format!("CREATE SCHEMA \"{schema}\";\n{}\n{}", v1.2, v1_history(&schema));
    sqlx::raw_sql(AssertSqlSafe(setup)).execute(&pool).await.expect("a version 1 schema");

    let bus = PgBus::builder(pool.clone()).schema(&schema).build().await.expect("migrates");
    assert_eq!(bus.transport().schema_version(), cmdbus_pg::SCHEMA_VERSION);

    // Read back as version 1 left it: no event lost or doubled.
    assert_eq!(events(&bus, PENDING).await, [Sent]);
    assert_eq!(events(&bus, LEASED).await, [Sent, Received]);
    assert_eq!(events(&bus, COMPLETED).await, [Sent, Received, Completed]);
    assert_eq!(events(&bus, IN_TSQ).await, [Sent, Received, Failed, MovedToTsq]);
    let reply = bus.wait_reply::<Note>(id(COMPLETED), Duration::from_secs(1)).await.expect("reply");
    assert_eq!(reply, TypedReply::Success("done".to_owned()));
    let tsq = bus.troubleshooting().list(&cmdbus::TsqFilter::new(), 10, None).await.expect("tsq");
    assert_eq!(tsq.items.len(), 1);
    assert_eq!(tsq.items[0].last_error.as_ref().map(|e| e.code.as_str()), Some("bad"));
    // Queries on what never changes are served by migration 0011's
    // command_keys, filled from the version-1 rows.
    let by_type = bus.query(&CommandQuery::new().of_type::<Note>()).await.expect("query");
    let mut found: Vec<Uuid> = by_type.items.iter().map(|c| c.command_id).collect();
    found.sort();
    assert_eq!(found, [id(PENDING), id(LEASED), id(COMPLETED), id(IN_TSQ)]);
    let correlated = CommandQuery::new().correlation_id(by_type.items[0].correlation_id);
    let one = bus.query(&correlated).await.expect("query");
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].command_id, by_type.items[0].command_id);

    // Served by version 2: the pending one runs, the expired lease is
    // rescued and runs, the TSQ item is retried by an operator and runs.
    let worker = bus
        .worker()
        .domain("migrate-it")
        .rescue_interval(Duration::from_millis(50))
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("worker");
    let operator = Operator::new("migration-test").expect("operator");
    bus.troubleshooting().retry(id(IN_TSQ), &operator).await.expect("operator retry");
    for n in [PENDING, LEASED, IN_TSQ] {
        let reply = bus.wait_reply::<Note>(id(n), Duration::from_secs(10)).await.expect("reply");
        assert!(matches!(reply, TypedReply::Success(_)), "{n}: {reply:?}");
    }
    worker.shutdown().await;
    assert_eq!(events(&bus, PENDING).await, [Sent, Received, Completed]);
    assert_eq!(
        events(&bus, LEASED).await,
        [Sent, Received, LeaseExpired, RetryScheduled, Received, Completed]
    );
    assert_eq!(
        events(&bus, IN_TSQ).await,
        [Sent, Received, Failed, MovedToTsq, OperatorRetry, Received, Completed]
    );
    for n in [PENDING, LEASED, COMPLETED, IN_TSQ] {
        let record = bus.command::<Note>(id(n)).await.expect("record");
        assert_eq!(record.status, CommandStatus::Completed, "{n}");
    }
}
