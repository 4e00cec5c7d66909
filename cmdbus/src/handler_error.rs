//! What a handler returns when it does not succeed, and how that is recorded.

use std::{borrow::Cow, error::Error as StdError, fmt, time::Duration};

use serde::{Deserialize, Serialize};

/// How a failure is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Might work later: retried with backoff, then troubleshooting queue.
    Transient,
    /// Will never work as is: straight to the troubleshooting queue.
    Permanent,
    /// The handler says "no" (a business rule): terminal FAILED, FAILED reply.
    BusinessRule,
}

/// The error a handler returns.
///
/// Build it with [`transient`](Self::transient), [`permanent`](Self::permanent)
/// or [`business_rule`](Self::business_rule), or let `?` convert any
/// `std::error::Error`: such an error is *unclassified*, and the worker's
/// [`Classifier`](crate::Classifier) decides (transient unless told otherwise).
///
/// It deliberately does not implement `std::error::Error`, so that the
/// blanket `From` for every error type can exist (as with `anyhow::Error`).
///
/// ```
/// use cmdbus::{ErrorKind, HandlerError};
///
/// let no = HandlerError::business_rule("insufficient_funds", "balance is 3.50")
///     .with_details(serde_json::json!({ "balance_cents": 350 }));
/// assert_eq!(no.kind(), Some(ErrorKind::BusinessRule));
///
/// let io: HandlerError = std::io::Error::other("connection reset").into();
/// assert_eq!(io.kind(), None);
/// assert_eq!(io.message(), "connection reset");
/// ```
pub struct HandlerError(Box<Inner>);

// Boxed so `Result<_, HandlerError>` stays one pointer wide on the hot path.
struct Inner {
    kind: Option<ErrorKind>,
    code: Cow<'static, str>,
    message: String,
    error_type: Cow<'static, str>,
    details: Option<serde_json::Value>,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl HandlerError {
    fn new(
        kind: Option<ErrorKind>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            kind,
            code: code.into(),
            message: message.into(),
            error_type: Cow::Borrowed("HandlerError"),
            details: None,
            retry_after: None,
            source: None,
        }))
    }

    /// A failure that may go away: retried with the command's backoff.
    pub fn transient(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Some(ErrorKind::Transient), code, message)
    }

    /// A failure that will not go away: the command goes to the troubleshooting queue.
    pub fn permanent(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Some(ErrorKind::Permanent), code, message)
    }

    /// A refusal: the command ends FAILED and the sender gets a FAILED reply.
    pub fn business_rule(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Some(ErrorKind::BusinessRule), code, message)
    }

    /// Wraps `error` with an explicit kind, keeping it as the source.
    pub fn with_kind<E: StdError + Send + Sync + 'static>(kind: ErrorKind, error: E) -> Self {
        let mut this = Self::from(error);
        this.0.kind = Some(kind);
        this
    }

    /// Wraps an error that classifies itself.
    pub fn classified<E: crate::Classify + StdError + Send + Sync + 'static>(error: E) -> Self {
        let kind = error.kind();
        Self::with_kind(kind, error)
    }

    /// Attaches structured details (recorded with the failure and in the FAILED reply).
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.0.details = Some(details);
        self
    }

    /// For a transient failure: retry after `delay` instead of the backoff schedule.
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.0.retry_after = Some(delay);
        self
    }

    /// The kind, or `None` when the worker's classifier decides.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.0.kind
    }

    /// A short machine-readable code, e.g. `insufficient_funds`.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The Rust type of the underlying error, or `HandlerError`.
    pub fn error_type(&self) -> &str {
        &self.0.error_type
    }

    /// Structured details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.0.details.as_ref()
    }

    /// The requested retry delay, if any.
    pub fn requested_retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The underlying error, if this wraps one.
    pub fn source(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.0.source.as_deref()
    }

    /// What gets recorded, with `kind` decided.
    pub(crate) fn to_failure(&self, kind: ErrorKind) -> Failure {
        Failure::new(
            kind,
            &self.0.error_type,
            &self.0.code,
            &self.0.message,
            self.0.details.clone(),
        )
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(inner) = cause {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            cause = inner.source();
        }
        let mut this = Self::new(None, "error", message);
        this.0.error_type = Cow::Borrowed(std::any::type_name::<E>());
        this.0.source = Some(Box::new(error));
        this
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.0.kind)
            .field("code", &self.0.code)
            .field("message", &self.0.message)
            .field("error_type", &self.0.error_type)
            .field("details", &self.0.details)
            .field("retry_after", &self.0.retry_after)
            .finish_non_exhaustive()
    }
}

