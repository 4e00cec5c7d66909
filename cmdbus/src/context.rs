//! What a handler knows about the command it runs and can do besides.

use std::{any::Any, fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::{Error, LeaseExtend, LeaseRef, LeasedCommand, Result, TraceParent, Transport};

/// Extends leases; the object-safe slice of a transport a handler may use.
pub(crate) trait LeaseControl: Send + Sync {
    fn extend(&self, params: LeaseExtend) -> BoxFuture<'_, Result<Option<DateTime<Utc>>>>;
}

impl<T: Transport> LeaseControl for T {
    fn extend(&self, params: LeaseExtend) -> BoxFuture<'_, Result<Option<DateTime<Utc>>>> {
        Box::pin(self.lease_extend(params))
    }
}

/// The second argument of a handler.
///
/// ```
/// use cmdbus::{HandlerContext, HandlerError, command, handler};
///
/// #[command(domain = "reports", reply = ())]
/// struct BuildReport { month: u32 }
///
/// #[handler]
/// async fn build(cmd: BuildReport, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
///     tracing::info!(attempt = ctx.attempt(), month = cmd.month, "building");
///     Ok(())
/// }
/// ```
pub struct HandlerContext {
    lease: LeaseRef,
    command_type: String,
    correlation_id: Uuid,
    attempt: u32,
    max_attempts: u32,
    lease_expires_at: DateTime<Utc>,
    traceparent: TraceParent,
    control: Option<Arc<dyn LeaseControl>>,
    backend: Option<Arc<dyn Any + Send + Sync>>,
    unit_of_work: Option<Box<dyn Any + Send>>,
}

impl HandlerContext {
    pub(crate) fn for_lease<T: Transport>(command: &LeasedCommand, transport: &T) -> Self {
        let shared = Arc::new(transport.clone());
        Self {
            control: Some(Arc::clone(&shared) as Arc<dyn LeaseControl>),
            backend: Some(shared),
            ..Self::detached(command)
        }
    }

    /// A context bound to no transport, for calling a handler directly in a
    /// unit test: `extend_lease` succeeds without effect, no unit of work.
    pub fn detached(command: &LeasedCommand) -> Self {
        Self {
            lease: LeaseRef::of(command),
            command_type: command.command_type.clone(),
            correlation_id: command.correlation_id,
            attempt: command.attempt,
            max_attempts: command.max_attempts,
            lease_expires_at: command.lease_expires_at,
            traceparent: command
                .traceparent
                .map_or_else(TraceParent::root, |parent| parent.child()),
            control: None,
            backend: None,
            unit_of_work: None,
        }
    }

    /// The command's id.
    pub fn command_id(&self) -> Uuid {
        self.lease.command_id
    }

    /// The command's correlation id.
    pub fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// The command's domain.
    pub fn domain(&self) -> &str {
        &self.lease.domain
    }

    /// The command's type name.
    pub fn command_type(&self) -> &str {
        &self.command_type
    }

    /// This attempt's number (1 for the first), crashed attempts included.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed for this command.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a transient failure now sends the command to the troubleshooting queue.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// This handler run's trace context: a child of the sender's. Pass it to
    /// [`SendOptions::traceparent`](crate::SendOptions::traceparent) when the
    /// handler sends commands of its own.
    pub fn traceparent(&self) -> TraceParent {
        self.traceparent
    }

    /// When the lease runs out unless extended.
    pub fn lease_expires_at(&self) -> DateTime<Utc> {
        self.lease_expires_at
    }

    /// Keeps the command leased for `by` from now, for long work. Fails with
    /// [`Error::LeaseLost`] if the lease expired meanwhile (another worker may
    /// have the command): stop the work.
    pub async fn extend_lease(&mut self, by: Duration) -> Result<DateTime<Utc>> {
        let Some(control) = &self.control else {
            self.lease_expires_at = Utc::now() + by;
            return Ok(self.lease_expires_at);
        };
        match control.extend(LeaseExtend::new(self.lease.clone(), by)).await? {
            Some(expires_at) => {
                self.lease_expires_at = expires_at;
                Ok(expires_at)
            }
            None => Err(Error::LeaseLost { command_id: self.lease.command_id }),
        }
    }

    /// The lease this handler runs under.
    pub fn lease(&self) -> &LeaseRef {
        &self.lease
    }

    /// The transport running this handler, if it is a `T`. For backend
    /// extension traits (e.g. `cmdbus-pg`'s handler transaction).
    pub fn backend<T: Any>(&self) -> Option<&T> {
        self.backend.as_deref()?.downcast_ref()
    }

    /// The unit of work a backend extension opened, if it is a `U`.
    pub fn unit_of_work_mut<U: Any>(&mut self) -> Option<&mut U> {
        self.unit_of_work.as_deref_mut()?.downcast_mut()
    }

    /// Installs a unit of work; the worker records the outcome inside it.
    /// For backend extension traits.
    pub fn set_unit_of_work(&mut self, unit_of_work: Box<dyn Any + Send>) {
        self.unit_of_work = Some(unit_of_work);
    }

    pub(crate) fn take_unit_of_work(&mut self) -> Option<Box<dyn Any + Send>> {
        self.unit_of_work.take()
    }
}

impl fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerContext")
            .field("lease", &self.lease)
            .field("command_type", &self.command_type)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("unit_of_work", &self.unit_of_work.is_some())
            .finish_non_exhaustive()
    }
}
