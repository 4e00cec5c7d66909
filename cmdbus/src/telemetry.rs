//! Metrics through the `metrics` facade (no exporter forced on users) and
//! the fields recorded on the handler span.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `cmdbus_commands_sent_total` | counter | domain, command_type |
//! | `cmdbus_commands_duplicate_total` | counter | domain, command_type |
//! | `cmdbus_commands_completed_total` | counter | domain, command_type |
//! | `cmdbus_commands_failed_total` | counter | domain, command_type, kind |
//! | `cmdbus_commands_retried_total` | counter | domain, command_type |
//! | `cmdbus_commands_moved_to_tsq_total` | counter | domain, command_type, reason |
//! | `cmdbus_handler_duration_seconds` | histogram | domain, command_type, outcome |
//! | `cmdbus_lease_to_complete_seconds` | histogram | domain |
//! | `cmdbus_queue_depth` | gauge | domain (counted up to [`QUEUE_DEPTH_COUNTED_UP_TO`](crate::QUEUE_DEPTH_COUNTED_UP_TO)) |
//! | `cmdbus_oldest_pending_age_seconds` | gauge | domain |

use std::time::Duration;

use metrics::{SharedString, counter, gauge, histogram};
use tracing::Span;

use crate::{ErrorKind, LeasedCommand, OutcomeKind, QueueStats, registry::Entry};

/// A command's metric labels: borrowed from the handler's registration when
/// there is one, so the hot path allocates nothing for them.
#[derive(Clone)]
pub(crate) struct Labels {
    pub(crate) domain: SharedString,
    command_type: SharedString,
}

impl Labels {
    pub(crate) fn of(entry: Option<&Entry>, command: &LeasedCommand) -> Self {
        match entry {
            Some(entry) => Self {
                domain: SharedString::const_str(entry.registration.domain()),
                command_type: SharedString::const_str(entry.registration.command_type()),
            },
            None => Self {
                domain: command.domain.clone().into(),
                command_type: command.command_type.clone().into(),
            },
        }
    }
}

/// The outcome's name on spans and metric labels.
pub(crate) fn outcome_name(kind: &OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Completed { .. } => "completed",
        OutcomeKind::Failed { .. } => "failed",
        OutcomeKind::Retry { .. } => "retry",
        OutcomeKind::Troubleshoot { .. } => "troubleshoot",
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Transient => "transient",
        ErrorKind::Permanent => "permanent",
        ErrorKind::BusinessRule => "business_rule",
    }
}

/// Records one handler run on its span and in metrics.
pub(crate) fn handled(span: &Span, labels: &Labels, kind: &OutcomeKind, took: Duration) {
    let outcome = outcome_name(kind);
    span.record("outcome", outcome);
    let Labels { domain, command_type } = labels.clone();
    histogram!("cmdbus_handler_duration_seconds", "domain" => domain.clone(), "command_type" => command_type.clone(), "outcome" => outcome)
        .record(took.as_secs_f64());
    let failure = match kind {
        OutcomeKind::Completed { .. } => {
            counter!("cmdbus_commands_completed_total", "domain" => domain, "command_type" => command_type).increment(1);
            return;
        }
        OutcomeKind::Failed { failure } => failure,
        OutcomeKind::Retry { failure, .. } => {
            counter!("cmdbus_commands_retried_total", "domain" => domain.clone(), "command_type" => command_type.clone()).increment(1);
            failure
        }
        OutcomeKind::Troubleshoot { failure, reason } => {
            counter!("cmdbus_commands_moved_to_tsq_total", "domain" => domain.clone(), "command_type" => command_type.clone(), "reason" => reason.as_str()).increment(1);
            failure
        }
    };
    span.record("error.code", failure.code.as_str());
    span.record("error.message", failure.message.as_str());
    counter!("cmdbus_commands_failed_total", "domain" => domain, "command_type" => command_type, "kind" => kind_name(failure.kind)).increment(1);
}

/// Records the time from lease to recorded outcome.
pub(crate) fn recorded(domain: &SharedString, since_lease: Duration) {
    histogram!("cmdbus_lease_to_complete_seconds", "domain" => domain.clone())
        .record(since_lease.as_secs_f64());
}

/// Publishes queue depth and age per served domain (0 where nothing is due).
pub(crate) fn queues(domains: &[String], stats: &[QueueStats]) {
    for domain in domains {
        let found = stats.iter().find(|s| &s.domain == domain);
        let (due, age) = found.map_or((0, Duration::ZERO), |s| (s.due, s.oldest_due_age));
        gauge!("cmdbus_queue_depth", "domain" => domain.clone()).set(due as f64);
        gauge!("cmdbus_oldest_pending_age_seconds", "domain" => domain.clone())
            .set(age.as_secs_f64());
    }
}
