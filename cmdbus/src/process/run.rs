//! Handling one process event: load the instance (locked), let the process
//! react, then store its new state with what it sends — in the event
//! handler's unit of work, so all of it commits with the event's
//! completion or none of it does.

use futures_util::future::BoxFuture;
use serde_json::{Value, json, value::RawValue};
use uuid::Uuid;

use super::{
    Awaited, PROCESS_REPLY_QUEUE, Process, ProcessEvent, ProcessRecord, ProcessReport,
    ProcessStatus, Reacts, StepMember, Steps,
    event::{EVENT_MAX_ATTEMPTS, Event},
};
use crate::{
    Batch, Command, HandlerContext, HandlerError, Reply, SendOptions,
    registry::{ErasedResult, HandlerOutput},
};

/// The handler `#[derive(Process)]` registers for `ProcessEvent<P>`.
pub fn handle<'a, P: Process>(
    payload: &'a RawValue,
    ctx: &'a mut HandlerContext,
) -> BoxFuture<'a, ErasedResult> {
    Box::pin(async move {
        let event = crate::registry::decode::<ProcessEvent<P>>(payload)?.event;
        let report = advance::<P>(event, ctx).await;
        HandlerOutput::<ProcessEvent<P>>::into_reply(report)
    })
}

/// Gives a step's reply to `P`'s reaction to `C`.
pub fn react<P: Reacts<C>, C: Command>(
    process: &mut P,
    reply: &Reply,
    steps: &mut Steps<P>,
) -> Result<(), HandlerError> {
    let typed = reply
        .typed::<C::Reply>()
        .map_err(|error| HandlerError::permanent("reply_decode", error.report().to_string()))?;
    process.on_reply(typed, steps);
    Ok(())
}

fn transient(error: crate::Error) -> HandlerError {
    HandlerError::transient("process_store", error.report().to_string())
}

fn permanent(code: &'static str, error: impl std::fmt::Display) -> HandlerError {
    HandlerError::permanent(code, error.to_string())
}

fn ignored(record: &ProcessRecord, why: &str) -> ProcessReport {
    ProcessReport {
        process_id: record.process_id,
        status: record.status,
        ignored: Some(why.to_owned()),
    }
}

async fn advance<P: Process>(
    event: Event,
    ctx: &mut HandlerContext,
) -> Result<ProcessReport, HandlerError> {
    let process_id = event.process_id();
    let loaded = ctx.process_load(P::NAME, process_id).await.map_err(transient)?;
    let mut record = match (event, loaded) {
        (Event::Start { state, .. }, None) => {
            let now = chrono::Utc::now();
            let mut record = ProcessRecord::new(
                P::NAME.to_owned(),
                process_id,
                P::DOMAIN.to_owned(),
                ProcessStatus::Running,
                ctx.correlation_id(),
                Value::Null,
                0,
                now,
                now,
            );
            let (mut process, mut steps) = resume::<P>(&record, state)?;
            process.start(&mut steps);
            proceed(&mut record, process, steps, ctx).await?;
            record
        }
        (_, None) => {
            return Err(permanent(
                "unknown_process",
                format!("no process {} {process_id}", P::NAME),
            ));
        }
        (_, Some(record)) if record.status.is_terminal() => {
            return Ok(ignored(&record, "the process has ended"));
        }
        (event, Some(mut record)) => {
            if let Some(why) = on_event::<P>(event, &mut record, ctx).await? {
                return Ok(ignored(&record, why));
            }
            record
        }
    };
    record.version += 1;
    let report = ProcessReport { process_id, status: record.status, ignored: None };
    ctx.process_save(record).await.map_err(transient)?;
    Ok(report)
}

/// Moves a running process on one event; `Some(why)` when the event
/// changes nothing (then nothing is saved).
async fn on_event<P: Process>(
    event: Event,
    record: &mut ProcessRecord,
    ctx: &mut HandlerContext,
) -> Result<Option<&'static str>, HandlerError> {
    match event {
        Event::Start { .. } => Ok(Some("already started")),
        Event::Step { batch, .. } => {
            let Some(Awaited::Step { members, .. }) = record.take_awaited(batch.batch_id) else {
                return Ok(Some("not waiting for this step"));
            };
            if matches!(record.status, ProcessStatus::Compensating) {
                compensation_ended(record, &members, &batch, ctx).await?;
                return Ok(None);
            }
            let (mut process, mut steps) = resume::<P>(record, record.state.clone())?;
            for member in &members {
                let reply = ctx
                    .reply_get(&member.domain, member.command_id)
                    .await
                    .map_err(transient)?
                    .ok_or_else(|| {
                        HandlerError::transient(
                            "reply_missing",
                            format!("no reply yet for step {}", member.command_id),
                        )
                    })?;
                if !process.react(&member.domain, &member.command_type, &reply, &mut steps)? {
                    return Err(permanent(
                        "no_reaction",
                        format!(
                            "{} has no reaction to {}/{}",
                            P::NAME,
                            member.domain,
                            member.command_type
                        ),
                    ));
                }
            }
            proceed(record, process, steps, ctx).await?;
            Ok(None)
        }
        Event::Timeout { timer, timeout, .. } => {
            if record.take_awaited(timer).is_none() {
                return Ok(Some("not waiting for this timeout"));
            }
            let (mut process, mut steps) = resume::<P>(record, record.state.clone())?;
            let timeout = serde_json::from_value(timeout)
                .map_err(|error| permanent("timeout_decode", error))?;
            process.on_timeout(timeout, &mut steps);
            proceed(record, process, steps, ctx).await?;
            Ok(None)
        }
        Event::Retry { operator, .. } => {
            if record.status != ProcessStatus::Stuck {
                return Ok(Some("only a stuck process is retried"));
            }
            record.last_error = None;
            tracing::info!(process_id = %record.process_id, %operator, "cmdbus: operator retries a stuck compensation");
            compensate_next(record, ctx).await?;
            Ok(None)
        }
        Event::Abandon { reason, operator, .. } => {
            record.status = ProcessStatus::Abandoned;
            record.awaiting.clear();
            record.last_error = Some(json!({ "abandoned": reason, "operator": operator }));
            Ok(None)
        }
    }
}

