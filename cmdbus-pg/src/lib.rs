#![doc = include_str!("../README.md")]

mod bus;
mod catalog;
mod command_key;
mod context;
mod flow;
mod migrate;
mod notify;
mod pool_timeout;
mod query;
mod retention;
mod roles;
mod rows;
mod schema;
mod transition;
mod transport;
mod troubleshooting;

pub use bus::{PgBus, PgBusBuilder};
pub use command_key::CommandKey;
pub use context::PgHandlerContext;
pub use migrate::{SCHEMA_VERSION, migrations_sql};
pub use query::{CommandQuery, Cursor, MAX_PAGE, Page, StatusCount};
pub use roles::{Role, grants_sql};
pub use schema::DEFAULT_SCHEMA;
pub use transport::PgTransport;
pub use troubleshooting::{BulkOutcome, Troubleshooting, TsqCount, TsqFilter, TypedItem};
