//! The page frame and the small pieces every page shows the same way.
//! maud escapes every value it interpolates, so text from the database
//! (payloads, errors, reasons) is always shown as text.

use std::time::Duration;

use axum::{
    http::header,
    response::{Html, IntoResponse},
};
use chrono::{DateTime, Utc};
use cmdbus::CommandStatus;
use maud::{DOCTYPE, Markup, html};
use uuid::Uuid;

use crate::Caller;

/// The document around every page, refusals included: the one `<head>`.
pub(crate) fn document(
    title: &str,
    stylesheet: Option<&str>,
    refresh: bool,
    body: Markup,
) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    @if refresh { meta http-equiv="refresh" content="5"; }
                    title { (title) " · cmdbus" }
                    @if let Some(href) = stylesheet { link rel="stylesheet" href=(href); }
                }
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// A page with the console's navigation; `refresh`: reload every few
/// seconds (the overview's live view, no JavaScript).
pub(crate) fn page(caller: &Caller, title: &str, refresh: bool, body: Markup) -> Html<String> {
    let console = &caller.console;
    let body = html! {
        nav {
            a href=(console.url("/")) { "Overview" }
            a href=(console.url("/tsq")) { "Troubleshooting queue" }
            a href=(console.url("/query")) { "Query" }
            span.who { (caller.user.name) " · " (caller.user.role) }
            @if console.sessions.is_some() {
                form.inline method="post" action=(console.url("/logout")) {
                    (csrf(caller))
                    button type="submit" { "Log out" }
                }
            }
        }
        main { h1 { (title) } (body) }
    };
    document(title, Some(&console.url("/console.css")), refresh, body)
}

/// A page without navigation (login).
pub(crate) fn bare(title: &str, body: Markup) -> Html<String> {
    document(title, Some("console.css"), false, html! { main { (body) } })
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(caller: &Caller) -> Markup {
    html! { input type="hidden" name="csrf" value=(caller.csrf); }
}

pub(crate) fn when(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

pub(crate) fn age(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(crate) fn status(status: CommandStatus) -> Markup {
    let class = match status {
        CommandStatus::InTroubleshootingQueue => "status tsq",
        CommandStatus::Completed => "status ok",
        CommandStatus::Failed | CommandStatus::Canceled => "status ended",
        CommandStatus::Pending | CommandStatus::InProgress => "status live",
        _ => "status",
    };
    html! { span class=(class) { (status) } }
}

/// A command's id linking to its page.
pub(crate) fn command_link(caller: &Caller, domain: &str, id: Uuid) -> Markup {
    html! { a.id href=(command_url(caller, domain, id)) { (id) } }
}

pub(crate) fn command_url(caller: &Caller, domain: &str, id: Uuid) -> String {
    let domain: String = form_urlencoded::byte_serialize(domain.as_bytes()).collect();
    caller.console.url(&format!("/commands/{domain}/{id}"))
}

/// JSON text, pretty-printed when it parses.
pub(crate) fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_owned())
}

/// A query string of the non-blank `pairs`, starting with `?` (or empty).
pub(crate) fn query_string<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            serializer.append_pair(name, value);
        }
    }
    let query = serializer.finish();
    if query.is_empty() { query } else { format!("?{query}") }
}

pub(crate) async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "max-age=3600")], CSS)
}

const CSS: &str = include_str!("console.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(Duration::from_secs(5)), "5 s");
        assert_eq!(age(Duration::from_secs(125)), "2 min");
        assert_eq!(age(Duration::from_secs(3 * 3600 + 60)), "3 h 1 min");
        assert_eq!(age(Duration::from_secs(2 * 86_400 + 7200)), "2 d 2 h");
    }

    #[test]
    fn json_is_pretty_when_it_parses_and_queries_skip_blanks() {
        assert_eq!(pretty(r#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(pretty("not json"), "not json");
        assert_eq!(query_string([("a", Some("x y")), ("b", None), ("c", Some(""))]), "?a=x+y");
        assert_eq!(query_string([("a", None)]), "");
    }
}
