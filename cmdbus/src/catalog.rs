//! The command-type catalog: what each command type looks like and who
//! serves it, kept in the store so that operators and tools without the
//! Rust types compiled in can read payloads, check a result before it is
//! stored, and see work that nothing serves.
//!
//! Senders record a type on its first send, workers record the types they
//! handle at start and again every [`SERVED_EVERY`]. A type whose schemas or
//! retry policy change gets a new version; old versions stay, so the history
//! is visible.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Command, Error, Result};

/// How often a running worker records that it still serves its types.
pub const SERVED_EVERY: Duration = Duration::from_secs(30);

/// A type counts as served by a live worker when a worker recorded it this
/// recently (several [`SERVED_EVERY`] rounds, so one slow round is no alarm).
pub const LIVE_WITHIN: Duration = Duration::from_secs(120);

/// A command type as its code declares it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CommandType {
    /// Domain.
    pub domain: String,
    /// Type name.
    pub command_type: String,
    /// JSON schema of the payload.
    pub payload_schema: serde_json::Value,
    /// JSON schema of the reply a successful handler returns.
    pub reply_schema: serde_json::Value,
    /// Attempts before the troubleshooting queue.
    pub max_attempts: u32,
    /// Delays between attempts, in milliseconds (the last repeats).
    pub backoff_ms: Vec<u64>,
    /// How long a handler may run, in milliseconds, if the type says.
    pub timeout_ms: Option<u64>,
    /// Priority within the domain.
    pub priority: i16,
}

impl CommandType {
    /// A definition read back from a store (for backends), with the
    /// default policy until [`with_policy`](Self::with_policy).
    pub fn new(
        domain: String,
        command_type: String,
        payload_schema: serde_json::Value,
        reply_schema: serde_json::Value,
    ) -> Self {
        Self {
            domain,
            command_type,
            payload_schema,
            reply_schema,
            max_attempts: crate::RetryPolicy::DEFAULT_MAX_ATTEMPTS,
            backoff_ms: Vec::new(),
            timeout_ms: None,
            priority: 0,
        }
    }

    /// Sets the retry policy, timeout and priority.
    #[must_use]
    pub fn with_policy(
        mut self,
        max_attempts: u32,
        backoff_ms: Vec<u64>,
        timeout_ms: Option<u64>,
        priority: i16,
    ) -> Self {
        self.max_attempts = max_attempts;
        self.backoff_ms = backoff_ms;
        self.timeout_ms = timeout_ms;
        self.priority = priority;
        self
    }

    /// What `C` declares.
    pub fn of<C: Command>() -> Self {
        let policy = C::retry_policy();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            domain: C::DOMAIN.to_owned(),
            command_type: C::NAME.to_owned(),
            payload_schema: C::payload_schema(),
            reply_schema: C::reply_schema(),
            max_attempts: policy.max_attempts(),
            backoff_ms: policy.backoff().iter().copied().map(millis).collect(),
            timeout_ms: C::TIMEOUT.map(millis),
            priority: C::PRIORITY,
        }
    }

    /// Whether `self` and `other` describe the same version (same schemas
    /// and policy), whatever their names.
    pub fn same_definition(&self, other: &Self) -> bool {
        (
            &self.payload_schema,
            &self.reply_schema,
            self.max_attempts,
            &self.backoff_ms,
            self.timeout_ms,
            self.priority,
        ) == (
            &other.payload_schema,
            &other.reply_schema,
            other.max_attempts,
            &other.backoff_ms,
            other.timeout_ms,
            other.priority,
        )
    }
}

/// One version of a command type, as the catalog holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The definition of this version.
    #[serde(flatten)]
    pub definition: CommandType,
    /// 1 for the first definition seen, then one more per change.
    pub version: u32,
    /// When a sender or worker first recorded this version.
    pub first_seen_at: DateTime<Utc>,
    /// When a sender or worker last recorded it.
    pub last_seen_at: DateTime<Utc>,
    /// When a worker with its handler last recorded it; `None` if none ever did.
    pub last_served_at: Option<DateTime<Utc>>,
    /// Whether a worker recorded it within [`LIVE_WITHIN`] (by the store's clock).
    pub live: bool,
}

impl CatalogEntry {
    /// Builds an entry (for backends).
    pub fn new(
        definition: CommandType,
        version: u32,
        seen: (DateTime<Utc>, DateTime<Utc>),
        last_served_at: Option<DateTime<Utc>>,
        live: bool,
    ) -> Self {
        let (first_seen_at, last_seen_at) = seen;
        Self { definition, version, first_seen_at, last_seen_at, last_served_at, live }
    }
}

/// What recording a command type found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registered {
    /// Domain.
    pub domain: String,
    /// Type name.
    pub command_type: String,
    /// The version this definition is.
    pub version: u32,
    /// Whether this call recorded the definition for the first time.
    pub new_version: bool,
    /// When any worker last served any type of the domain (this call
    /// included); `None` if nothing ever has.
    pub domain_served_at: Option<DateTime<Utc>>,
}

