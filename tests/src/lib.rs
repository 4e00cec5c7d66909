//! Shared fixtures for cmdbus's own integration tests: every test gets a
//! fresh schema (or database) in the server at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! The server is shared with other checkouts and CI jobs, so every object a
//! test creates is named `t_<checkout tag>_…` ([`test_object_prefix`]) and
//! recorded, by name, in this checkout's ledger ([`ledger_path`]):
//! `scripts/test-data.sh sweep` (run by `make test` before and after the
//! run) drops exactly the objects the ledger names — no pattern, no FORCE.

use std::time::Duration;

mod cluster;
pub use cluster::PrivateCluster;

use cmdbus_pg::{PgBus, PgTransport};
use sqlx::{PgPool, postgres::PgPoolOptions};

/// The database tests run against.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A small pool on the test database.
pub async fn pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&database_url())
        .await
        .expect("PostgreSQL is reachable (run `make postgres`)")
}

/// Identifies this checkout: FNV-1a (32 bit) of the absolute path of the
/// `tests` crate, as 8 hex digits. `scripts/test-data.sh tag` computes the
/// same from the shell (a test checks that the two agree).
pub fn checkout_tag() -> String {
    let hash = env!("CARGO_MANIFEST_DIR")
        .bytes()
        .fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    format!("{hash:08x}")
}

/// The prefix of every schema, database and role this checkout's tests create.
pub fn test_object_prefix() -> String {
    format!("t_{}_", checkout_tag())
}

/// The file that lists, one per line, every name [`fresh_name`] handed out
/// in this checkout since the last sweep (`scripts/test-data.sh` reads the
/// same path).
pub fn ledger_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data/created")
}

/// A unique name for one test's schema, database or role, recorded in the
/// ledger before anything is created under it, so the sweep after the run
/// drops it even if the test dies half-way.
pub fn fresh_name() -> String {
    use std::io::Write;
    let name = format!("{}{}", test_object_prefix(), uuid::Uuid::new_v4().simple());
    let path = ledger_path();
    let recorded = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path))
        // One short append per name: concurrent test processes do not interleave.
        .and_then(|mut ledger| ledger.write_all(format!("{name}\n").as_bytes()));
    if let Err(error) = recorded {
        panic!("cannot record test object {name} in {}: {error}", path.display());
    }
    name
}

/// A unique schema name for one test.
pub fn fresh_schema() -> String {
    fresh_name()
}

/// A database of the test's own, for tests that terminate connections or
/// block the whole database.
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
    admin: PgPool,
}

impl TestDatabase {
    /// Creates a fresh database on the test server.
    pub async fn create() -> Self {
        let admin = pool().await;
        let name = fresh_name();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .expect("create the test database");
        let base = database_url();
        let url = format!("{}/{name}", base.rsplit_once('/').expect("DATABASE_URL has a path").0);
        Self { name, url, admin }
    }

    /// A pool on the server's test database (not this one), for
    /// terminating or blocking this one's connections.
    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    /// Drops the database once this test's own connections to it have
    /// closed (pools close theirs in the background). Never by force: if
    /// some are still open after a while, the sweep after the run drops it,
    /// when this process and its connections are gone.
    pub async fn drop_now(self) {
        let ddl = format!("DROP DATABASE IF EXISTS \"{}\"", self.name);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match sqlx::query(sqlx::AssertSqlSafe(ddl.clone())).execute(&self.admin).await {
                Ok(_) => return,
                // 55006: still in use by one of this test's connections.
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55006")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    eprintln!("test database {} left to the sweep: {error}", self.name);
                    return;
                }
            }
        }
    }
}

/// A bus on a fresh schema.
pub async fn pg_bus() -> PgBus {
    PgBus::builder(pool().await).schema(fresh_schema()).build().await.expect("bus builds")
}

/// A bus on a fresh schema whose pool has one connection: what a test reads
/// back through it (prepared statements, session settings) is what the
/// transport left on the connection it used.
pub async fn one_connection_bus() -> PgBus {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&database_url())
        .await
        .expect("PostgreSQL is reachable (run `make postgres`)");
    PgBus::builder(pool).schema(fresh_schema()).build().await.expect("bus builds")
}

