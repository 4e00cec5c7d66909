//! Tracked batches: commands sent together, counted as they end, and an
//! optional completion command stored exactly once — by the transition that
//! ends the last member, in the same transaction, never from memory.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{Command, Error, NewCommand, Result, SendOptions, SendOutcome};

/// What a batch's completion command carries in its `batch` field: how its
/// members ended. A member in the troubleshooting queue holds the batch
/// open until an operator acts, so every member is counted here.
#[derive(crate::Payload, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The batch.
    pub batch_id: Uuid,
    /// Members (commands the batch stored).
    pub total: u64,
    /// Members that completed.
    pub completed: u64,
    /// Members refused by a business rule (FAILED).
    pub failed: u64,
    /// Members canceled (by an operator, before or after they ran).
    pub canceled: u64,
    /// The members' ids by outcome, when the batch was opened
    /// [`with_member_ids`](Batch::with_member_ids).
    pub members: Option<BatchMembers>,
}

/// A batch's member ids by outcome, in the order they ended.
#[derive(crate::Payload, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchMembers {
    /// Members that completed.
    pub completed: Vec<Uuid>,
    /// Members FAILED.
    pub failed: Vec<Uuid>,
    /// Members canceled.
    pub canceled: Vec<Uuid>,
}

/// A tracked batch to open with [`Bus::open_batch`](crate::Bus::open_batch):
/// members of any command types, each with its own options, and an optional
/// completion command.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cmdbus::Result<()> {
/// use cmdbus::{Batch, BatchOutcome, Command, testing::MemoryBus};
///
/// #[derive(Command)]
/// #[command(domain = "docs-imports")]
/// struct ImportRow { line: u32 }
///
/// /// Sent once every row has ended; `batch` holds the counts.
/// #[derive(Command)]
/// #[command(domain = "docs-imports")]
/// struct ImportDone { file: String, batch: BatchOutcome }
///
/// let bus = MemoryBus::in_memory();
/// let batch = Batch::new()
///     .member(ImportRow { line: 1 })?
///     .member(ImportRow { line: 2 })?
///     .on_done(|batch| ImportDone { file: "rows.csv".into(), batch })?;
/// let opened = bus.open_batch(batch).await?;
/// let status = bus.batch(opened.batch_id).await?;
/// assert_eq!((status.total, status.pending), (2, 2));
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct Batch {
    batch_id: Uuid,
    members: Vec<NewCommand>,
    completion: Option<NewCommand>,
    member_ids: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch with a new id.
    pub fn new() -> Self {
        Self::with_id(Uuid::now_v7())
    }

    /// An empty batch with this id: opening it again is a no-op that
    /// reports every member as a duplicate.
    pub fn with_id(batch_id: Uuid) -> Self {
        Self { batch_id, members: Vec::new(), completion: None, member_ids: false }
    }

    /// The batch's id.
    pub fn id(&self) -> Uuid {
        self.batch_id
    }

    /// Adds a member with default options.
    ///
    /// # Errors
    ///
    /// As [`Bus::send`](crate::Bus::send) would refuse it (encoding, reply queue).
    pub fn member<C: Command>(self, command: C) -> Result<Self> {
        self.member_with(command, SendOptions::new())
    }

    /// Adds a member with its own options (id, correlation, delay, …).
    ///
    /// # Errors
    ///
    /// As [`member`](Self::member).
    pub fn member_with<C: Command>(mut self, command: C, options: SendOptions) -> Result<Self> {
        let mut member = crate::bus::prepare(&command, options, usize::MAX)?;
        member.batch_id = Some(self.batch_id);
        self.members.push(member);
        Ok(self)
    }

    /// Lists the members' ids by outcome in the completion command's
    /// [`BatchOutcome::members`] (kept on the batch as members end, so it
    /// costs a little per member: ask for it where it is used).
    pub fn with_member_ids(mut self) -> Self {
        self.member_ids = true;
        self
    }

    /// The command to send once every member has ended. `make` receives a
    /// placeholder outcome now; the command must hold it in a field named
    /// `batch`, which is filled with the real counts when it is sent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBatch`] when the command has no `batch` field holding
    /// the outcome, or as [`member`](Self::member).
    pub fn on_done<D: Command>(mut self, make: impl FnOnce(BatchOutcome) -> D) -> Result<Self> {
        let placeholder = BatchOutcome { batch_id: self.batch_id, ..BatchOutcome::default() };
        let command = make(placeholder.clone());
        let completion = crate::bus::prepare(&command, SendOptions::new(), usize::MAX)?;
        let payload: serde_json::Value = serde_json::from_str(completion.payload.get())
            .map_err(|e| Error::backend("reading the completion command", e))?;
        let expected = serde_json::to_value(&placeholder)
            .map_err(|e| Error::backend("encoding the batch outcome", e))?;
        if payload.get("batch") != Some(&expected) {
            return Err(Error::InvalidBatch {
                batch_id: self.batch_id,
                reason: "its completion command must hold the outcome it is given in a field named `batch`",
            });
        }
        self.completion = Some(completion);
        Ok(self)
    }

    /// A batch of prepared commands whose completion is `completion` (its
    /// payload holding a placeholder `batch`), listing member ids.
    pub(crate) fn of_commands(
        batch_id: Uuid,
        members: Vec<NewCommand>,
        completion: NewCommand,
    ) -> Self {
        let members = members
            .into_iter()
            .map(|mut member| {
                member.batch_id = Some(batch_id);
                member
            })
            .collect();
        Self { batch_id, members, completion: Some(completion), member_ids: true }
    }

    /// The batch as a transport stores it, its payloads checked against
    /// `max_payload_bytes`.
    pub(crate) fn into_new(self, max_payload_bytes: usize) -> Result<NewBatch> {
        if self.members.is_empty() {
            return Err(Error::InvalidBatch {
                batch_id: self.batch_id,
                reason: "it has no members",
            });
        }
        for command in self.members.iter().chain(&self.completion) {
            crate::bus::check_size(command, max_payload_bytes)?;
        }
        Ok(NewBatch {
            batch_id: self.batch_id,
            members: self.members,
            completion: self.completion,
            member_ids: self.member_ids,
        })
    }
}

