//! Which command an operator action targets.

use crate::Command;
use uuid::Uuid;

/// A command id with its domain, or an id alone.
///
/// Command ids are unique per domain, so one id may exist in several (an
/// order id used as the command id in `payments` and in `shipping`). An id
/// alone is acted on only when exactly one domain holds it; otherwise the
/// action is refused with [`AmbiguousCommandId`](crate::Error::AmbiguousCommandId)
/// and the domain must be named. Typed calls name it themselves.
///
/// ```
/// # use uuid::Uuid;
/// use cmdbus::CommandKey;
/// let id = Uuid::now_v7();
/// let in_payments = CommandKey::new("payments", id);
/// let anywhere: CommandKey = id.into();
/// assert_eq!((in_payments.domain(), anywhere.domain()), (Some("payments"), None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandKey {
    domain: Option<String>,
    command_id: Uuid,
}

impl CommandKey {
    /// The command `command_id` in `domain`.
    pub fn new(domain: impl Into<String>, command_id: Uuid) -> Self {
        Self { domain: Some(domain.into()), command_id }
    }

    /// The command `command_id` of type `C` (in `C::DOMAIN`).
    pub fn of<C: Command>(command_id: Uuid) -> Self {
        Self::new(C::DOMAIN, command_id)
    }

    /// `command_id` in `domain` when one is given, else in whichever domain holds it.
    pub fn maybe_in(domain: Option<String>, command_id: Uuid) -> Self {
        Self { domain, command_id }
    }

    /// The domain, when named.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The command id.
    pub fn command_id(&self) -> Uuid {
        self.command_id
    }
}

impl From<Uuid> for CommandKey {
    fn from(command_id: Uuid) -> Self {
        Self { domain: None, command_id }
    }
}
