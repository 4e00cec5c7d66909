//! Command history by status, domain, type, correlation id and date.

use axum::{extract::RawQuery, response::Html};
use chrono::{DateTime, Utc};
use cmdbus::CommandStatus;
use cmdbus_pg::CommandQuery;
use maud::html;
use uuid::Uuid;

use crate::{Caller, error::Refusal, form::Form, html};

const PAGE: usize = 50;
const FIELDS: [&str; 6] = ["status", "domain", "type", "correlation", "from", "until"];

fn query_of(form: &Form) -> Result<CommandQuery, Refusal> {
    let mut query = CommandQuery::new().limit(PAGE);
    for status in form.all("status") {
        let status: CommandStatus = status.parse()?;
        query = query.status(status);
    }
    match form.domain_and_type()? {
        Some((domain, Some(command_type))) => query = query.command_type(domain, command_type),
        Some((domain, None)) => query = query.domain(domain),
        None => {}
    }
    if let Some(correlation) = form.get("correlation") {
        let id: Uuid = correlation.parse().map_err(|_| {
            Refusal::bad_request(format!("{correlation:?} is not a correlation id"))
        })?;
        query = query.correlation_id(id);
    }
    let (from, until) = (form.time("from")?, form.time("until")?);
    if from.is_some() || until.is_some() {
        query = query.created_between(
            from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            until.unwrap_or_else(|| Utc::now() + chrono::TimeDelta::days(36_500)),
        );
    }
    if let Some(after) = form.cursor()? {
        query = query.after(after);
    }
    Ok(query)
}

pub(crate) async fn show(caller: Caller, RawQuery(raw): RawQuery) -> Result<Html<String>, Refusal> {
    let form = Form::query(raw.as_deref());
    let page = caller.console.bus.query(&query_of(&form)?).await?;
    let chosen: Vec<&str> = form.all("status").collect();
    let next = page.next.map(|cursor| {
        let mut pairs: Vec<(&str, Option<&str>)> = Vec::new();
        for field in FIELDS {
            if field == "status" {
                pairs.extend(chosen.iter().map(|s| ("status", Some(*s))));
            } else {
                pairs.push((field, form.get(field)));
            }
        }
        let cursor = cursor.to_string();
        pairs.push(("after", Some(&cursor)));
        caller.console.url(&format!("/query{}", html::query_string(pairs)))
    });
    let body = html! {
        form.filters method="get" action=(caller.console.url("/query")) {
            label { "Status" select name="status" multiple size="3" {
                @for status in CommandStatus::ALL {
                    option value=(status.as_str()) selected[chosen.contains(&status.as_str())] { (status) }
                }
            } }
            label { "Domain" input name="domain" value=[form.get("domain")]; }
            label { "Type" input name="type" value=[form.get("type")]; }
            label { "Correlation id" input name="correlation" size="38" value=[form.get("correlation")]; }
            label { "Sent from (UTC)" input name="from" type="datetime-local" value=[form.get("from")]; }
            label { "Sent before (UTC)" input name="until" type="datetime-local" value=[form.get("until")]; }
            button type="submit" { "Search" }
        }
        @if page.items.is_empty() {
            p { "No command matches." }
        } @else {
            table id="results" {
                thead { tr { th { "Command" } th { "Domain" } th { "Type" } th { "Status" } th.n { "Attempts" } th { "Sent" } th { "Last change" } } }
                tbody { @for r in &page.items { tr {
                    td { (html::command_link(&caller, &r.domain, r.command_id)) }
                    td { (r.domain) } td { (r.command_type) } td { (html::status(r.status)) }
                    td.n { (r.attempts) } td { (html::when(r.created_at)) } td { (html::when(r.updated_at)) }
                } } }
            }
            @if let Some(next) = &next { p.pager { a id="next" href=(next) { "Next page →" } } }
        }
    };
    Ok(html::page(&caller, "Query", false, body))
}
