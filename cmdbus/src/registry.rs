//! Which handler serves which command type, collected at link time.

use std::{collections::BTreeMap, fmt};

use futures_util::future::BoxFuture;
use serde_json::value::RawValue;

use crate::{
    Command, CommandType, Error, HandlerContext, HandlerError, RetryPolicy, validate_command_type,
    validate_domain,
};

/// What the type-erased handler shim returns: the serialized reply.
pub type ErasedResult = Result<Box<RawValue>, HandlerError>;

type ErasedHandler =
    for<'a> fn(&'a RawValue, &'a mut HandlerContext) -> BoxFuture<'a, ErasedResult>;

/// One handler, as `#[handler]` registers it. Users do not build these.
pub struct HandlerRegistration {
    domain: &'static str,
    command_type: &'static str,
    handler: &'static str,
    location: &'static str,
    call: ErasedHandler,
    retry_policy: fn() -> RetryPolicy,
    timeout: Option<std::time::Duration>,
    definition: fn() -> CommandType,
}

inventory::collect!(HandlerRegistration);

impl HandlerRegistration {
    /// Describes the handler `handler` (a path) at `location` for command `C`.
    #[doc(hidden)]
    pub const fn new<C: Command>(
        handler: &'static str,
        location: &'static str,
        call: ErasedHandler,
    ) -> Self {
        Self {
            domain: C::DOMAIN,
            command_type: C::NAME,
            handler,
            location,
            call,
            retry_policy: C::retry_policy,
            timeout: C::TIMEOUT,
            definition: CommandType::of::<C>,
        }
    }

    /// The command's domain.
    pub fn domain(&self) -> &'static str {
        self.domain
    }

    /// The command's type name.
    pub fn command_type(&self) -> &'static str {
        self.command_type
    }

    /// `path::to::handler (file.rs:line)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.handler, self.location)
    }

    /// How long the handler may run (the command type's `timeout`).
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout
    }

    /// The command type's JSON schema.
    pub fn json_schema(&self) -> serde_json::Value {
        (self.definition)().payload_schema
    }

    /// What the command type declares, as the catalog records it.
    pub fn definition(&self) -> CommandType {
        (self.definition)()
    }

    pub(crate) fn call<'a>(
        &self,
        payload: &'a RawValue,
        ctx: &'a mut HandlerContext,
    ) -> BoxFuture<'a, ErasedResult> {
        (self.call)(payload, ctx)
    }
}

impl fmt::Debug for HandlerRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} -> {}", self.domain, self.command_type, self.describe())
    }
}

/// A registered handler and its command type's retry policy.
pub(crate) struct Entry {
    pub(crate) registration: &'static HandlerRegistration,
    pub(crate) policy: RetryPolicy,
}

/// Every handler known to this process, keyed by (domain, command type).
pub struct Registry {
    /// domain → command type → entry.
    entries: BTreeMap<&'static str, BTreeMap<&'static str, Entry>>,
}

impl Registry {
    /// Collects every `#[handler]` linked into this binary.
    ///
    /// Fails if two handlers serve one command type, naming both.
    pub fn from_inventory() -> Result<Self, Error> {
        Self::from_registrations(inventory::iter::<HandlerRegistration>)
    }

    /// Builds a registry from chosen registrations (tests, tools).
    pub fn from_registrations(
        registrations: impl IntoIterator<Item = &'static HandlerRegistration>,
    ) -> Result<Self, Error> {
        let mut entries: BTreeMap<_, BTreeMap<_, Entry>> = BTreeMap::new();
        for registration in registrations {
            validate_domain(registration.domain)?;
            validate_command_type(registration.command_type)?;
            let types = entries.entry(registration.domain).or_default();
            if let Some(first) = types.get(registration.command_type) {
                let (mut a, mut b) = (first.registration.describe(), registration.describe());
                // Link order is arbitrary; report the pair in a stable order.
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                return Err(Error::DuplicateHandler {
                    domain: registration.domain.to_owned(),
                    command_type: registration.command_type.to_owned(),
                    first: a,
                    second: b,
                });
            }
            let policy = (registration.retry_policy)();
            types.insert(registration.command_type, Entry { registration, policy });
        }
        Ok(Self { entries })
    }

    /// Domains that have at least one handler, sorted.
    pub fn domains(&self) -> Vec<String> {
        self.entries.keys().map(|domain| (*domain).to_owned()).collect()
    }

    /// The registrations, sorted by domain and type.
    pub fn registrations(&self) -> impl Iterator<Item = &'static HandlerRegistration> + '_ {
        self.entries.values().flat_map(|types| types.values().map(|entry| entry.registration))
    }

