//! Shared fixtures for cmdbus's own integration tests: every test gets a
//! fresh schema in the database at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::time::Duration;

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

/// A unique schema name for one test.
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// A bus on a fresh schema.
pub async fn pg_bus() -> PgBus {
    PgBus::builder(pool().await).schema(fresh_schema()).build().await.expect("bus builds")
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
}