/// A tracked batch as a transport stores it. **For backend authors.**
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewBatch {
    /// The batch.
    pub batch_id: Uuid,
    /// Its members, each with `batch_id` set.
    pub members: Vec<NewCommand>,
    /// The command stored when the last member ends; its payload's `batch`
    /// is replaced with the counts then ([`NewBatch::completion_payload`]).
    pub completion: Option<NewCommand>,
    /// Whether the completion lists the members by outcome.
    pub member_ids: bool,
}

impl NewBatch {
    /// The completion command's payload once the batch has ended as `outcome`.
    pub fn completion_payload(
        completion: &RawValue,
        outcome: &BatchOutcome,
    ) -> Result<Box<RawValue>> {
        let mut payload: serde_json::Value = serde_json::from_str(completion.get())
            .map_err(|e| Error::backend("reading the completion command", e))?;
        if let Some(object) = payload.as_object_mut() {
            let outcome = serde_json::to_value(outcome)
                .map_err(|e| Error::backend("encoding the batch outcome", e))?;
            object.insert("batch".to_owned(), outcome);
        }
        serde_json::value::to_raw_value(&payload)
            .map_err(|e| Error::backend("encoding the completion command", e))
    }
}

/// A batch just opened: its id and each member's send outcome, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenedBatch {
    /// The batch.
    pub batch_id: Uuid,
    /// Per member: accepted, or a duplicate of a command that already
    /// existed (not a member then). Opening a batch again reports every
    /// member as a duplicate and changes nothing.
    pub outcomes: Vec<SendOutcome>,
}

/// Where a batch stands: its members by status, and whether it has ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BatchStatus {
    /// The batch.
    pub batch_id: Uuid,
    /// Members.
    pub total: u64,
    /// Members waiting to run (due or not).
    pub pending: u64,
    /// Members running.
    pub in_progress: u64,
    /// Members in the troubleshooting queue (they hold the batch open).
    pub in_troubleshooting_queue: u64,
    /// Members completed.
    pub completed: u64,
    /// Members FAILED.
    pub failed: u64,
    /// Members canceled.
    pub canceled: u64,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When its last member ended (and its completion command was sent).
    pub finished_at: Option<DateTime<Utc>>,
    /// The completion command (domain, id), if the batch has one.
    pub completion: Option<(String, Uuid)>,
}

impl BatchStatus {
    /// A batch's status from its counts; the transport fills the fields.
    pub fn new(batch_id: Uuid, total: u64, created_at: DateTime<Utc>) -> Self {
        Self {
            batch_id,
            total,
            pending: 0,
            in_progress: 0,
            in_troubleshooting_queue: 0,
            completed: 0,
            failed: 0,
            canceled: 0,
            created_at,
            finished_at: None,
            completion: None,
        }
    }

    /// Counts `n` more members in `status`.
    pub fn count(&mut self, status: crate::CommandStatus, n: u64) {
        use crate::CommandStatus as S;
        let slot = match status {
            S::Pending => &mut self.pending,
            S::InProgress => &mut self.in_progress,
            S::InTroubleshootingQueue => &mut self.in_troubleshooting_queue,
            S::Completed => &mut self.completed,
            S::Failed => &mut self.failed,
            S::Canceled => &mut self.canceled,
        };
        *slot += n;
    }

    /// Whether every member has ended.
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }
}
