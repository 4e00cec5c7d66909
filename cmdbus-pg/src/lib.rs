//! PostgreSQL transport for [cmdbus](cmdbus): the transport itself lands with
//! the Postgres issue; this crate exists so the workspace has its final shape.
