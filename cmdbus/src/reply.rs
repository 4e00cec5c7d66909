//! Replies: what the sender of a command learns about its end.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::Error;

/// The reply queue used when a send names none.
pub const DEFAULT_REPLY_QUEUE: &str = "default";

/// How a command ended, as told to its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ReplyStatus {
    /// Completed (by its handler or an operator); carries the reply payload.
    Success,
    /// Refused by a business rule; carries code and message.
    Failed,
    /// Canceled by an operator; carries the reason.
    Canceled,
}

impl ReplyStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Success, Self::Failed, Self::Canceled].into_iter().find(|s| s.as_str() == value)
    }
}

/// A reply as stored, untyped. Exactly one exists per COMPLETED, FAILED or
/// CANCELED command.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Reply {
    /// Domain of the command.
    pub domain: String,
    /// The command's id.
    pub command_id: Uuid,
    /// The command's correlation id.
    pub correlation_id: Uuid,
    /// The queue it was sent to.
    pub reply_to: String,
    /// How the command ended.
    pub status: ReplyStatus,
    /// SUCCESS: the handler's reply. FAILED / CANCELED: `{code, message, details}` or `{reason, operator}`.
    pub body: Box<RawValue>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

impl Reply {
    /// Builds a reply; for backends.
    pub fn new(
        domain: String,
        command_id: Uuid,
        correlation_id: Uuid,
        reply_to: String,
        status: ReplyStatus,
        body: Box<RawValue>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self { domain, command_id, correlation_id, reply_to, status, body, created_at }
    }

    /// Decodes the reply for a command whose reply type is `R`.
    pub fn typed<R: DeserializeOwned>(&self) -> Result<TypedReply<R>, Error> {
        let decode_error = |source| Error::ReplyDecode {
            command_id: self.command_id,
            expected: std::any::type_name::<R>(),
            source,
        };
        Ok(match self.status {
            ReplyStatus::Success => {
                TypedReply::Success(serde_json::from_str(self.body.get()).map_err(decode_error)?)
            }
            ReplyStatus::Failed => {
                let body: FailedBody =
                    serde_json::from_str(self.body.get()).map_err(decode_error)?;
                TypedReply::Failed { code: body.code, message: body.message, details: body.details }
            }
            ReplyStatus::Canceled => {
                let body: CanceledBody =
                    serde_json::from_str(self.body.get()).map_err(decode_error)?;
                TypedReply::Canceled { reason: body.reason, operator: body.operator }
            }
        })
    }
}

/// A reply decoded for its command's reply type.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TypedReply<R> {
    /// The command completed with this result.
    Success(R),
    /// The handler refused the command.
    Failed {
        /// Machine-readable code.
        code: String,
        /// Message.
        message: String,
        /// Structured details.
        details: Option<serde_json::Value>,
    },
    /// An operator canceled the command.
    Canceled {
        /// Why.
        reason: String,
        /// Who.
        operator: String,
    },
}

impl<R> TypedReply<R> {
    /// The success value, if the command completed.
    pub fn success(self) -> Option<R> {
        match self {
            Self::Success(value) => Some(value),
            _ => None,
        }
    }

    /// The success value, or why there is none as an error (`?`-friendly).
    pub fn into_result(self) -> Result<R, NotCompleted> {
        match self {
            Self::Success(value) => Ok(value),
            Self::Failed { code, message, details } => {
                Err(NotCompleted::Failed { code, message, details })
            }
            Self::Canceled { reason, operator } => Err(NotCompleted::Canceled { reason, operator }),
        }
    }
}

impl<R> From<TypedReply<R>> for Result<R, NotCompleted> {
    fn from(reply: TypedReply<R>) -> Self {
        reply.into_result()
    }
}

/// Why a command has no success value: its FAILED or CANCELED reply.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NotCompleted {
    /// The handler refused the command.
    #[error("the command was refused: {code}: {message}")]
    Failed {
        /// Machine-readable code.
        code: String,
        /// Message.
        message: String,
        /// Structured details.
        details: Option<serde_json::Value>,
    },
    /// An operator canceled the command.
    #[error("the command was canceled by {operator}: {reason}")]
    Canceled {
        /// Why.
        reason: String,
        /// Who.
        operator: String,
    },
}

/// Body of a FAILED reply.
#[derive(Serialize, Deserialize)]
pub(crate) struct FailedBody {
    pub(crate) code: String,
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<serde_json::Value>,
}

/// Body of a CANCELED reply.
#[derive(Serialize, Deserialize)]
pub(crate) struct CanceledBody {
    pub(crate) reason: String,
    pub(crate) operator: String,
}

/// The stored body of a FAILED reply for `failure` (transitions plan it).
pub(crate) fn failed_reply_body(failure: &crate::Failure) -> Box<RawValue> {
    to_raw(&FailedBody {
        code: failure.code.clone(),
        message: failure.message.clone(),
        details: failure.details.clone(),
    })
}

/// The stored body of a CANCELED reply (transitions plan it).
pub(crate) fn canceled_reply_body(reason: &str, operator: &str) -> Box<RawValue> {
    to_raw(&CanceledBody { reason: reason.to_owned(), operator: operator.to_owned() })
}

fn to_raw<T: Serialize>(value: &T) -> Box<RawValue> {
    // Serializing these plain string/JSON structs cannot fail.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}
