//! The operator console with a big queue: 100k items in the TSQ and a
//! 1M-command history spread over the last day (42k of it within the
//! overview's hour), timed over HTTP as a browser asks (page rendered,
//! counts included).

use std::time::{Duration, Instant};

use axum::http::request::Parts;
use cmdbus_web::{Console, Identify, Role, User};
use sqlx::AssertSqlSafe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{drop_schema, fresh_bus};

struct BenchOperator;

impl Identify for BenchOperator {
    fn identify(&self, _: &Parts) -> Option<User> {
        Some(User::new(cmdbus::Operator::new("bench").ok()?, Role::Operator))
    }
}

/// Median milliseconds of each console page, by name.
pub(crate) async fn timings(url: &str, history: u64, tsq: u64) -> Vec<(&'static str, f64)> {
    let bus = fresh_bus(url).await;
    let s = bus.transport().schema().to_owned();
    let fill = format!(
        r#"INSERT INTO "{s}".commands (domain, command_id, command_type, correlation_id, reply_to, status,
                attempts, max_attempts, payload, created_at, updated_at, received_at, finished_at)
           SELECT 'shop-' || (n % 4), id, 'Type' || (n % 10), id, 'default',
                  CASE WHEN n % 20 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, 1, 3,
                  '{{"order": 1, "note": "history"}}', at, at, at, at
           FROM (SELECT n, gen_random_uuid() AS id, now() - n * interval '86 milliseconds' AS at
                 FROM generate_series(1, {history}) n) g;
           INSERT INTO "{s}".commands (domain, command_id, command_type, correlation_id, reply_to, status,
                attempts, max_attempts, payload, last_error, created_at, updated_at)
           SELECT 'shop-' || (n % 4), id, 'Type' || (n % 10), id, 'default', 'IN_TROUBLESHOOTING_QUEUE',
                  3, 3, '{{"order": 2}}',
                  jsonb_build_object('kind', 'permanent', 'error_type', 'HandlerError',
                                     'code', 'code_' || (n % 7), 'message', 'failed ' || n),
                  now() - n * interval '50 milliseconds', now() - n * interval '50 milliseconds'
           FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, {tsq}) n) g;
           ANALYZE "{s}".commands;"#
    );
    sqlx::raw_sql(AssertSqlSafe(fill)).execute(bus.pool()).await.expect("console fill");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let address = listener.local_addr().expect("address");
    let console = Console::mounted(bus.clone(), BenchOperator);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cmdbus_web::serve(listener, console, async {
        let _ = stopped.await;
    }));
    let mut results = Vec::new();
    for (name, path) in [
        ("console_tsq_100k_ms", "/tsq"),
        ("console_tsq_100k_by_code_ms", "/tsq?domain=shop-1&code=code_3"),
        ("console_overview_1m_ms", "/"),
        ("console_query_1m_ms", "/query?status=COMPLETED&domain=shop-2"),
    ] {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..15 {
            let started = Instant::now();
            let status = get(address, path).await;
            times.push(started.elapsed());
            assert_eq!(status, 200, "{path}");
        }
        times.sort();
        results.push((name, times[times.len() / 2].as_secs_f64() * 1000.0));
    }
    let _ = stop.send(());
    let _ = server.await;
    drop_schema(&bus).await;
    results
}

/// The status of a GET of `path`, the whole response read.
async fn get(address: std::net::SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("console");
    let request = format!("GET {path} HTTP/1.0\r\nhost: bench\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response");
    let head = String::from_utf8_lossy(&response[..response.len().min(16)]).into_owned();
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}
