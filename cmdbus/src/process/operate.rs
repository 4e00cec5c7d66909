//! Reading process instances, and what operators may do to them: retry a
//! stuck compensation, or abandon the process with a reason. Actions are
//! events like any other (so they serialize with the process's own), each
//! naming its operator, each with a dry run that sends nothing.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    PROCESS_REPLY_QUEUE, Process, ProcessEvent, ProcessFilter, ProcessRecord, ProcessStatus,
    event::{EVENT_MAX_ATTEMPTS, Event},
};
use crate::{
    Bus, Cursor, Error, MAX_PAGE, NewCommand, Operator, Page, Result, SendOptions, Sent, Transport,
};

/// A process instance, its state typed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProcessView<P> {
    /// The instance.
    pub process_id: Uuid,
    /// Where it stands.
    pub status: ProcessStatus,
    /// Its state after its last event.
    pub state: P,
    /// The correlation id its commands carry.
    pub correlation_id: Uuid,
    /// Why it failed, is stuck or was abandoned.
    pub last_error: Option<serde_json::Value>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What an operator action did, or would do on a dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessAction {
    /// The process.
    pub process_id: Uuid,
    /// Where it stood when asked.
    pub status: ProcessStatus,
    /// The event command sent (`None` on a dry run).
    pub event_id: Option<Uuid>,
}

impl<T: Transport> Bus<T> {
    /// Starts process `P` with id `process_id` and its initial state: a
    /// `Start` event whose command id is the process id, so starting twice
    /// starts once. The process's commands carry `process_id` as their
    /// correlation id.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn start_process<P: Process>(
        &self,
        process_id: Uuid,
        state: P,
    ) -> Result<Sent<ProcessEvent<P>, T>> {
        self.start_process_with(process_id, state, SendOptions::new().correlation_id(process_id))
            .await
    }

    /// [`start_process`](Self::start_process) with options: a correlation
    /// id of your own (the request that started it), a delay, a priority.
    /// The command id is always the process id.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); [`Error::Encode`] if the state does not serialize.
    pub async fn start_process_with<P: Process>(
        &self,
        process_id: Uuid,
        state: P,
        options: SendOptions,
    ) -> Result<Sent<ProcessEvent<P>, T>> {
        let state = serde_json::to_value(&state).map_err(|source| Error::Encode {
            domain: P::DOMAIN,
            command_type: P::NAME,
            source,
        })?;
        let event = ProcessEvent::<P>::new(Event::Start { process_id, state });
        self.send_with(event, options.command_id(process_id)).await
    }

    /// Process instance `process_id` of type `P`, its state typed.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownProcess`] before it has started; [`Error::Backend`]
    /// if the stored state no longer decodes as `P`.
    pub async fn process<P: Process>(&self, process_id: Uuid) -> Result<ProcessView<P>> {
        let record = self.processes().get(P::NAME, process_id).await?;
        let state = serde_json::from_value(record.state).map_err(|e| {
            Error::backend(format!("decoding the state of {} {process_id}", P::NAME), e)
        })?;
        Ok(ProcessView {
            process_id,
            status: record.status,
            state,
            correlation_id: record.correlation_id,
            last_error: record.last_error,
            created_at: record.created_at,
            updated_at: record.updated_at,
        })
    }

    /// The operator API for process instances.
    pub fn processes(&self) -> Processes<T> {
        Processes { transport: self.transport().clone() }
    }
}

/// Process instances for operators, by process type name (tools have no
/// Rust types): list, read, retry a stuck compensation, abandon.
#[derive(Clone, Debug)]
pub struct Processes<T> {
    transport: T,
}

impl<T: Transport> Processes<T> {
    /// Instances passing `filter`, newest first, `limit` (at most
    /// [`MAX_PAGE`]) after `after`.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`].
    pub async fn list(
        &self,
        filter: &ProcessFilter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<ProcessRecord>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self.transport.processes_list(filter, after, limit + 1).await?;
        Ok(Page::from_rows(rows, limit, |r| (r.created_at, r.process_id)))
    }

    /// One instance.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownProcess`], [`Error::Backend`].
    pub async fn get(&self, process_type: &str, process_id: Uuid) -> Result<ProcessRecord> {
        self.transport.process_get(process_type, process_id).await?.ok_or_else(|| {
            Error::UnknownProcess { process_type: process_type.to_owned(), process_id }
        })
    }

    /// Sends a stuck process's failed compensation again (as a new command)
    /// and resumes compensating. With `dry_run`, only checks it would.
    ///
    /// # Errors
    ///
    /// [`Error::ProcessRefused`] unless the process is STUCK;
    /// [`Error::UnknownProcess`].
    pub async fn retry(
        &self,
        process_type: &str,
        process_id: Uuid,
        operator: &Operator,
        dry_run: bool,
    ) -> Result<ProcessAction> {
        let record = self.get(process_type, process_id).await?;
        if record.status != ProcessStatus::Stuck {
            return Err(refused(&record, "only a STUCK process can be retried"));
        }
        let event = Event::Retry { process_id, operator: operator.as_str().to_owned() };
        self.act(&record, event, dry_run).await
    }

    /// Ends a process that has not ended, with a reason: its outstanding
    /// steps still run, but nothing reacts to them. With `dry_run`, only
    /// checks it would.
    ///
    /// # Errors
    ///
    /// [`Error::ProcessRefused`] if it has ended; [`Error::InvalidName`]
    /// for a blank reason; [`Error::UnknownProcess`].
    pub async fn abandon(
        &self,
        process_type: &str,
        process_id: Uuid,
        reason: &str,
        operator: &Operator,
        dry_run: bool,
    ) -> Result<ProcessAction> {
        if reason.trim().is_empty() {
            return Err(Error::InvalidName {
                kind: "reason",
                value: reason.to_owned(),
                reason: "abandoning a process needs a reason",
            });
        }
        let record = self.get(process_type, process_id).await?;
        if record.status.is_terminal() {
            return Err(refused(&record, "it has ended, so there is nothing to abandon"));
        }
        let event = Event::Abandon {
            process_id,
            reason: reason.trim().to_owned(),
            operator: operator.as_str().to_owned(),
        };
        self.act(&record, event, dry_run).await
    }

    async fn act(
        &self,
        record: &ProcessRecord,
        event: Event,
        dry_run: bool,
    ) -> Result<ProcessAction> {
        let mut action =
            ProcessAction { process_id: record.process_id, status: record.status, event_id: None };
        if dry_run {
            return Ok(action);
        }
        let event_id = Uuid::now_v7();
        let payload = serde_json::value::to_raw_value(&event)
            .map_err(|e| Error::backend("encoding a process event", e))?;
        let command = NewCommand::new(
            record.domain.clone(),
            record.process_type.clone(),
            event_id,
            record.correlation_id,
            PROCESS_REPLY_QUEUE.to_owned(),
            EVENT_MAX_ATTEMPTS,
            payload,
        );
        self.transport.commands_send(vec![command]).await?;
        action.event_id = Some(event_id);
        Ok(action)
    }
}

fn refused(record: &ProcessRecord, reason: &'static str) -> Error {
    Error::ProcessRefused {
        process_type: record.process_type.clone(),
        process_id: record.process_id,
        status: record.status,
        reason,
    }
}
