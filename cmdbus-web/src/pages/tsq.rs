//! The troubleshooting queue: filter, count by error code, page, select,
//! and act in bulk — every bulk action previewed, confirmed, and reported
//! per item.

use axum::{extract::RawQuery, response::Html};
use cmdbus::{CommandKey, CommandRecord, Transport};
use maud::{Markup, html};
use uuid::Uuid;

use crate::{Act, Caller, error::Refusal, form::Form, html, pages::command::ANY_DOMAIN};

const PAGE: usize = 50;
/// Items a filter-wide preview lists (it counts them all).
const PREVIEW: usize = 100;

/// The filter's fields, to carry from page to page.
const FILTER_FIELDS: [&str; 5] = ["domain", "type", "code", "since", "until"];

pub(crate) async fn list(
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, Refusal> {
    let form = Form::query(query.as_deref());
    let filter = form.tsq_filter()?;
    let tsq = caller.console.bus.troubleshooting();
    let counts = tsq.counts(&filter).await?;
    let page = tsq.list(&filter, PAGE, form.cursor()?).await?;
    let total: i64 = counts.iter().map(|c| c.count).sum();
    let keep = |extra: (&'static str, Option<&str>)| {
        let mut pairs: Vec<(&str, Option<&str>)> = FILTER_FIELDS
            .iter()
            .map(|f| (*f, form.get(f)))
            .filter(|(f, _)| *f != extra.0)
            .collect();
        pairs.push(extra);
        caller.console.url(&format!("/tsq{}", html::query_string(pairs)))
    };
    let next = page.next.map(|c| c.to_string());
    let body = html! {
        form.filters method="get" action=(caller.console.url("/tsq")) {
            label { "Domain" input name="domain" value=[form.get("domain")]; }
            label { "Type" input name="type" value=[form.get("type")]; }
            label { "Error code" input name="code" value=[form.get("code")]; }
            label { "Failed since (UTC)" input name="since" type="datetime-local" value=[form.get("since")]; }
            label { "Failed before (UTC)" input name="until" type="datetime-local" value=[form.get("until")]; }
            button type="submit" { "Filter" }
            a href=(caller.console.url("/tsq")) { "Clear" }
        }
        h2 { (total) " items by error code" }
        @if counts.is_empty() {
            p { "The troubleshooting queue holds nothing matching this filter." }
        } @else {
            table id="counts" {
                thead { tr { th { "Domain" } th { "Type" } th { "Error code" } th.n { "Items" } } }
                tbody { @for count in &counts { tr {
                    td { (count.domain) } td { (count.command_type) }
                    td { @if let Some(code) = &count.error_code { a href=(keep(("code", Some(code)))) { code { (code) } } } @else { span.muted { "none" } } }
                    td.n { (count.count) }
                } } }
            }
        }
        @if !page.items.is_empty() {
            h2 { "Items" }
            form method="post" action=(caller.console.url("/tsq/preview")) {
                (html::csrf(&caller))
                @for field in FILTER_FIELDS { @if let Some(value) = form.get(field) { input type="hidden" name=(field) value=(value); } }
                table id="items" {
                    thead { tr {
                        @if caller.may_act() { th { span.muted { "Select" } } }
                        th { "Command" } th { "Domain" } th { "Type" } th { "Error" } th.n { "Attempts" } th { "In TSQ since" }
                    } }
                    tbody { @for item in &page.items { (row(&caller, item)) } }
                }
                @if caller.may_act() {
                    div.actions {
                        p { "Selected items: "
                            button name="do" value="retry:selected" { "Retry…" } " "
                            button name="do" value="cancel:selected" class="danger" { "Cancel…" } " "
                            button name="do" value="complete:selected" class="plain" { "Complete…" }
                        }
                        p { "All " (total) " items matching the filter: "
                            button name="do" value="retry:filter" { "Retry all…" } " "
                            button name="do" value="cancel:filter" class="danger" { "Cancel all…" } " "
                            button name="do" value="complete:filter" class="plain" { "Complete all…" }
                        }
                    }
                }
            }
            @if let Some(next) = &next {
                p.pager { a id="next" href=(keep(("after", Some(next)))) { "Next page →" } }
            }
        }
    };
    Ok(html::page(&caller, "Troubleshooting queue", false, body))
}

fn row(caller: &Caller, item: &CommandRecord) -> Markup {
    let error = item.last_error.as_ref();
    html! { tr {
        @if caller.may_act() {
            td { input type="checkbox" name="id" value=(format!("{}/{}", item.domain, item.command_id)) aria-label="select"; }
        }
        td { (html::command_link(caller, &item.domain, item.command_id)) }
        td { (item.domain) } td { (item.command_type) }
        td { @if let Some(e) = error { code { (e.code) } " " (e.message) } }
        td.n { (item.attempts) "/" (item.max_attempts) }
        td { (html::when(item.updated_at)) }
    } }
}

/// What a bulk form asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Cancel,
    Complete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
            Self::Complete => "complete",
        }
    }
}

