//! Naming the cause when the pool cannot connect.
//!
//! While the server refuses connections (down, restarting, starting up),
//! sqlx's pool retries until its acquire timeout and then reports only
//! "pool timed out while waiting for an open connection", dropping the
//! error that says why. An operator reading that at 3 a.m. learns nothing,
//! so on that error we connect once more, directly, and keep what the
//! server (or the OS) answered as the cause.

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

/// `result` with its error wrapped as a backend error in `context`; a pool
/// timeout gets the reason connecting fails as its cause.
pub(crate) async fn explained<T>(
    pool: &PgPool,
    context: &'static str,
    result: Result<T, sqlx::Error>,
) -> Result<T, Error> {
    match result {
        Ok(value) => Ok(value),
        Err(sqlx::Error::PoolTimedOut) => {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, pool.connect_options().connect()).await;
            Err(match probe {
                Ok(Err(cause)) => Error::backend(context, CannotConnect { cause }),
                // Connecting works again, or hangs: the timeout is all we know.
                Ok(Ok(_)) | Err(_) => Error::backend(context, sqlx::Error::PoolTimedOut),
            })
        }
        Err(error) => Err(Error::backend(context, error)),
    }
}
