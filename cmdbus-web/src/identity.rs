//! Who is at the console and what they may do. In standalone mode the
//! console's own login decides; mounted in a host application, the host's
//! authentication does, through [`Identify`].

use std::fmt;

use axum::http::request::Parts;
use cmdbus::Operator;

/// What a console user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sees everything, changes nothing.
    Viewer,
    /// Also retries, cancels, completes and edits commands.
    Operator,
}

impl Role {
    /// `viewer` or `operator`, as in the users file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            other => Err(format!("unknown role {other:?}: use viewer or operator")),
        }
    }
}

/// An authenticated console user. Their name is the operator recorded in
/// the audit trail for everything they do — never a value from a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Who (as recorded in the audit trail).
    pub name: Operator,
    /// What they may do.
    pub role: Role,
}

impl User {
    /// `name` with `role`.
    pub fn new(name: Operator, role: Role) -> Self {
        Self { name, role }
    }
}

/// Tells the console who sent a request: the host application's
/// authentication when the console is mounted into it. `None` means not
/// authenticated, and the console refuses the request (401).
///
/// ```
/// use axum::http::request::Parts;
/// use cmdbus_web::{Identify, Role, User};
///
/// /// Trusts the identity the host's own auth middleware stored.
/// struct FromExtensions;
///
/// impl Identify for FromExtensions {
///     fn identify(&self, request: &Parts) -> Option<User> {
///         request.extensions.get::<User>().cloned()
///     }
/// }
/// # let _ = Role::Viewer;
/// ```
pub trait Identify: Send + Sync + 'static {
    /// The user behind `request`, if authenticated.
    fn identify(&self, request: &Parts) -> Option<User>;
}
