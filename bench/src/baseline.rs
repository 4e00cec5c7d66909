//! The ceiling: the minimal SQL a command bus of this design needs, issued
//! directly — insert a command and its audit row; lease a batch with SKIP
//! LOCKED (attempt counted, audited); complete the batch with audit rows —
//! end to end, draining a backlog, and for latency with LISTEN/NOTIFY.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::{Config, measure_rate};

pub(crate) struct Baseline {
    pool: PgPool,
    schema: String,
}

impl Baseline {
    pub(crate) async fn create(pool: PgPool) -> Self {
        let schema = format!("bench_base_{}", Uuid::new_v4().simple());
        let ddl = format!(
            r#"CREATE SCHEMA "{schema}";
            CREATE TABLE "{schema}".jobs (
                id uuid PRIMARY KEY, domain text NOT NULL, status text NOT NULL, payload jsonb NOT NULL,
                attempts int NOT NULL DEFAULT 0, lease_expires_at timestamptz,
                due_at timestamptz NOT NULL DEFAULT now(), created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON "{schema}".jobs (due_at) WHERE status = 'PENDING';
            CREATE TABLE "{schema}".events (
                id bigserial PRIMARY KEY, job_id uuid NOT NULL, event text NOT NULL,
                at timestamptz NOT NULL DEFAULT now());"#
        );
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&pool).await.expect("baseline schema");
        Self { pool, schema }
    }

    pub(crate) async fn drop_schema_only(self: Arc<Self>) {
        let ddl = format!(r#"DROP SCHEMA "{}" CASCADE"#, self.schema);
        let _ = sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&self.pool).await;
    }

