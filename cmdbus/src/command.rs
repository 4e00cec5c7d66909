//! The `Command` trait: what a type must be to travel on the bus.

use serde::{Serialize, de::DeserializeOwned};

use crate::RetryPolicy;

/// A command: a request to do something, sent once and handled once in effect.
///
/// Declare one with `#[derive(Command)]` and its keys in `#[command(...)]`:
///
/// ```
/// use cmdbus::{Command, Payload};
///
/// #[derive(Payload)]
/// struct DebitReceipt {
///     balance_cents: i64,
/// }
///
/// /// Debits an account (doc comments become schema descriptions).
/// #[derive(Command)]
/// #[command(domain = "payments", reply = DebitReceipt, max_attempts = 5, backoff = ["1s", "30s"])]
/// struct DebitAccount {
///     account: String,
///     amount_cents: i64,
/// }
///
/// assert_eq!(DebitAccount::DOMAIN, "payments");
/// assert_eq!(DebitAccount::NAME, "DebitAccount");
/// assert_eq!(DebitAccount::retry_policy().max_attempts(), 5);
/// assert_eq!(DebitAccount::payload_schema()["title"], "DebitAccount");
/// ```
///
/// # Keys
///
/// | key | default | meaning |
/// |---|---|---|
/// | `domain = "payments"` | required | the bounded context; workers serve domains. Letters, digits, `_ - .`, at most 100 bytes |
/// | `name = "DebitAccount"` | the type's name | the type name stored with every command (same rules); renaming the Rust type keeps stored commands decodable if `name` stays |
/// | `reply = Type` | `()` | what a successful handler returns; a [`Payload`](derive@crate::Payload) (or any serde + `JsonSchema` type) |
/// | `max_attempts = 5` | 3 | attempts before the troubleshooting queue |
/// | `backoff = ["10s", "1m"]` | 10s, 60s, 300s | delays between attempts (`ms`, `s`, `m`, `h`); the last repeats |
/// | `timeout = "5m"` | the worker's, else none | a handler running longer is stopped; the attempt is a transient failure (`handler_timeout`) |
/// | `manual_serde` | off | the type implements `Serialize`, `Deserialize` and `JsonSchema` itself |
///
/// Every mistake is a compile error at the key to fix; all of them are
/// reported at once.
///
/// # What the derive generates
///
/// This trait's impl, and `Serialize`, `Deserialize` and `JsonSchema` impls
/// through cmdbus's own re-exports: a crate that declares commands needs no
/// serde or schemars dependency. `#[serde(...)]` and `#[schemars(...)]`
/// attributes on the type, its fields and variants are honoured as serde's
/// own derive would. Types used in fields need those traits too: derive
/// [`Payload`](derive@crate::Payload) on your own ones (a field whose type
/// lacks them is reported at the field, naming this fix; fields serde is
/// told to `skip`, or to handle `with` a module, are not checked).
///
/// An existing type that already derives serde's traits (a DTO shared with
/// an HTTP API) becomes a command with `manual_serde`:
///
/// ```
/// # use cmdbus::Command;
/// #[derive(cmdbus::__private::serde::Serialize, cmdbus::__private::serde::Deserialize)]
/// #[derive(cmdbus::__private::schemars::JsonSchema, Command)]
/// # #[serde(crate = "cmdbus::__private::serde")]
/// # #[schemars(crate = "cmdbus::__private::schemars")]
/// #[command(domain = "billing", manual_serde)]
/// struct Invoice {
///     number: u32,
/// }
/// # assert_eq!(Invoice::NAME, "Invoice");
/// ```
///
/// (With serde and schemars as direct dependencies, that is the usual
/// `#[derive(Serialize, Deserialize, JsonSchema, Command)]`.)
///
/// Structs and enums are supported; unions and generic types are refused
/// (the stored type name must name one concrete type). The attribute form
/// `#[command(domain = "...")]` without the derive is an alias kept for
/// existing code (ADR 004).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not a command",
    note = "declare it with `#[derive(cmdbus::Command)]` and `#[command(domain = \"...\")]` on the struct or enum"
)]
pub trait Command:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The domain (bounded context) the command belongs to; workers serve domains.
    const DOMAIN: &'static str;
    /// The command's type name, stored with every command. Defaults to the Rust type's name.
    const NAME: &'static str;
    /// What a successful handler returns; sent back in the SUCCESS reply.
    type Reply: Serialize + DeserializeOwned + schemars::JsonSchema + Send + 'static;

    /// Attempts before the troubleshooting queue (default 3); a constant so
    /// sending needs no policy built.
    const MAX_ATTEMPTS: u32 = RetryPolicy::DEFAULT_MAX_ATTEMPTS;

    /// How long a handler may run before it is stopped and the attempt
    /// counts as a transient failure (`handler_timeout`); `None` (the
    /// default) leaves it to the worker's
    /// [`handler_timeout`](crate::WorkerBuilder::handler_timeout).
    const TIMEOUT: Option<std::time::Duration> = None;

    /// Priority within the domain (default 0): due commands of a higher
    /// priority are leased first, FIFO within a priority. A share of every
    /// worker's leases (one command in eight) goes to the oldest due command
    /// whatever its priority, so low priorities slow down but never starve.
    /// [`SendOptions::priority`](crate::SendOptions::priority) overrides it
    /// per command.
    const PRIORITY: i16 = 0;

    /// Retry policy for this command type (default: [`Self::MAX_ATTEMPTS`]
    /// attempts, 10s / 60s / 300s).
    fn retry_policy() -> RetryPolicy {
        RetryPolicy::default().with_max_attempts(Self::MAX_ATTEMPTS)
    }

    /// The JSON schema of the payload, for operators and tooling.
    fn payload_schema() -> serde_json::Value {
        schemars::schema_for!(Self).to_value()
    }

    /// The JSON schema of the reply, recorded in the command-type catalog so
    /// that a result an operator gives is checked before it is stored.
    fn reply_schema() -> serde_json::Value {
        schemars::schema_for!(Self::Reply).to_value()
    }
}
