#![doc = include_str!("../README.md")]

mod bus;
mod context;
mod migrate;
mod notify;
mod schema;
mod transport;

pub use bus::{PgBus, PgBusBuilder};
pub use context::PgHandlerContext;
pub use migrate::{MigrateError, SCHEMA_VERSION, migrations_sql};
pub use schema::DEFAULT_SCHEMA;
pub use transport::PgTransport;