/// A recorded failure: what operators see and what FAILED replies carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// How it was treated.
    pub kind: ErrorKind,
    /// Rust type of the error.
    pub error_type: String,
    /// Machine-readable code.
    pub code: String,
    /// Message, cut to [`Failure::MAX_MESSAGE_BYTES`].
    pub message: String,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Failure {
    /// Longest message kept; longer ones are cut at a character boundary.
    pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
    /// Longest code kept.
    pub const MAX_CODE_BYTES: usize = 128;

    /// The failure recorded when a command's last lease expired (its worker
    /// crashed or stalled on every attempt).
    pub fn lease_expired() -> Self {
        Self::new(
            ErrorKind::Transient,
            "cmdbus::LeaseExpired",
            "lease_expired",
            "the lease expired before the worker recorded an outcome (worker crashed or stalled)",
            None,
        )
    }

    /// Builds a failure, cutting oversized text so one runaway error cannot bloat a row.
    pub fn new(
        kind: ErrorKind,
        error_type: &str,
        code: &str,
        message: &str,
        details: Option<serde_json::Value>,
    ) -> Self {
        Self {
            kind,
            error_type: truncate(error_type, Self::MAX_CODE_BYTES * 2),
            code: truncate(code, Self::MAX_CODE_BYTES),
            message: truncate(message, Self::MAX_MESSAGE_BYTES),
            details,
        }
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, marking the cut.
/// NUL characters are dropped: PostgreSQL text cannot hold them.
fn truncate(text: &str, max: usize) -> String {
    let clean: Cow<'_, str> =
        if text.contains('\0') { text.replace('\0', "").into() } else { text.into() };
    if clean.len() <= max {
        return clean.into_owned();
    }
    const MARK: &str = "…[truncated]";
    let mut end = max.saturating_sub(MARK.len());
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &clean[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn from_std_error_keeps_type_chain_and_source() {
        let error = HandlerError::from(Outer(std::io::Error::other("inner")));
        assert_eq!(error.kind(), None);
        assert_eq!(error.message(), "outer: inner");
        assert!(error.error_type().ends_with("Outer"));
        assert!(error.source().is_some());
        assert_eq!(error.to_string(), "error: outer: inner");
        let forced = HandlerError::with_kind(ErrorKind::Permanent, std::io::Error::other("x"));
        assert_eq!(forced.kind(), Some(ErrorKind::Permanent));
        assert!(format!("{forced:?}").contains("Permanent"));
    }

    #[test]
    fn builders_set_kind_details_and_delay() {
        let error =
            HandlerError::transient("busy", "try later").retry_after(Duration::from_secs(2));
        assert_eq!(error.kind(), Some(ErrorKind::Transient));
        assert_eq!(error.requested_retry_after(), Some(Duration::from_secs(2)));
        let failure = HandlerError::permanent("bad", "no")
            .with_details(serde_json::json!({"a": 1}))
            .to_failure(ErrorKind::Permanent);
        assert_eq!(failure.code, "bad");
        assert_eq!(failure.details, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn oversized_and_nul_text_is_cut_safely() {
        let huge = "é".repeat(10_000);
        let failure = Failure::new(ErrorKind::Transient, "T", "c\0ode", &huge, None);
        assert!(failure.message.len() <= Failure::MAX_MESSAGE_BYTES);
        assert!(failure.message.ends_with("[truncated]"));
        assert_eq!(failure.code, "code");
    }
}
