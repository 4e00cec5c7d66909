//! One module per page.

pub(crate) mod command;
pub(crate) mod overview;
pub(crate) mod query;
pub(crate) mod tsq;