    /// Fails unless every domain in `domains` has a handler.
    pub fn check_serves(&self, domains: &[String]) -> Result<(), Error> {
        if domains.is_empty() {
            return Err(Error::NoDomains);
        }
        let known = self.domains();
        for domain in domains {
            validate_domain(domain)?;
            if !known.contains(domain) {
                return Err(Error::NoHandlers { domain: domain.clone(), known });
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, domain: &str, command_type: &str) -> Option<&Entry> {
        self.entries.get(domain)?.get(command_type)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.registrations()).finish()
    }
}

/// Decodes a stored payload into the handler's command type. A payload that
/// no longer decodes is a permanent failure with code `decode`.
#[doc(hidden)]
pub fn decode<C: Command>(payload: &RawValue) -> Result<C, HandlerError> {
    serde_json::from_str(payload.get()).map_err(|error| {
        HandlerError::permanent(
            "decode",
            format!("payload does not decode as {}/{}: {error}", C::DOMAIN, C::NAME),
        )
        .with_details(serde_json::json!({ "line": error.line(), "column": error.column() }))
    })
}

/// The return type a handler of `C` may have.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a handler of `{C}`",
    label = "expected `Result<<{C} as Command>::Reply, E>`",
    note = "a handler returns `Result<R, E>` where `R` is the `reply` type declared in `#[command(reply = R)]` (default `()`) and `E` is `HandlerError` or any `std::error::Error`"
)]
pub trait HandlerOutput<C: Command> {
    /// Serializes the reply, or converts the error.
    fn into_reply(self) -> ErasedResult;
}

impl<C: Command, E: Into<HandlerError>> HandlerOutput<C> for Result<C::Reply, E> {
    fn into_reply(self) -> ErasedResult {
        let reply = self.map_err(Into::into)?;
        serde_json::value::to_raw_value(&reply).map_err(|error| {
            HandlerError::permanent(
                "reply_encode",
                format!("reply of {}/{} does not serialize: {error}", C::DOMAIN, C::NAME),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command;

    #[command(domain = "registry-test", reply = u8, max_attempts = 7)]
    struct Ping {}

    fn call<'a>(payload: &'a RawValue, ctx: &'a mut HandlerContext) -> BoxFuture<'a, ErasedResult> {
        Box::pin(async move {
            let _ = (decode::<Ping>(payload)?, ctx);
            HandlerOutput::<Ping>::into_reply(Ok::<u8, HandlerError>(1))
        })
    }

    static FIRST: HandlerRegistration =
        HandlerRegistration::new::<Ping>("app::ping", "src/a.rs:1", call);
    static SECOND: HandlerRegistration =
        HandlerRegistration::new::<Ping>("app::pong", "src/b.rs:9", call);

    #[test]
    fn duplicate_handlers_are_refused_naming_both() {
        let error = Registry::from_registrations([&SECOND, &FIRST]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "two handlers for command registry-test/Ping: `app::ping (src/a.rs:1)` and `app::pong (src/b.rs:9)`"
        );
    }

    #[test]
    fn serves_only_domains_with_handlers() {
        let registry = Registry::from_registrations([&FIRST]).unwrap();
        assert_eq!(registry.domains(), ["registry-test"]);
        assert!(registry.check_serves(&["registry-test".into()]).is_ok());
        let error = registry.check_serves(&["payments".into()]).unwrap_err().to_string();
        assert_eq!(
            error,
            "worker asked to serve domain \"payments\", which has no handler; domains with handlers: [\"registry-test\"]"
        );
        assert!(matches!(registry.check_serves(&[]), Err(Error::NoDomains)));
        assert!(matches!(
            registry.check_serves(&["Bad Domain".into()]),
            Err(Error::InvalidName { .. })
        ));
        let entry = registry.get("registry-test", "Ping").unwrap();
        assert_eq!(entry.policy.max_attempts(), 7);
        assert!(registry.get("registry-test", "Pong").is_none());
        assert_eq!(FIRST.json_schema()["type"], "object");
        assert_eq!(format!("{registry:?}"), "[registry-test/Ping -> app::ping (src/a.rs:1)]");
    }

    #[tokio::test]
    async fn erased_call_decodes_runs_and_encodes() {
        let mut ctx = HandlerContext::detached(&crate::LeasedCommand::detached::<Ping>(1));
        let payload = RawValue::from_string("{}".into()).unwrap();
        assert_eq!(FIRST.call(&payload, &mut ctx).await.unwrap().get(), "1");
        let bad = RawValue::from_string("5".into()).unwrap();
        let error = FIRST.call(&bad, &mut ctx).await.unwrap_err();
        assert_eq!((error.kind(), error.code()), (Some(crate::ErrorKind::Permanent), "decode"));
        assert!(error.message().contains("registry-test/Ping"), "{}", error.message());
    }
}
