//! Naming the cause when the pool cannot connect.
//!
//! While the server refuses connections (down, restarting, starting up),
//! sqlx's pool retries until its acquire timeout and then reports only
//! "pool timed out while waiting for an open connection", dropping the
//! error that says why. An operator reading that at 3 a.m. learns nothing,
//! so on that error we connect once more, directly, and keep what the
//! server (or the OS) answered as the cause.
//!
//! The rule: a statement run on the pool maps its error with
//! [`Explain::explained`]; a statement run in a transaction or on a held
//! connection (no pool acquire, so no pool timeout) and row decoding use
//! [`db`](crate::rows::db).

use std::time::Duration;

use cmdbus::Error;
use sqlx::{ConnectOptions, PgPool};

/// How long the diagnosing connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The pool could not hand out a connection; `cause` is why connecting fails.
#[derive(Debug, thiserror::Error)]
#[error("no connection could be opened before the pool's acquire timeout")]
struct CannotConnect {
    #[source]
    cause: sqlx::Error,
}

/// `error` as a backend error in `context`; a pool timeout gets the reason
/// connecting fails as its cause.
pub(crate) async fn explain(pool: &PgPool, context: &'static str, error: sqlx::Error) -> Error {
    if !matches!(error, sqlx::Error::PoolTimedOut) {
        return Error::backend(context, error);
    }
    match tokio::time::timeout(PROBE_TIMEOUT, pool.connect_options().connect()).await {
        Ok(Err(cause)) => Error::backend(context, CannotConnect { cause }),
        // Connecting works again, or hangs: the timeout is all we know.
        Ok(Ok(_)) | Err(_) => Error::backend(context, error),
    }
}

/// [`explain`] on a statement's result, in method position.
pub(crate) trait Explain<T> {
    /// The value, or the error explained in `context`.
    async fn explained(self, pool: &PgPool, context: &'static str) -> Result<T, Error>;
}

impl<T> Explain<T> for Result<T, sqlx::Error> {
    async fn explained(self, pool: &PgPool, context: &'static str) -> Result<T, Error> {
        match self {
            Ok(value) => Ok(value),
            Err(error) => Err(explain(pool, context, error).await),
        }
    }
}
