//! The one place that decides what happens after a run: dispatch, catch
//! panics, classify the result, and turn it into an [`OutcomeKind`].

use std::{any::Any, panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;

use crate::{
    Classifier, ErrorKind, Failure, HandlerContext, HandlerError, LeasedCommand, OutcomeKind,
    RetryPolicy, TsqReason, registry::Entry,
};

/// Runs `command`'s handler (`entry`, `None` when this worker has none for
/// its type) and decides its outcome. A handler running longer than its
/// type's timeout (else `default_timeout`) is stopped: dropped at its next
/// await point, its transaction rolled back, the attempt a transient failure.
pub(crate) async fn execute(
    entry: Option<&Entry>,
    classifier: &Classifier,
    command: &LeasedCommand,
    ctx: &mut HandlerContext,
    default_timeout: Option<Duration>,
) -> OutcomeKind {
    let Some(entry) = entry else {
        let failure = Failure::new(
            ErrorKind::Permanent,
            "cmdbus::NoHandler",
            "no_handler",
            &format!("this worker has no handler for {}/{}", command.domain, command.command_type),
            None,
        );
        return OutcomeKind::Troubleshoot { failure, reason: TsqReason::NoHandler };
    };
    let run = AssertUnwindSafe(entry.registration.call(&command.payload, ctx)).catch_unwind();
    let ran = match entry.registration.timeout().or(default_timeout) {
        Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| limit),
        None => Ok(run.await),
    };
    let error = match ran {
        Ok(Ok(Ok(reply))) => return OutcomeKind::Completed { reply },
        Ok(Ok(Err(error))) => error,
        Ok(Err(panic)) => HandlerError::transient("panic", panic_message(panic.as_ref())),
        Err(limit) => HandlerError::transient(
            "handler_timeout",
            format!("the handler ran longer than its {limit:?} timeout and was stopped"),
        ),
    };
    decide(&entry.policy, classifier, command, &error)
}

/// The outcome of a failed attempt: classify, then retry, refuse or give up.
pub(crate) fn decide(
    policy: &RetryPolicy,
    classifier: &Classifier,
    command: &LeasedCommand,
    error: &HandlerError,
) -> OutcomeKind {
    let kind = error.kind().unwrap_or_else(|| {
        error.source().map_or(ErrorKind::Transient, |source| classifier.classify(source))
    });
    let failure = error.to_failure(kind);
    match kind {
        ErrorKind::BusinessRule => OutcomeKind::Failed { failure },
        ErrorKind::Permanent => OutcomeKind::Troubleshoot { failure, reason: TsqReason::Permanent },
        ErrorKind::Transient if command.attempt >= command.max_attempts => {
            OutcomeKind::Troubleshoot { failure, reason: TsqReason::RetriesExhausted }
        }
        ErrorKind::Transient => {
            let delay = error
                .requested_retry_after()
                .unwrap_or_else(|| policy.delay_after(command.attempt));
            OutcomeKind::Retry { failure, delay }
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    format!("handler panicked: {text}")
}
