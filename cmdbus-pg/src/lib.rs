#![doc = include_str!("../README.md")]

mod bus;
mod catalog;
mod context;
mod flow;
mod migrate;
mod notify;
mod overview;
mod pool;
mod pool_timeout;
mod process;
mod query;
mod retention;
mod roles;
mod rows;
mod schema;
mod transition;
mod transport;
mod troubleshooting;

pub use bus::{PgBus, PgBusBuilder};
pub use context::PgHandlerContext;
pub use migrate::{SCHEMA_VERSION, migrations_sql};
pub use overview::TypeHealth;
pub use pool::{CHECK_IDLE_AFTER, pool_options};
pub use query::{CommandQuery, StatusCount};
pub use roles::{Role, grants_sql};
pub use schema::DEFAULT_SCHEMA;
pub use transport::PgTransport;

/// The `sqlx` this crate is built with (0.9, feature `postgres`): use it for
/// the pool you pass to [`PgBus::builder`] and in handlers'
/// [transactions](PgHandlerContext::transaction), so the types match
/// whatever version your own `Cargo.toml` names.
pub use sqlx;