/// `retry:selected` and the like.
fn parse_do(form: &Form) -> Result<(Action, bool), Refusal> {
    let (action, scope) = form
        .get("do")
        .and_then(|d| d.split_once(':'))
        .ok_or_else(|| Refusal::bad_request("the form names no action"))?;
    let action = match action {
        "retry" => Action::Retry,
        "cancel" => Action::Cancel,
        "complete" => Action::Complete,
        other => return Err(Refusal::bad_request(format!("unknown action {other:?}"))),
    };
    match scope {
        "selected" => Ok((action, false)),
        "filter" => Ok((action, true)),
        other => Err(Refusal::bad_request(format!("unknown scope {other:?}"))),
    }
}

/// The ticked items, as `domain/id`.
fn selected(form: &Form) -> Result<Vec<CommandKey>, Refusal> {
    let keys = form
        .all("id")
        .map(|value| {
            let (domain, id) = value.rsplit_once('/').unwrap_or(("", value));
            let id: Uuid = id
                .parse()
                .map_err(|_| Refusal::bad_request(format!("{value:?} is not a command")))?;
            Ok(CommandKey::new(domain.to_owned(), id))
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    if keys.is_empty() {
        return Err(Refusal::bad_request(
            "no item is selected: tick the items to act on, or act on the whole filter",
        ));
    }
    Ok(keys)
}

pub(crate) async fn preview(act: Act) -> Result<Html<String>, Refusal> {
    let Act { caller, form } = act;
    let (action, whole_filter) = parse_do(&form)?;
    let tsq = caller.console.bus.troubleshooting();
    let filter = form.tsq_filter()?;
    let (matched, items) = if whole_filter {
        // A dry run selects exactly what the action will.
        let dry = tsq.retry_all(&filter, &caller.user.name, true).await?;
        (dry.matched, tsq.list(&filter, PREVIEW, None).await?.items)
    } else {
        let mut items = Vec::new();
        for key in selected(&form)? {
            let domain = key.domain().unwrap_or_default();
            if let Some(record) =
                caller.console.bus.transport().command_get(domain, key.command_id()).await?
            {
                items.push(record);
            }
        }
        (items.len() as u64, items)
    };
    let verb = action.verb();
    let body = html! {
        p id="preview-summary" { "This will " strong { (verb) } " " strong { (matched) } " item(s)"
            @if whole_filter { " — every item the filter matches when you confirm" } ":" }
        table id="preview" {
            thead { tr { th { "Command" } th { "Type" } th { "Status" } th { "Error" } } }
            tbody { @for item in &items { tr {
                td { (html::command_link(&caller, &item.domain, item.command_id)) }
                td { (item.domain) "/" (item.command_type) }
                td { (html::status(item.status)) }
                td { @if let Some(e) = &item.last_error { code { (e.code) } " " (e.message) } }
            } } }
        }
        @if whole_filter && matched > items.len() as u64 { p.muted { "…and " (matched - items.len() as u64) " more." } }
        form.confirm method="post" action=(caller.console.url("/tsq/act")) {
            (html::csrf(&caller))
            input type="hidden" name="do" value=(form.get("do").unwrap_or_default());
            @for field in FILTER_FIELDS { @if let Some(value) = form.get(field) { input type="hidden" name=(field) value=(value); } }
            @if !whole_filter { @for id in form.all("id") { input type="hidden" name="id" value=(id); } }
            @if action == Action::Cancel {
                label { "Reason (shown to the sender and in the audit trail)" input name="reason" required; }
            }
            @if action == Action::Complete {
                label { "Result (JSON, checked against each type's reply schema)" textarea name="result" { "null" } }
            }
            p { button id="confirm" type="submit" { "Confirm: " (verb) " " (matched) " item(s)" } " "
                a href=(caller.console.url("/tsq")) { "Back" } }
        }
    };
    Ok(html::page(&caller, &format!("Preview: {verb}"), false, body))
}

pub(crate) async fn act(act: Act) -> Result<Html<String>, Refusal> {
    let Act { caller, form } = act;
    let (action, whole_filter) = parse_do(&form)?;
    let reason = form.get("reason");
    if action == Action::Cancel && reason.is_none() {
        return Err(Refusal::bad_request("a cancellation needs a reason"));
    }
    let result: serde_json::Value = match (action, form.get("result")) {
        (Action::Complete, Some(text)) => serde_json::from_str(text)
            .map_err(|e| Refusal::bad_request(format!("the result is not JSON: {e}")))?,
        _ => serde_json::Value::Null,
    };
    let tsq = caller.console.bus.troubleshooting();
    let operator = &caller.user.name;
    let reason = reason.unwrap_or_default();
    let mut skipped = 0;
    let outcomes: Vec<(String, Uuid, Result<(), String>)> = if whole_filter {
        let filter = form.tsq_filter()?;
        let outcome = match action {
            Action::Retry => tsq.retry_all(&filter, operator, false).await?,
            Action::Cancel => tsq.cancel_all(&filter, operator, reason, false).await?,
            Action::Complete => tsq.complete_all_json(&filter, operator, &result, false).await?,
        };
        // Items another operator was acting on at that moment were skipped.
        skipped = outcome.matched.saturating_sub(outcome.acted);
        let domain = filter.domain.unwrap_or_else(|| ANY_DOMAIN.to_owned());
        outcome.ids.unwrap_or_default().into_iter().map(|id| (domain.clone(), id, Ok(()))).collect()
    } else {
        let mut outcomes = Vec::new();
        for key in selected(&form)? {
            let (domain, id) = (key.domain().unwrap_or_default().to_owned(), key.command_id());
            let done = match action {
                Action::Retry => tsq.retry(key, operator).await,
                Action::Cancel => tsq.cancel(key, operator, reason).await,
                Action::Complete => tsq.complete_json(key, operator, &result).await,
            };
            outcomes.push((domain, id, done.map_err(|e| e.to_string())));
        }
        outcomes
    };
    let done = outcomes.iter().filter(|(_, _, o)| o.is_ok()).count();
    let verb = action.verb();
    let body = html! {
        p.notice id="act-summary" { (done) " of " (outcomes.len()) " item(s): " (verb) " done, as " (operator) "." }
        @if skipped > 0 { p.error { (skipped) " item(s) were being changed by another operator at that moment and were left alone." } }
        table id="outcomes" {
            thead { tr { th { "Command" } th { "Outcome" } } }
            tbody { @for (domain, id, outcome) in &outcomes { tr {
                td { (html::command_link(&caller, domain, *id)) }
                td { @match outcome { Ok(()) => span.status.ok { (verb) " done" }, Err(why) => span.error { (why) } } }
            } } }
        }
        p { a href=(caller.console.url("/tsq")) { "Back to the troubleshooting queue" } }
    };
    Ok(html::page(&caller, &format!("Done: {verb}"), false, body))
}