/// Runs `sql` (with `$1` = `id`) behind the library's back, as a DBA with
/// superuser rights could: with triggers off, the payload-edit guard among
/// them. For tests of rows edited into something the library never writes.
pub async fn edit_as_dba(bus: &PgBus, sql: &str, id: uuid::Uuid) {
    let mut tx = bus.pool().begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("triggers off");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("edit");
    tx.commit().await.expect("commit");
}

/// A transport on a fresh schema.
pub async fn pg_transport() -> PgTransport {
    pg_bus().await.transport().clone()
}

/// Commands shared by the crash tests and their child worker process.
pub mod crash {
    /// Its handler in `crash_worker` never returns.
    #[cmdbus::command(domain = "crash", max_attempts = 3, backoff = ["10ms"])]
    pub struct Hang {}

    /// Its handler in `crash_worker` sleeps `ms`, then succeeds.
    #[cmdbus::command(domain = "crash", max_attempts = 5, backoff = ["10ms"])]
    pub struct Slow {
        /// How long the handler sleeps.
        pub ms: u64,
    }

    /// A process step: its handler in `crash_worker` sleeps, then succeeds,
    /// or refuses when `refuse` (a business rule).
    #[derive(cmdbus::Command)]
    #[command(domain = "crash", max_attempts = 5, backoff = ["10ms"])]
    pub struct CrashStep {
        /// The process.
        pub order: u32,
        /// Which step (1 or 2).
        pub n: u32,
        /// Refuse it.
        pub refuse: bool,
    }

    /// Undoes step 1 (a compensation); its handler succeeds.
    #[derive(cmdbus::Command)]
    #[command(domain = "crash", max_attempts = 5, backoff = ["10ms"])]
    pub struct CrashUndo {
        /// The process.
        pub order: u32,
    }

    /// Two steps; the second is refused for odd orders, which undoes the
    /// first. The model: even orders COMPLETED with steps [1, 2], odd ones
    /// COMPENSATED with steps [1].
    #[derive(cmdbus::Process, Debug)]
    #[process(domain = "crash", steps(CrashStep), compensations(CrashUndo))]
    pub struct CrashOrder {
        /// The order.
        pub order: u32,
        /// Steps that completed, in order.
        pub done: Vec<u32>,
    }

    impl cmdbus::Process for CrashOrder {
        type Timeout = ();
        fn start(&mut self, steps: &mut cmdbus::Steps<Self>) {
            steps.send(CrashStep { order: self.order, n: 1, refuse: false });
        }
    }

    impl cmdbus::Reacts<CrashStep> for CrashOrder {
        fn on_reply(&mut self, reply: cmdbus::TypedReply<()>, steps: &mut cmdbus::Steps<Self>) {
            if !matches!(reply, cmdbus::TypedReply::Success(())) {
                return steps.fail("a step was refused");
            }
            let n = self.done.len() as u32 + 1;
            self.done.push(n);
            if n == 1 {
                steps.compensate_with(CrashUndo { order: self.order });
                steps.send(CrashStep { order: self.order, n: 2, refuse: self.order % 2 == 1 });
            }
        }
    }

    /// A batch of `Slow` ended; its handler in `crash_worker` succeeds.
    #[derive(cmdbus::Command)]
    #[command(domain = "crash", max_attempts = 5, backoff = ["10ms"])]
    pub struct BatchEnded {
        /// How the batch ended.
        pub batch: cmdbus::BatchOutcome,
    }
}