impl Registered {
    /// Builds an outcome (for backends).
    pub fn new(
        domain: String,
        command_type: String,
        version: u32,
        new_version: bool,
        domain_served_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self { domain, command_type, version, new_version, domain_served_at }
    }
}

/// Every version of every recorded command type.
///
/// ```
/// # async fn demo(bus: &cmdbus::testing::MemoryBus) -> cmdbus::Result<()> {
/// let catalog = bus.catalog().await?;
/// for entry in catalog.current() {
///     println!("{}/{} v{}", entry.definition.domain, entry.definition.command_type, entry.version);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Catalog {
    /// Sorted by domain, type and version.
    entries: Vec<CatalogEntry>,
}

impl Catalog {
    /// A catalog of `entries` (any order).
    pub fn new(mut entries: Vec<CatalogEntry>) -> Self {
        entries.sort_by(|a, b| {
            let key = |e: &CatalogEntry| {
                (e.definition.domain.clone(), e.definition.command_type.clone(), e.version)
            };
            key(a).cmp(&key(b))
        });
        Self { entries }
    }

    /// Every version, by domain, type and version.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// The latest version of each type.
    pub fn current(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.iter().enumerate().filter_map(|(i, entry)| {
            let next = self.entries.get(i + 1);
            let superseded = next.is_some_and(|n| {
                n.definition.domain == entry.definition.domain
                    && n.definition.command_type == entry.definition.command_type
            });
            (!superseded).then_some(entry)
        })
    }

    /// The latest version of one type.
    pub fn latest(&self, domain: &str, command_type: &str) -> Option<&CatalogEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.definition.domain == domain && e.definition.command_type == command_type)
    }

    /// Every version of one type, oldest first.
    pub fn versions<'a>(
        &'a self,
        domain: &'a str,
        command_type: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a CatalogEntry> + 'a {
        self.entries.iter().filter(move |e| {
            e.definition.domain == domain && e.definition.command_type == command_type
        })
    }

    /// Whether workers serve `domain` (or only `command_type` of it): a
    /// live one now, and when one last did.
    pub fn served(&self, domain: &str, command_type: Option<&str>) -> Served {
        let mut served = Served { live: false, last_served_at: None };
        let matching = self.entries.iter().filter(|e| {
            e.definition.domain == domain
                && command_type.is_none_or(|t| e.definition.command_type == t)
        });
        for entry in matching {
            served.live |= entry.live;
            served.last_served_at = served.last_served_at.max(entry.last_served_at);
        }
        served
    }
}

/// Whether workers serve a domain or type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Served {
    /// A worker recorded it within [`LIVE_WITHIN`].
    pub live: bool,
    /// When a worker last recorded it; `None` if none ever did.
    pub last_served_at: Option<DateTime<Utc>>,
}

/// Checks an operator's JSON `result` for commands of `types` (domain,
/// command type) against the reply schema of each type's latest version in
/// `catalog`; all must fit.
pub(crate) fn check_result<'a>(
    catalog: &Catalog,
    types: impl IntoIterator<Item = (&'a str, &'a str)>,
    result: &serde_json::Value,
) -> Result<()> {
    let mut types: Vec<(&str, &str)> = types.into_iter().collect();
    types.sort_unstable();
    types.dedup();
    types.into_iter().try_for_each(|(domain, command_type)| {
        let entry =
            catalog.latest(domain, command_type).ok_or_else(|| Error::UnknownReplySchema {
                domain: domain.to_owned(),
                command_type: command_type.to_owned(),
            })?;
        let problems = problems(&entry.definition.reply_schema, result, "the result")?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::ResultMismatch {
            domain: domain.to_owned(),
            command_type: command_type.to_owned(),
            version: entry.version,
            problems,
        })
    })
}

/// Checks an operator's edited `payload` for a command of `domain` and
/// `command_type` against the payload schema of the type's latest version
/// in `catalog`.
pub(crate) fn check_payload(
    catalog: &Catalog,
    domain: &str,
    command_type: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    let entry =
        catalog.latest(domain, command_type).ok_or_else(|| Error::UnknownPayloadSchema {
            domain: domain.to_owned(),
            command_type: command_type.to_owned(),
        })?;
    let problems = problems(&entry.definition.payload_schema, payload, "the payload")?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::PayloadMismatch {
        domain: domain.to_owned(),
        command_type: command_type.to_owned(),
        version: entry.version,
        problems,
    })
}

/// What `schema` finds wrong with `value`, each with where it is (`whole`
/// names the top level).
fn problems(
    schema: &serde_json::Value,
    value: &serde_json::Value,
    whole: &str,
) -> Result<Vec<String>> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| Error::backend("reading a schema in the catalog", e.to_string()))?;
    Ok(validator
        .iter_errors(value)
        .map(|error| {
            let at = error.instance_path().as_str();
            let at = if at.is_empty() { whole } else { at };
            format!("{at}: {error}")
        })
        .collect())
}
