//! The ceiling: the minimal SQL a command bus of this design needs, issued
//! directly — insert a command and its audit row; lease a batch with SKIP
//! LOCKED (attempt counted, audited); complete the batch with audit rows.

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
        if rows.is_empty() {
            return 0;
        }
        let ids: Vec<Uuid> = rows.into_iter().map(|(id, _)| id).collect();
        let complete = format!(
            r#"WITH c AS (
                UPDATE "{s}".jobs SET status = 'COMPLETED', lease_expires_at = NULL, updated_at = now()
                WHERE id = ANY($1) RETURNING id)
            INSERT INTO "{s}".events (job_id, event) SELECT id, 'COMPLETED' FROM c"#,
            s = self.schema
        );
        let n = ids.len() as u64;
        sqlx::query(AssertSqlSafe(complete))
            .bind(ids)
            .execute(&self.pool)
            .await
            .expect("baseline complete");
        n
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
