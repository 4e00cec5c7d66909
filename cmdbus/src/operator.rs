//! Who performs an operator action. Mandatory for every one of them, so the
//! audit trail always says who retried, canceled or completed a command.

use std::fmt;

use crate::Error;

/// An operator's identity, e.g. an e-mail address or a login.
///
/// ```
/// let ops = cmdbus::Operator::new("ops@example.com").unwrap();
/// assert_eq!(ops.as_str(), "ops@example.com");
/// assert!(cmdbus::Operator::new("  ").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Operator(String);

impl Operator {
    /// Longest identity accepted.
    pub const MAX_BYTES: usize = 200;

    /// Validates an identity: not blank, at most 200 bytes, no control characters.
    pub fn new(identity: impl Into<String>) -> Result<Self, Error> {
        let identity = identity.into();
        let trimmed = identity.trim();
        let reason = if trimmed.is_empty() {
            Some("it is empty")
        } else if trimmed.len() > Self::MAX_BYTES {
            Some("it is longer than 200 bytes")
        } else if trimmed.chars().any(char::is_control) {
            Some("it contains control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidName { kind: "operator", value: identity, reason }),
            None => Ok(Self(trimmed.to_owned())),
        }
    }

    /// The identity.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_validated() {
        assert_eq!(Operator::new(" ada ").unwrap().to_string(), "ada");
        assert!(Operator::new("").is_err());
        assert!(Operator::new("a\nb").is_err());
        assert!(Operator::new("x".repeat(201)).is_err());
    }
}
