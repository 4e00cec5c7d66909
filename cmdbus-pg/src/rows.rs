//! Decoding rows into cmdbus types; every failure is a clear backend error.

use cmdbus::backend::NewCommand;
use cmdbus::{CommandRecord, Error, Result};
use serde_json::value::RawValue;
use sqlx::{Row, postgres::PgRow};

/// The columns [`record`] reads, for `SELECT`s that build their own WHERE.
pub(crate) const RECORD_COLUMNS: &str = "domain, command_id, command_type, correlation_id, reply_to, \
     status, attempts, max_attempts, payload::text AS payload, last_error::text AS last_error, \
     created_at, updated_at, due_at, batch_id";

/// Wraps a decoding error, or the error of a statement run in a transaction
/// or on a held connection. Statements run on the pool use
/// [`Explain`](crate::pool_timeout::Explain) instead, which names why a pool
/// cannot connect.
pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| Error::backend(context, error)
}

pub(crate) fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

pub(crate) fn raw(text: String, what: &'static str) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(|e| Error::backend(what, e))
}

/// The command's fixed part: what was sent (`payload` selected as text),
/// and its batch.
pub(crate) fn new_command(row: &PgRow) -> Result<NewCommand> {
    let get = || db("decoding a command");
    let mut command = NewCommand::new(
        row.try_get("domain").map_err(get())?,
        row.try_get("command_type").map_err(get())?,
        row.try_get("command_id").map_err(get())?,
        row.try_get("correlation_id").map_err(get())?,
        row.try_get("reply_to").map_err(get())?,
        count(row.try_get("max_attempts").map_err(get())?),
        raw(row.try_get("payload").map_err(get())?, "decoding a payload")?,
    );
    command.batch_id = row.try_get("batch_id").map_err(get())?;
    Ok(command)
}

/// A command row selected with [`RECORD_COLUMNS`].
pub(crate) fn record(row: &PgRow) -> Result<CommandRecord> {
    let get = || db("decoding a command");
    let status: String = row.try_get("status").map_err(get())?;
    let last_error: Option<String> = row.try_get("last_error").map_err(get())?;
    Ok(CommandRecord::new(
        new_command(row)?,
        status.parse()?,
        count(row.try_get("attempts").map_err(get())?),
        // A last_error written by another tool that does not fit is shown as absent.
        last_error.and_then(|text| serde_json::from_str(&text).ok()),
        row.try_get("created_at").map_err(get())?,
        row.try_get("updated_at").map_err(get())?,
    )
    .with_due_at(row.try_get("due_at").map_err(get())?))
}

/// A row of `batch_get.sql`.
pub(crate) fn batch_status(row: &PgRow) -> Result<cmdbus::BatchStatus> {
    let get = || db("decoding a batch");
    let total: i32 = row.try_get("total").map_err(get())?;
    let mut status = cmdbus::BatchStatus::new(
        row.try_get("batch_id").map_err(get())?,
        u64::try_from(total).unwrap_or(0),
        row.try_get("created_at").map_err(get())?,
    );
    status.finished_at = row.try_get("finished_at").map_err(get())?;
    let domain: Option<String> = row.try_get("completion_domain").map_err(get())?;
    let id: Option<uuid::Uuid> = row.try_get("completion_id").map_err(get())?;
    status.completion = domain.zip(id);
    let members: serde_json::Value = row.try_get("members").map_err(get())?;
    for (name, n) in members.as_object().into_iter().flatten() {
        let parsed = name
            .parse()
            .map_err(|_| Error::backend("decoding a batch", format!("unknown status {name:?}")))?;
        status.count(parsed, n.as_u64().unwrap_or(0));
    }
    Ok(status)
}
