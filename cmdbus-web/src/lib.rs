//! The cmdbus operator console: the troubleshooting queue, command history
//! and queue health in a browser, server-rendered, without JavaScript.
//!
//! Two ways to run it:
//!
//! - **Mounted** in your own axum application: your authentication decides
//!   who the operator is, through [`Identify`].
//! - **Standalone**: `cmdbus web --listen 127.0.0.1:8080 --users users.txt`,
//!   with its own login against a [users file](Users) of argon2 hashes.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::http::request::Parts;
//! use cmdbus_web::{Console, Identify, Role, User};
//!
//! struct HostAuth;
//! impl Identify for HostAuth {
//!     fn identify(&self, request: &Parts) -> Option<User> {
//!         // Whatever your application's auth middleware stored.
//!         request.extensions.get::<User>().cloned()
//!     }
//! }
//!
//! let bus = cmdbus_pg::PgBus::connect("postgres://app@db/app").await?;
//! let app: axum::Router = axum::Router::new()
//!     .nest("/ops", Console::mounted(bus, HostAuth).base_path("/ops").router());
//! # let _ = (app, Role::Viewer); Ok(()) }
//! ```
//!
//! Security: nobody anonymous gets a page; only [`Role::Operator`] users
//! act, and the audit trail names the authenticated user, never a form
//! field; every state change is a POST carrying a CSRF token that must
//! match a SameSite=Strict cookie; cookies are HttpOnly and Secure;
//! failed logins are throttled per name and per address; everything read
//! from the database is HTML-escaped; responses forbid scripts, framing
//! and caching (`Content-Security-Policy`).

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use cmdbus_pg::PgBus;

mod cookies;
mod error;
mod form;
mod html;
mod identity;
mod login;
mod pages;
mod sessions;
mod users;

pub use error::ConsoleError;
pub use identity::{Identify, Role, User};
pub use sessions::{FAILURE_WINDOW, MAX_FAILURES, SESSION_LIFETIME};
pub use users::{Users, hash_password};

use error::Refusal;
use form::Form;
use sessions::Sessions;

/// The console, configured; [`router`](Self::router) serves it.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) bus: PgBus,
    identify: Arc<dyn Identify>,
    pub(crate) sessions: Option<Arc<Sessions>>,
    pub(crate) base: String,
    pub(crate) secure_cookies: bool,
}

impl Inner {
    /// `path` (starting with `/`) under the console's base path.
    pub(crate) fn url(&self, path: &str) -> String {
        match (path, self.base.as_str()) {
            // Nested routers answer at the mount point itself, not below it.
            ("/", base) if !base.is_empty() => base.to_owned(),
            (path, base) => format!("{base}{path}"),
        }
    }

    fn cookie_path(&self) -> &str {
        if self.base.is_empty() { "/" } else { &self.base }
    }
}

impl Console {
    /// The console mounted in a host application, whose authentication
    /// `identify` reports.
    pub fn mounted(bus: PgBus, identify: impl Identify) -> Self {
        Self::with(bus, Arc::new(identify), None)
    }

    /// The standalone console, with its own login for `users`.
    pub fn standalone(bus: PgBus, users: Users) -> Self {
        let sessions = Arc::new(Sessions::new(users));
        Self::with(bus, sessions.clone(), Some(sessions))
    }

    fn with(bus: PgBus, identify: Arc<dyn Identify>, sessions: Option<Arc<Sessions>>) -> Self {
        let inner = Inner { bus, identify, sessions, base: String::new(), secure_cookies: true };
        Self { inner: Arc::new(inner) }
    }

    /// The path the router is nested at (e.g. `/ops`), for its links and
    /// cookies; default: the root.
    #[must_use]
    pub fn base_path(self, path: &str) -> Self {
        self.edit(|inner| inner.base = path.trim_end_matches('/').to_owned())
    }

    /// Whether cookies are marked Secure (sent over HTTPS only). On by
    /// default; turn it off only for plain HTTP on a trusted network.
    /// Browsers treat `http://localhost` as secure either way.
    #[must_use]
    pub fn secure_cookies(self, secure: bool) -> Self {
        self.edit(|inner| inner.secure_cookies = secure)
    }