/// Every way a command's stored state, audit trail and replies can disagree,
/// as one row per offending command (empty when all is consistent):
/// - exactly one SENT; RECEIVED = attempts (no operator retry in these runs);
/// - COMPLETED status ⇔ one COMPLETED event ⇔ one SUCCESS reply;
/// - FAILED status ⇔ one FAILED reply; TSQ status ⇔ one MOVED_TO_TSQ, no reply;
/// - nothing left PENDING or IN_PROGRESS.
pub async fn inconsistencies(bus: &PgBus) -> Vec<String> {
    let s = bus.transport().schema();
    let sql = format!(
        r#"WITH events AS (
               SELECT command_id,
                      count(*) FILTER (WHERE event = 'SENT') AS sent,
                      count(*) FILTER (WHERE event = 'RECEIVED') AS received,
                      count(*) FILTER (WHERE event = 'COMPLETED') AS completed,
                      count(*) FILTER (WHERE event = 'MOVED_TO_TSQ') AS moved
               FROM "{s}".audit_trail GROUP BY command_id),
           replies AS (
               SELECT command_id, count(*) AS n, min(status) AS status FROM "{s}".replies GROUP BY command_id)
           SELECT c.command_id::text || ' ' || c.status || ' attempts=' || c.attempts
                  || ' sent=' || coalesce(e.sent, 0) || ' received=' || coalesce(e.received, 0)
                  || ' completed=' || coalesce(e.completed, 0) || ' moved=' || coalesce(e.moved, 0)
                  || ' replies=' || r.n || ' ' || r.status
           FROM "{s}".commands c
           LEFT JOIN events e USING (command_id)
           LEFT JOIN (SELECT command_id, n, status FROM replies) r0 USING (command_id)
           CROSS JOIN LATERAL (SELECT coalesce(r0.n, 0) AS n, coalesce(r0.status, '-') AS status) r
           WHERE coalesce(e.sent, 0) <> 1
              OR coalesce(e.received, 0) <> c.attempts
              OR c.status NOT IN ('COMPLETED', 'FAILED', 'IN_TROUBLESHOOTING_QUEUE')
              OR (c.status = 'COMPLETED') <> (coalesce(e.completed, 0) = 1 AND r.n = 1 AND r.status = 'SUCCESS')
              OR coalesce(e.completed, 0) > 1
              OR (c.status = 'FAILED') <> (r.n = 1 AND r.status = 'FAILED' AND coalesce(e.completed, 0) = 0)
              OR (c.status = 'IN_TROUBLESHOOTING_QUEUE') <> (coalesce(e.moved, 0) = 1 AND r.n = 0)
              OR r.n > 1
           LIMIT 20"#
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(bus.pool())
        .await
        .expect("invariant query")
}

/// Commands per status.
pub async fn status_counts(bus: &PgBus) -> std::collections::BTreeMap<String, i64> {
    let sql = format!(
        r#"SELECT status, count(*) FROM "{}".commands GROUP BY status"#,
        bus.transport().schema()
    );
    sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
        .fetch_all(bus.pool())
        .await
        .expect("counts")
        .into_iter()
        .collect()
}

/// Waits until no command is PENDING or IN_PROGRESS; returns the counts per status.
///
/// # Panics
///
/// When `timeout` passes first (a test failure).
pub async fn settled(bus: &PgBus, timeout: Duration) -> std::collections::BTreeMap<String, i64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let counts = status_counts(bus).await;
        let open = counts.get("PENDING").copied().unwrap_or(0)
            + counts.get("IN_PROGRESS").copied().unwrap_or(0);
        if open == 0 {
            return counts;
        }
        assert!(tokio::time::Instant::now() < deadline, "commands never settled: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    /// The shell sweep drops exactly what the ledger names.
    #[test]
    fn every_fresh_name_is_in_the_ledger_before_it_is_used() {
        let name = super::fresh_name();
        let ledger = std::fs::read_to_string(super::ledger_path()).expect("ledger");
        assert!(ledger.lines().any(|line| line == name), "{name} not recorded");
        assert!(name.starts_with(&super::test_object_prefix()));
    }

    /// The shell script names objects as the tests do.
    #[test]
    fn the_sweep_script_computes_the_same_checkout_tag() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-data.sh");
        let out = std::process::Command::new(script).arg("tag").output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), super::checkout_tag());
    }
}