/// A compensation's step ended: the next one runs, or the process is
/// stuck on this one until an operator acts.
async fn compensation_ended(
    record: &mut ProcessRecord,
    members: &[StepMember],
    batch: &crate::BatchOutcome,
    ctx: &mut HandlerContext,
) -> Result<(), HandlerError> {
    if batch.completed == batch.total {
        record.compensations.pop();
        return compensate_next(record, ctx).await;
    }
    record.status = ProcessStatus::Stuck;
    let command = members.first().map(|m| json!({ "domain": m.domain, "command_id": m.command_id, "command_type": m.command_type }));
    let outcome = if batch.failed > 0 { "failed" } else { "was canceled" };
    record.last_error = Some(json!({
        "message": format!("a compensation {outcome}"),
        "compensation": command,
    }));
    Ok(())
}

/// Stores what a reaction decided: its new state, and either its steps
/// and timeouts or, when it failed, the first compensation.
async fn proceed<P: Process>(
    record: &mut ProcessRecord,
    process: P,
    steps: Steps<P>,
    ctx: &mut HandlerContext,
) -> Result<(), HandlerError> {
    if let Some(error) = steps.error {
        return Err(permanent("process_encode", error.report()));
    }
    record.state = serde_json::to_value(&process).map_err(|e| permanent("process_encode", e))?;
    record.compensations.extend(steps.compensations);
    if let Some(reason) = steps.failed {
        record.last_error = Some(json!({ "message": reason }));
        record.awaiting.clear();
        return compensate_next(record, ctx).await;
    }
    if steps.completed {
        record.awaiting.clear();
    } else {
        if !steps.sent.is_empty() {
            let step = open_step(record, steps.sent, ctx).await?;
            record.awaiting.push(step);
        }
        for (delay, timeout) in steps.timers {
            let timer = Uuid::now_v7();
            let event = Event::Timeout { process_id: record.process_id, timer, timeout };
            let options = SendOptions::new()
                .command_id(timer)
                .correlation_id(record.correlation_id)
                .delay(delay);
            ctx.send_with(ProcessEvent::<P>::new(event), options).await.map_err(transient)?;
            record.awaiting.push(Awaited::Timer { id: timer });
        }
    }
    record.status = if record.awaiting.iter().any(|a| matches!(a, Awaited::Step { .. })) {
        ProcessStatus::Running
    } else if record.awaiting.is_empty() {
        ProcessStatus::Completed
    } else {
        ProcessStatus::Waiting
    };
    Ok(())
}

/// Sends the newest compensation left as a step of its own, or ends the
/// process as compensated when none is left.
async fn compensate_next(
    record: &mut ProcessRecord,
    ctx: &mut HandlerContext,
) -> Result<(), HandlerError> {
    let Some(next) = record.compensations.last() else {
        record.status = ProcessStatus::Compensated;
        return Ok(());
    };
    let command = next
        .to_new(record.correlation_id, PROCESS_REPLY_QUEUE)
        .map_err(|e| permanent("process_encode", e.report()))?;
    let step = open_step(record, vec![command], ctx).await?;
    record.awaiting.push(step);
    record.status = ProcessStatus::Compensating;
    Ok(())
}

/// Sends `commands` as one step: a batch whose completion is the process's
/// `Step` event, stored by the transition that ends its last member.
async fn open_step(
    record: &ProcessRecord,
    commands: Vec<crate::NewCommand>,
    ctx: &mut HandlerContext,
) -> Result<Awaited, HandlerError> {
    let batch_id = Uuid::now_v7();
    let members = commands
        .iter()
        .map(|c| StepMember {
            domain: c.domain.clone(),
            command_id: c.command_id,
            command_type: c.command_type.clone(),
        })
        .collect();
    let completion = crate::NewCommand::new(
        record.domain.clone(),
        record.process_type.clone(),
        Uuid::now_v7(),
        record.correlation_id,
        PROCESS_REPLY_QUEUE.to_owned(),
        EVENT_MAX_ATTEMPTS,
        serde_json::value::to_raw_value(&Event::Step {
            process_id: record.process_id,
            batch: crate::BatchOutcome { batch_id, ..crate::BatchOutcome::default() },
        })
        .map_err(|e| permanent("process_encode", e))?,
    );
    let batch = Batch::of_commands(batch_id, commands, completion)
        .into_new(ctx.max_payload_bytes())
        .map_err(|e| permanent("process_encode", e.report()))?;
    ctx.open_batch_in(batch).await.map_err(transient)?;
    Ok(Awaited::Step { id: batch_id, members })
}

/// The process from `state`, and no next steps yet.
fn resume<P: Process>(record: &ProcessRecord, state: Value) -> Result<(P, Steps<P>), HandlerError> {
    let process = serde_json::from_value(state).map_err(|error| {
        HandlerError::permanent(
            "state_decode",
            format!("the stored state does not decode as {}: {error}", P::NAME),
        )
    })?;
    Ok((process, Steps::new(record.process_id, record.correlation_id)))
}
