//! **For backend authors**: what a storage backend implements
//! ([`Transport`](crate::Transport)) and the data it exchanges with the core.
//!
//! Applications never need this module: they use [`Bus`](crate::Bus),
//! [`Worker`](crate::Worker), [`HandlerContext`] and
//! the operator API ([`Troubleshooting`](crate::Troubleshooting)) at the
//! crate root. Like a database driver interface, what is here may change
//! between minor versions while cmdbus is 0.x, and every backend must pass
//! the conformance suite (`cmdbus::conformance`, feature `conformance`).
//!
//! The core decides every state change as a [`Transition`]; a backend
//! stores commands, applies transitions when their [`Guard`] holds, and
//! reads back what it stored.

use std::any::Any;

pub use crate::batch::NewBatch;
pub use crate::envelope::{Due, LeasedCommand, NewCommand};
pub use crate::name::validate_commands;
pub use crate::transition::{
    AttemptsChange, ExpiredLease, Guard, OperatorAction, PlannedEvent, PlannedReply, Transition,
};
pub use crate::transport::{
    CommandsLease, LeaseExtend, LeaseRef, Outcome, OutcomeKind, Polled, QueueStats, RecordResult,
    TsqReason,
};
pub use crate::troubleshooting::{BulkAction, BulkPlan, TsqItem};
pub use crate::wake::{WakeSender, WakeUps};

use crate::HandlerContext;

/// What a backend's extension traits use on a [`HandlerContext`] (e.g.
/// `cmdbus-pg`'s handler transaction): the transport running the handler,
/// the unit of work it opened, the lease.
pub trait BackendContext {
    /// The transport running this handler, if it is a `T`.
    fn backend<T: Any>(&self) -> Option<&T>;

    /// The unit of work opened for this handler, if it is a `U`.
    fn unit_of_work_mut<U: Any>(&mut self) -> Option<&mut U>;

    /// Installs a unit of work; the worker records the outcome inside it
    /// ([`Transport::transition_apply_in`](crate::Transport::transition_apply_in)).
    fn set_unit_of_work(&mut self, unit_of_work: Box<dyn Any + Send>);

    /// The lease this handler runs under.
    fn lease(&self) -> &LeaseRef;
}

impl BackendContext for HandlerContext {
    fn backend<T: Any>(&self) -> Option<&T> {
        self.backend_any()?.downcast_ref()
    }

    fn unit_of_work_mut<U: Any>(&mut self) -> Option<&mut U> {
        self.unit_of_work_any()?.downcast_mut()
    }

    fn set_unit_of_work(&mut self, unit_of_work: Box<dyn Any + Send>) {
        self.install_unit_of_work(unit_of_work);
    }

    fn lease(&self) -> &LeaseRef {
        self.lease_ref()
    }
}
