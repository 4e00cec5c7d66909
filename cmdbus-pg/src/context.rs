//! The handler's own transaction: business writes that commit with the
//! command's completion, or not at all.

use std::future::Future;

use cmdbus::{Error, HandlerContext, Result, Transport, backend::BackendContext};
use sqlx::PgConnection;

use crate::transport::{PgTransport, PgUnitOfWork};

/// Gives a handler a transaction that commits together with its completion.
///
/// The first call begins a transaction on the bus's pool (the same one
/// [`HandlerContext::send`] joins); the worker then
/// records COMPLETED and the reply inside it and commits. If the handler
/// fails (or the completion cannot be recorded) the transaction rolls back.
/// Handlers that never call it pay nothing: their completions are batched.
///
/// ```no_run
/// use cmdbus::{HandlerContext, HandlerError, command, handler};
/// use cmdbus_pg::PgHandlerContext;
///
/// #[command(domain = "payments")]
/// struct DebitAccount { account: String, amount_cents: i64 }
///
/// #[handler]
/// async fn debit(cmd: DebitAccount, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
///     let tx = ctx.transaction().await?;
///     sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
///         .bind(cmd.amount_cents)
///         .bind(&cmd.account)
///         .execute(tx)
///         .await?;
///     Ok(())
/// }
/// ```
pub trait PgHandlerContext {
    /// The handler's transaction, begun on first use.
    fn transaction(&mut self) -> impl Future<Output = Result<&mut PgConnection>> + Send;
}

impl PgHandlerContext for HandlerContext {
    async fn transaction(&mut self) -> Result<&mut PgConnection> {
        if self.unit_of_work_mut::<PgUnitOfWork>().is_none() {
            let transport = self.backend::<PgTransport>().ok_or(Error::UnitOfWorkUnsupported)?;
            let tx = transport.unit_of_work_begin().await?;
            self.set_unit_of_work(tx);
        }
        match self.unit_of_work_mut::<PgUnitOfWork>() {
            Some(tx) => Ok(&mut **tx),
            None => Err(Error::UnitOfWorkUnsupported),
        }
    }
}
