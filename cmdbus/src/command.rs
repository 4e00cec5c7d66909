//! The `Command` trait: what a type must be to travel on the bus.

use serde::{Serialize, de::DeserializeOwned};

use crate::RetryPolicy;

/// A command: a request to do something, sent once and handled once in effect.
///
/// Implement it with [`#[command]`](crate::command), never by hand:
///
/// ```
/// use cmdbus::command;
///
/// #[command(domain = "payments", reply = u64, max_attempts = 5, backoff = ["1s", "30s"])]
/// struct DebitAccount {
///     account: String,
///     amount_cents: i64,
/// }
///
/// use cmdbus::Command;
/// assert_eq!(DebitAccount::DOMAIN, "payments");
/// assert_eq!(DebitAccount::NAME, "DebitAccount");
/// assert_eq!(DebitAccount::retry_policy().max_attempts(), 5);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not a command",
    note = "declare it with `#[cmdbus::command(domain = \"...\")]` on the struct or enum"
)]
pub trait Command:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The domain (bounded context) the command belongs to; workers serve domains.
    const DOMAIN: &'static str;
    /// The command's type name, stored with every command. Defaults to the Rust type's name.
    const NAME: &'static str;
    /// What a successful handler returns; sent back in the SUCCESS reply.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Attempts before the troubleshooting queue (default 3); a constant so
    /// sending needs no policy built.
    const MAX_ATTEMPTS: u32 = RetryPolicy::DEFAULT_MAX_ATTEMPTS;

    /// Retry policy for this command type (default: [`Self::MAX_ATTEMPTS`]
    /// attempts, 10s / 60s / 300s).
    fn retry_policy() -> RetryPolicy {
        RetryPolicy::default().with_max_attempts(Self::MAX_ATTEMPTS)
    }

    /// The JSON schema of the payload, for operators and tooling.
    fn payload_schema() -> serde_json::Value {
        schemars::schema_for!(Self).to_value()
    }
}