    fn edit(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// The console's routes.
    pub fn router(self) -> Router {
        let state = self.inner;
        let mut router = Router::new()
            .route("/", get(pages::overview::show))
            .route("/tsq", get(pages::tsq::list))
            .route("/tsq/preview", post(pages::tsq::preview))
            .route("/tsq/act", post(pages::tsq::act))
            .route("/query", get(pages::query::show))
            .route("/commands/{domain}/{id}", get(pages::command::show))
            .route("/commands/{domain}/{id}/act", post(pages::command::act))
            .route("/commands/{domain}/{id}/edit", get(pages::command::edit_form))
            .route("/commands/{domain}/{id}/edit", post(pages::command::edit))
            .route("/console.css", get(html::stylesheet));
        if state.sessions.is_some() {
            router = router
                .route("/login", get(login::form).post(login::log_in))
                .route("/logout", post(login::log_out));
        }
        router.layer(middleware::from_fn_with_state(state.clone(), guard)).with_state(state)
    }
}

/// Mounted mode in one call: [`Console::mounted`]`(bus, identify).router()`.
pub fn router(bus: PgBus, identify: impl Identify) -> Router {
    Console::mounted(bus, identify).router()
}

/// Serves `console` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
///
/// # Errors
///
/// [`ConsoleError::Serve`] when the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Console,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    let app = console.router().into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// The CSRF token of this browser (from its cookie, or new).
#[derive(Clone)]
pub(crate) struct CsrfToken(pub(crate) String);

/// Every response: the CSRF cookie when the browser has none yet, and
/// headers that forbid scripts, framing, sniffing and caching.
async fn guard(State(console): State<Arc<Inner>>, mut request: Request, next: Next) -> Response {
    let existing = cookies::get(request.headers(), cookies::CSRF).map(str::to_owned);
    let (token, new) = match existing {
        Some(token) => (token, false),
        None => match cookies::token() {
            Ok(token) => (token, true),
            Err(_) => {
                return Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "no randomness available")
                    .into_response();
            }
        },
    };
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if new {
        let cookie = cookies::set(
            cookies::CSRF,
            &token,
            console.cookie_path(),
            console.secure_cookies,
            None,
        );
        headers.append(header::SET_COOKIE, cookie);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// An authenticated request: who, and the CSRF token for the page's forms.
pub(crate) struct Caller {
    pub(crate) user: User,
    pub(crate) csrf: String,
    pub(crate) console: Arc<Inner>,
}

impl Caller {
    pub(crate) fn may_act(&self) -> bool {
        self.user.role == Role::Operator
    }
}

impl FromRequestParts<Arc<Inner>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Inner>,
    ) -> Result<Self, Self::Rejection> {
        let csrf = parts.extensions.get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
        match console.identify.identify(parts) {
            Some(user) => Ok(Self { user, csrf, console: console.clone() }),
            None if console.sessions.is_some() => {
                Err(Redirect::to(&console.url("/login")).into_response())
            }
            None => {
                Err(Refusal::new(StatusCode::UNAUTHORIZED, "not authenticated").into_response())
            }
        }
    }
}

/// A state change: an operator's POST whose form carries the right CSRF
/// token. Every handler that changes data takes one, so none can skip the
/// checks.
pub(crate) struct Act {
    pub(crate) caller: Caller,
    pub(crate) form: Form,
}

impl FromRequest<Arc<Inner>> for Act {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Arc<Inner>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, console).await?;
        let (_, form) = checked_form(Request::from_parts(parts, body), 4 * 1024 * 1024).await?;
        if !caller.may_act() {
            let message = format!(
                "{} is a viewer: only operators retry, cancel, complete or edit commands",
                caller.user.name
            );
            return Err(Refusal::new(StatusCode::FORBIDDEN, message).into_response());
        }
        Ok(Self { caller, form })
    }
}

/// A POSTed form of at most `limit` bytes, once its CSRF field matches the
/// browser's cookie and no browser says it came from another site.
pub(crate) async fn checked_form(
    request: Request,
    limit: usize,
) -> Result<(Parts, Form), Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the form is larger than {limit} bytes"),
        )
        .into_response()
    })?;
    let form = Form::parse(&body);
    check_csrf(&parts, &form).map_err(IntoResponse::into_response)?;
    Ok((parts, form))
}

/// Refuses a form whose CSRF field does not match the browser's cookie,
/// or that a browser says came from another site.
fn check_csrf(parts: &Parts, form: &Form) -> Result<(), Refusal> {
    let cross_site = parts.headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site");
    let cookie = cookies::get(&parts.headers, cookies::CSRF);
    if cross_site || !cookies::csrf_matches(cookie, form.get("csrf")) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or does not match: reload the page and try again",
        ));
    }
    Ok(())
}
