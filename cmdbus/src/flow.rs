//! Flow control an operator applies to a whole domain or command type:
//! pausing and resuming. Paused commands stay PENDING; no worker leases
//! them until they are resumed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, Result};

/// What a pause applies to: a domain, or one command type of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct FlowTarget {
    /// The domain.
    pub domain: String,
    /// One command type of it; `None` for the whole domain.
    pub command_type: Option<String>,
}

impl FlowTarget {
    /// Every command type of `domain`.
    pub fn domain(domain: impl Into<String>) -> Result<Self> {
        let domain = domain.into();
        crate::validate_domain(&domain)?;
        Ok(Self { domain, command_type: None })
    }

    /// One command type.
    pub fn command_type(
        domain: impl Into<String>,
        command_type: impl Into<String>,
    ) -> Result<Self> {
        let (domain, command_type) = (domain.into(), command_type.into());
        crate::validate_domain(&domain)?;
        crate::validate_command_type(&command_type)?;
        Ok(Self { domain, command_type: Some(command_type) })
    }

    /// The command type `C`.
    pub fn of<C: crate::Command>() -> Self {
        Self { domain: C::DOMAIN.to_owned(), command_type: Some(C::NAME.to_owned()) }
    }

    /// Whether a command of `domain`/`command_type` is covered.
    pub fn covers(&self, domain: &str, command_type: &str) -> bool {
        self.domain == domain && self.command_type.as_deref().is_none_or(|t| t == command_type)
    }
}

impl std::fmt::Display for FlowTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command_type {
            Some(command_type) => write!(f, "{}/{command_type}", self.domain),
            None => write!(f, "{} (every type)", self.domain),
        }
    }
}

/// A pause in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Pause {
    /// What is paused.
    pub target: FlowTarget,
    /// Who paused it.
    pub operator: String,
    /// Why.
    pub reason: String,
    /// When.
    pub paused_at: DateTime<Utc>,
}

impl Pause {
    /// Builds one; for backends.
    pub fn new(
        target: FlowTarget,
        operator: String,
        reason: String,
        paused_at: DateTime<Utc>,
    ) -> Self {
        Self { target, operator, reason, paused_at }
    }
}

/// Refuses an empty reason: an operator's pause says why.
pub(crate) fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::InvalidName {
            kind: "pause reason",
            value: reason.to_owned(),
            reason: "say why the work is paused",
        });
    }
    Ok(())
}

/// Limits in force on one target, shared by every worker of the fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Limit {
    /// What is limited.
    pub target: FlowTarget,
    /// Commands leased at once, at most (leased ahead included).
    pub max_in_flight: Option<u32>,
    /// Commands leased per second, at most, on average; bursts up to one
    /// second's worth (at least 1).
    pub per_second: Option<f64>,
    /// Who set it last.
    pub operator: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

impl Limit {
    /// Builds one; for backends.
    pub fn new(target: FlowTarget, operator: String, set_at: DateTime<Utc>) -> Self {
        Self { target, max_in_flight: None, per_second: None, operator, set_at }
    }

    /// With a concurrency limit.
    #[must_use]
    pub fn with_max_in_flight(mut self, max: Option<u32>) -> Self {
        self.max_in_flight = max;
        self
    }

    /// With a rate limit.
    #[must_use]
    pub fn with_per_second(mut self, per_second: Option<f64>) -> Self {
        self.per_second = per_second;
        self
    }

    /// The most a rate limit lets through at once: one second's worth.
    pub fn burst(per_second: f64) -> f64 {
        per_second.max(1.0)
    }
}

/// A change to a target's limits.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum LimitChange {
    /// Sets the concurrency limit (keeps a rate limit).
    MaxInFlight(u32),
    /// Sets the rate limit (keeps a concurrency limit).
    PerSecond(f64),
    /// Removes both.
    Remove,
}
