//! The standalone console's login and logout pages.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::html;

use crate::{
    CsrfToken, Inner, checked_form, cookies,
    error::Refusal,
    html::bare,
    sessions::{LoginRefused, SESSION_LIFETIME},
};

pub(crate) async fn form(
    State(console): State<Arc<Inner>>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
) -> Html<String> {
    page(&console, &csrf.0, None)
}

fn page(console: &Inner, csrf: &str, problem: Option<&str>) -> Html<String> {
    bare(
        "Log in",
        html! {
            form.login method="post" action=(console.url("/login")) {
                h1 { "cmdbus console" }
                @if let Some(problem) = problem { p.error role="alert" { (problem) } }
                input type="hidden" name="csrf" value=(csrf);
                label { "Name" input name="name" autocomplete="username" required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub(crate) async fn log_in(State(console): State<Arc<Inner>>, request: Request) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let csrf = request.extensions().get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
    let form = match checked_form(request, 64 * 1024).await {
        Ok((_, form)) => form,
        Err(refused) => return refused,
    };
    let Some(sessions) = &console.sessions else {
        return Refusal::new(StatusCode::NOT_FOUND, "this console has no login").into_response();
    };
    let name = form.get("name").unwrap_or_default();
    match sessions.log_in(name, form.raw("password").to_owned(), client).await {
        Ok((user, token)) => {
            tracing::info!(user = %user.name, role = %user.role, "console login");
            let cookie = cookies::set(
                cookies::SESSION,
                &token,
                console.cookie_path(),
                console.secure_cookies,
                Some(SESSION_LIFETIME.as_secs()),
            );
            let mut response = Redirect::to(&console.url("/")).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(LoginRefused::Wrong) => {
            tracing::warn!(name, ?client, "console login refused");
            let page = page(&console, &csrf, Some("Wrong name or password."));
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
        Err(LoginRefused::Throttled(wait)) => {
            tracing::warn!(name, ?client, "console login throttled");
            let problem = format!(
                "Too many failed logins for this name or address. Try again in {} minutes.",
                wait.as_secs().div_ceil(60)
            );
            (StatusCode::TOO_MANY_REQUESTS, page(&console, &csrf, Some(&problem))).into_response()
        }
    }
}

/// Ends the session (any role may; the form's CSRF token must match, or a
/// forged form could log people out).
pub(crate) async fn log_out(State(console): State<Arc<Inner>>, request: Request) -> Response {
    let parts = match checked_form(request, 64 * 1024).await {
        Ok((parts, _)) => parts,
        Err(refused) => return refused,
    };
    if let (Some(sessions), Some(token)) =
        (&console.sessions, cookies::get(&parts.headers, cookies::SESSION))
    {
        sessions.log_out(token);
    }
    let mut response = Redirect::to(&console.url("/login")).into_response();
    let path = console.cookie_path();
    let expired = cookies::set(cookies::SESSION, "", path, console.secure_cookies, Some(0));
    response.headers_mut().append(header::SET_COOKIE, expired);
    response
}