    async fn insert(&self, n: usize) {
        let sql = format!(
            r#"WITH j AS (
                INSERT INTO "{s}".jobs (id, domain, status, payload)
                SELECT id, 'bench', 'PENDING', '{{"n": 1}}'::jsonb FROM unnest($1::uuid[]) AS t(id)
                RETURNING id)
            INSERT INTO "{s}".events (job_id, event) SELECT id, 'SENT' FROM j"#,
            s = self.schema
        );
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .execute(&self.pool)
            .await
            .expect("baseline insert");
    }

    /// Leases up to `limit`, then completes them; returns how many.
    async fn lease_and_complete(&self, limit: i64) -> u64 {
        self.lease_and_complete_timed(limit).await.len() as u64
    }

    /// Leases up to `limit`, then completes them; returns each leased
    /// command's send time (µs since the epoch) and send→lease latency in ms
    /// (NaN when it carries no send time).
    async fn lease_and_complete_timed(&self, limit: i64) -> Vec<(f64, f64)> {
        let lease = format!(
            r#"WITH due AS (
                SELECT id FROM "{s}".jobs WHERE status = 'PENDING' AND due_at <= now()
                ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED),
            l AS (
                UPDATE "{s}".jobs j SET status = 'IN_PROGRESS', attempts = j.attempts + 1,
                    lease_expires_at = now() + interval '30 seconds', updated_at = now()
                FROM due WHERE j.id = due.id RETURNING j.id, j.payload),
            e AS (INSERT INTO "{s}".events (job_id, event) SELECT id, 'RECEIVED' FROM l)
            SELECT id, payload::text FROM l"#,
            s = self.schema
        );
        let rows: Vec<(Uuid, String)> = sqlx::query_as(AssertSqlSafe(lease))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .expect("baseline lease");
        let now = crate::now_us() as f64;
        let latencies = rows
            .iter()
            .map(|(_, payload)| {
                let payload: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
                let sent = payload["sent_at_us"].as_f64().unwrap_or(f64::NAN);
                (sent, (now - sent) / 1000.0)
            })
            .collect();
        self.complete(rows.into_iter().map(|(id, _)| id).collect()).await;
        latencies
    }

    async fn complete(&self, ids: Vec<Uuid>) {
        if ids.is_empty() {
            return;
        }
        let complete = format!(
            r#"WITH c AS (
                UPDATE "{s}".jobs SET status = 'COMPLETED', lease_expires_at = NULL, updated_at = now()
                WHERE id = ANY($1) RETURNING id)
            INSERT INTO "{s}".events (job_id, event) SELECT id, 'COMPLETED' FROM c"#,
            s = self.schema
        );
        sqlx::query(AssertSqlSafe(complete))
            .bind(ids)
            .execute(&self.pool)
            .await
            .expect("baseline complete");
    }

    /// Completed commands/s draining `config.backlog` preloaded commands with
    /// two consumers leasing 64 at a time (what the worker is compared with).
    pub(crate) async fn drain(self: &Arc<Self>, config: &Config) -> f64 {
        let mut left = config.backlog;
        while left > 0 {
            let n = left.min(1000);
            self.insert(n).await;
            left -= n;
        }
        let total = config.backlog as u64;
        let done = Arc::new(AtomicU64::new(0));
        let at = std::time::Instant::now();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (this, done) = (Arc::clone(self), Arc::clone(&done));
                tokio::spawn(async move {
                    while done.load(Ordering::Relaxed) < total {
                        let n = this.lease_and_complete(64).await;
                        done.fetch_add(n, Ordering::Relaxed);
                        if n == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                })
            })
            .collect();
        for consumer in consumers {
            let _ = consumer.await;
        }
        total as f64 / at.elapsed().as_secs_f64()
    }

    /// send→start latency (p50, p99 in ms) of a hand-written client at a
    /// fixed 500 commands/s: one statement inserts the command, its audit row
    /// and a NOTIFY; a LISTENing connection leases on each wake-up (and
    /// completes what it leased). Like cmdbus's, measured after the warm-up.
    pub(crate) async fn latency(self: &Arc<Self>, config: &Config, url: &str) -> (f64, f64) {
        let channel = format!("{}_wake", self.schema);
        let mut listener = sqlx::postgres::PgListener::connect(url).await.expect("listen");
        listener.listen(&channel).await.expect("listen");
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = {
            let (this, stop) = (Arc::clone(self), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut started = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let woken =
                        tokio::time::timeout(Duration::from_millis(100), listener.recv()).await;
                    if !matches!(woken, Ok(Ok(_))) {
                        continue;
                    }
                    started.extend(this.lease_and_complete_timed(64).await);
                }
                started
            })
        };
        let send = format!(
            r#"WITH j AS (
                INSERT INTO "{s}".jobs (id, domain, status, payload)
                VALUES ($1, 'bench', 'PENDING', jsonb_build_object('sent_at_us', $2::bigint))
                RETURNING id),
            e AS (INSERT INTO "{s}".events (job_id, event) SELECT id, 'SENT' FROM j)
            SELECT pg_notify($3, 'bench')"#,
            s = self.schema
        );
        let mut ticker = tokio::time::interval(Duration::from_millis(2));
        let (from_us, until) = crate::latency_window(config);
        let mut sends = Vec::new();
        while std::time::Instant::now() < until {
            ticker.tick().await;
            let (pool, send, channel) = (self.pool.clone(), send.clone(), channel.clone());
            sends.push(tokio::spawn(async move {
                sqlx::query(AssertSqlSafe(send))
                    .bind(Uuid::now_v7())
                    .bind(crate::now_us() as i64)
                    .bind(channel)
                    .execute(&pool)
                    .await
                    .expect("baseline send");
            }));
        }
        for send in sends {
            let _ = send.await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut started: Vec<f64> = consumer
            .await
            .expect("consumer")
            .into_iter()
            .filter(|&(sent_us, _)| sent_us >= from_us as f64)
            .map(|(_, latency)| latency)
            .collect();
        started.sort_by(f64::total_cmp);
        (crate::percentile(&started, 50.0), crate::percentile(&started, 99.0))
    }

    /// Completed commands/s with `senders` tasks each inserting `per_send`
    /// commands per statement, and two consumers leasing 64 at a time.
    pub(crate) async fn e2e(
        self: &Arc<Self>,
        config: &Config,
        senders: usize,
        per_send: usize,
    ) -> f64 {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..senders {
            let (this, stop) = (Arc::clone(self), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    this.insert(per_send).await;
                }
            }));
        }
        for _ in 0..2 {
            let (this, stop, done) = (Arc::clone(self), Arc::clone(&stop), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = this.lease_and_complete(64).await;
                    done.fetch_add(n, Ordering::Relaxed);
                    if n == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }));
        }
        let rate = measure_rate(&done, config.warmup, config.window).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        rate
    }
}
