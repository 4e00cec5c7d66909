//! Stores [`Transition`]s planned by cmdbus: many in one statement, each
//! under its guard. The plans come from the core; this file only lays them
//! out as the parallel arrays `transitions_apply.sql` unnests, and marks the
//! events the command row itself holds.

use cmdbus::backend::{AttemptsChange, Guard, Transition};
use cmdbus::{AuditEvent, CommandStatus, Result};
use sqlx::{Postgres, Row};
use uuid::Uuid;

use crate::{pool_timeout::Explain, schema::sql, transport::PgTransport};

/// Applies `transitions` on `executor` (the pool, or a handler's
/// transaction); `true` where applied, in input order.
pub(crate) async fn apply<'c, E>(
    transport: &PgTransport,
    executor: E,
    transitions: &[Transition],
) -> Result<Vec<bool>>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let columns = Columns::of(transitions);
    let batches = transitions.iter().any(Transition::may_end_batch_member);
    let statements = transport.statements();
    let statement =
        if batches { &statements.transitions_apply } else { &statements.transitions_apply_plain };
    let mut query = sqlx::query(sql(statement))
        .bind(&columns.domains)
        .bind(&columns.ids)
        .bind(&columns.lease_ids)
        .bind(&columns.lease_expired)
        .bind(&columns.from_statuses)
        .bind(&columns.statuses)
        .bind(&columns.due_ms)
        .bind(&columns.attempts)
        .bind(&columns.last_errors)
        .bind(&columns.reply_statuses)
        .bind(&columns.reply_bodies)
        .bind(&columns.finished)
        .bind(&columns.received_leaves_row)
        .bind(&columns.event_transitions)
        .bind(&columns.events)
        .bind(&columns.event_details)
        .bind(&columns.event_due_at)
        .bind(&columns.event_on_row)
        .bind(AuditEvent::Received.as_str());
    if batches {
        query = query.bind(transport.channel());
    }
    let row = query
        .fetch_one(executor)
        .await
        .explained(transport.pool(), "recording transitions")
        .await?;
    let positions: Vec<i64> =
        row.try_get("applied").map_err(crate::rows::db("reading transition results"))?;
    let mut applied = vec![false; transitions.len()];
    for position in positions {
        // Positions count from 1 (WITH ORDINALITY).
        if let Some(slot) = usize::try_from(position - 1).ok().and_then(|i| applied.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(applied)
}

/// Transitions (and their events, flattened) as parallel arrays.
#[derive(Default)]
struct Columns<'a> {
    domains: Vec<&'a str>,
    ids: Vec<Uuid>,
    lease_ids: Vec<Option<Uuid>>,
    lease_expired: Vec<bool>,
    from_statuses: Vec<Option<&'static str>>,
    statuses: Vec<&'static str>,
    due_ms: Vec<Option<i64>>,
    attempts: Vec<&'static str>,
    last_errors: Vec<Option<String>>,
    reply_statuses: Vec<Option<&'static str>>,
    reply_bodies: Vec<Option<&'a str>>,
    finished: Vec<bool>,
    received_leaves_row: Vec<bool>,
    event_transitions: Vec<i64>,
    events: Vec<&'static str>,
    event_details: Vec<String>,
    event_due_at: Vec<bool>,
    event_on_row: Vec<bool>,
}

impl<'a> Columns<'a> {
    fn of(transitions: &'a [Transition]) -> Self {
        let mut columns = Self::default();
        for (position, t) in (1_i64..).zip(transitions) {
            let (lease_id, expired, from) = match t.guard {
                Guard::Lease(id) => (Some(id), false, None),
                Guard::ExpiredLease(id) => (Some(id), true, None),
                Guard::Status(status) => (None, false, Some(status.as_str())),
            };
            columns.domains.push(&t.domain);
            columns.ids.push(t.command_id);
            columns.lease_ids.push(lease_id);
            columns.lease_expired.push(expired);
            columns.from_statuses.push(from);
            columns.statuses.push(t.status.as_str());
            columns.due_ms.push(t.due_in.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
            columns.attempts.push(match t.attempts {
                AttemptsChange::Keep => "keep",
                AttemptsChange::Reset => "reset",
                AttemptsChange::GiveBack => "give_back",
            });
            columns
                .last_errors
                .push(t.last_error.as_ref().and_then(|f| serde_json::to_string(f).ok()));
            columns.reply_statuses.push(t.reply.as_ref().map(|r| r.status.as_str()));
            columns.reply_bodies.push(t.reply.as_ref().map(|r| r.body.get()));
            columns.finished.push(t.finishes());
            // The row holds a running or completed attempt's RECEIVED and
            // COMPLETED (see audit_trail in 0002_storage_v2.sql); any other
            // end of a leased attempt writes its RECEIVED out first.
            let leased = lease_id.is_some();
            let completed = leased && t.status == CommandStatus::Completed;
            columns.received_leaves_row.push(leased && !completed);
            for planned in &t.events {
                columns.event_on_row.push(
                    completed
                        && planned.event == AuditEvent::Completed
                        && planned.details.as_object().is_some_and(|d| d.is_empty()),
                );
                columns.event_transitions.push(position);
                columns.events.push(planned.event.as_str());
                columns.event_details.push(planned.details.to_string());
                columns.event_due_at.push(planned.with_due_at);
            }
        }
        columns
    }
}
