//! Attribute keywords, named once so parsing and error messages agree.

pub(crate) const DOMAIN: &str = "domain";
pub(crate) const NAME: &str = "name";
pub(crate) const REPLY: &str = "reply";
pub(crate) const MAX_ATTEMPTS: &str = "max_attempts";
pub(crate) const BACKOFF: &str = "backoff";
pub(crate) const TIMEOUT: &str = "timeout";
pub(crate) const PRIORITY: &str = "priority";
/// A flag: the type implements `Serialize`, `Deserialize` and `JsonSchema` itself.
pub(crate) const MANUAL_SERDE: &str = "manual_serde";

pub(crate) const ALL: &[&str] =
    &[DOMAIN, NAME, REPLY, MAX_ATTEMPTS, BACKOFF, TIMEOUT, PRIORITY, MANUAL_SERDE];
