//! One command: its payload, last error, audit timeline, reply and
//! correlated commands; an operator's actions on it, and the payload editor.

use axum::{
    extract::{Path, RawQuery},
    response::{Html, IntoResponse, Redirect, Response},
};
use cmdbus::{AuditEntry, CommandKey, CommandRecord, CommandStatus, Error, FieldChange, Transport};
use cmdbus_pg::CommandQuery;
use maud::{Markup, html};
use uuid::Uuid;

use crate::{Act, Caller, error::Refusal, form::Form, html};

/// The domain segment that means "whichever domain holds this id" (a bulk
/// action's report knows ids only).
pub(crate) const ANY_DOMAIN: &str = "_";

/// The command a page is about.
async fn load(caller: &Caller, domain: &str, id: &str) -> Result<CommandRecord, Refusal> {
    let id: Uuid =
        id.parse().map_err(|_| Refusal::bad_request(format!("{id:?} is not a command id")))?;
    let bus = &caller.console.bus;
    if domain == ANY_DOMAIN {
        let mut found = bus.find(id).await?;
        return match found.len() {
            1 => found.pop().ok_or_else(|| Error::UnknownCommandId { command_id: id }.into()),
            0 => Err(Error::UnknownCommandId { command_id: id }.into()),
            _ => Err(Error::AmbiguousCommandId {
                command_id: id,
                domains: found.into_iter().map(|r| r.domain).collect(),
            }
            .into()),
        };
    }
    bus.transport()
        .command_get(domain, id)
        .await?
        .ok_or_else(|| Error::NotFound { domain: domain.to_owned(), command_id: id }.into())
}

pub(crate) async fn show(
    caller: Caller,
    Path((domain, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, Refusal> {
    let record = load(&caller, &domain, &id).await?;
    let bus = &caller.console.bus;
    let trail = bus.audit_trail_in(&record.domain, record.command_id).await?;
    let reply = bus.reply(&record.domain, record.command_id).await?;
    let related =
        bus.query(&CommandQuery::new().correlation_id(record.correlation_id).limit(50)).await?;
    let notice = Form::query(query.as_deref()).get("done").map(str::to_owned);
    let correlated =
        html::query_string([("correlation", Some(record.correlation_id.to_string().as_str()))]);
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        dl.grid {
            dt { "Domain / type" } dd { (record.domain) " / " (record.command_type) }
            dt { "Status" } dd id="status" { (html::status(record.status)) }
            dt { "Attempts" } dd { (record.attempts) " of " (record.max_attempts) }
            dt { "Correlation" } dd { a href=(caller.console.url(&format!("/query{correlated}"))) { code { (record.correlation_id) } } }
            dt { "Reply queue" } dd { code { (record.reply_to) } }
            dt { "Sent" } dd { (html::when(record.created_at)) }
            dt { "Last change" } dd { (html::when(record.updated_at)) }
            @if record.status == CommandStatus::Pending { dt { "Due" } dd { (html::when(record.due_at)) } }
            @if let Some(batch) = record.batch_id { dt { "Batch" } dd { code { (batch) } } }
        }
        @if caller.may_act() { (actions(&caller, &record)) }
        @if let Some(error) = &record.last_error {
            h2 { "Last error" }
            div id="last-error" {
                p { code { (error.code) } " (" (format!("{:?}", error.kind).to_lowercase()) ", " (error.error_type) ")" }
                pre { (error.message) }
                @if let Some(details) = &error.details { pre { (html::pretty(&details.to_string())) } }
            }
        }
        h2 { "Payload" }
        pre id="payload" { (html::pretty(record.payload.get())) }
        h2 { "Audit trail" }
        (timeline(&trail))
        h2 { "Reply" }
        @match &reply {
            Some(reply) => { p { (reply.status.as_str()) " at " (html::when(reply.created_at)) } pre id="reply" { (html::pretty(reply.body.get())) } },
            None => p.muted { "No reply yet." },
        }
        h2 { "Same correlation" }
        table id="correlated" {
            thead { tr { th { "Command" } th { "Type" } th { "Status" } th { "Sent" } } }
            tbody { @for other in &related.items { tr {
                td { (html::command_link(&caller, &other.domain, other.command_id)) @if other.command_id == record.command_id { " (this one)" } }
                td { (other.domain) "/" (other.command_type) }
                td { (html::status(other.status)) }
                td { (html::when(other.created_at)) }
            } } }
        }
    };
    Ok(html::page(&caller, &format!("{} {}", record.command_type, record.command_id), false, body))
}

/// Who did what, when: every transition, the operator's name and, for an
/// edit, each changed field.
fn timeline(trail: &[AuditEntry]) -> Markup {
    html! {
        table id="audit" {
            thead { tr { th { "When" } th { "Event" } th.n { "Attempt" } th { "Who / details" } } }
            tbody { @for entry in trail { tr {
                td { (html::when(entry.at)) }
                td { code { (entry.event) } }
                td.n { (entry.attempt) }
                td { (details(&entry.details)) }
            } } }
        }
    }
}

fn details(details: &serde_json::Value) -> Markup {
    let operator = details.get("operator").and_then(|o| o.as_str());
    let changes: Vec<FieldChange> = details
        .get("payload_changes")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let mut rest = details.as_object().cloned().unwrap_or_default();
    rest.remove("operator");
    rest.remove("payload_changes");
    html! {
        @if let Some(operator) = operator { strong.operator { (operator) } " " }
        @if !changes.is_empty() { (changes_list(&changes)) }
        @if !rest.is_empty() { code { (serde_json::Value::Object(rest)) } }
    }
}

/// Each changed field with its value before and after.
fn changes_list(changes: &[FieldChange]) -> Markup {
    html! {
        ul.changes { @for c in changes { li {
            code { (if c.path.is_empty() { "(whole payload)" } else { c.path.as_str() }) } ": "
            @match &c.before { Some(v) => del { (v) }, None => span.muted { "(absent)" } }
            " → "
            @match &c.after { Some(v) => ins { (v) }, None => span.muted { "(removed)" } }
        } } }
    }
}

/// What an operator may do with the command in its status.
fn actions(caller: &Caller, record: &CommandRecord) -> Markup {
    let act = format!("{}/act", html::command_url(caller, &record.domain, record.command_id));
    let edit = format!("{}/edit", html::command_url(caller, &record.domain, record.command_id));
    html! {
        @match record.status {
            CommandStatus::InTroubleshootingQueue => {
                div.actions {
                    form.inline method="post" action=(act) {
                        (html::csrf(caller)) input type="hidden" name="action" value="retry";
                        button id="retry" type="submit" { "Retry" }
                    }
                    " "
                    a id="edit" href=(edit) { "Edit payload and retry…" }
                    form.actions method="post" action=(act) {
                        (html::csrf(caller)) input type="hidden" name="action" value="cancel";
                        label { "Reason" input id="cancel-reason" name="reason" required; }
                        button id="cancel" type="submit" class="danger" { "Cancel" }
                    }
                    form.actions method="post" action=(act) {
                        (html::csrf(caller)) input type="hidden" name="action" value="complete";
                        label { "Result (JSON)" input name="result" value="null"; }
                        button type="submit" class="plain" { "Complete" }
                    }
                }
            }
            CommandStatus::Pending => {
                form.actions method="post" action=(act) {
                    (html::csrf(caller)) input type="hidden" name="action" value="cancel_pending";
                    label { "Reason" input name="reason" required; }
                    button type="submit" class="danger" { "Cancel before it starts" }
                }
            }
            _ => {}
        }
    }
}

pub(crate) async fn act(
    Path((domain, id)): Path<(String, String)>,
    act: Act,
) -> Result<Response, Refusal> {
    let Act { caller, form } = act;
    let record = load(&caller, &domain, &id).await?;
    let key = CommandKey::new(record.domain.clone(), record.command_id);
    let tsq = caller.console.bus.troubleshooting();
    let operator = &caller.user.name;
    let reason =
        || form.get("reason").ok_or_else(|| Refusal::bad_request("a cancellation needs a reason"));
    let done = match form.get("action") {
        Some("retry") => tsq.retry(key, operator).await.map(|()| "Retried."),
        Some("cancel") => tsq.cancel(key, operator, reason()?).await.map(|()| "Canceled."),
        Some("cancel_pending") => tsq
            .cancel_pending(key, operator, reason()?)
            .await
            .map(|()| "Canceled before it started."),
        Some("complete") => {
            let result = serde_json::from_str(form.get("result").unwrap_or("null"))
                .map_err(|e| Refusal::bad_request(format!("the result is not JSON: {e}")))?;
            tsq.complete_json(key, operator, &result).await.map(|()| "Completed.")
        }
        other => return Err(Refusal::bad_request(format!("unknown action {other:?}"))),
    }?;
    Ok(back_with_notice(&caller, &record, done))
}

/// Back to the command's page, which shows `notice` (what was done).
fn back_with_notice(caller: &Caller, record: &CommandRecord, notice: &str) -> Response {
    let back = html::command_url(caller, &record.domain, record.command_id);
    Redirect::to(&format!("{back}{}", html::query_string([("done", Some(notice))]))).into_response()
}

pub(crate) async fn edit_form(
    caller: Caller,
    Path((domain, id)): Path<(String, String)>,
) -> Result<Html<String>, Refusal> {
    let record = load(&caller, &domain, &id).await?;
    editor(&caller, &record, &html::pretty(record.payload.get()), None).await
}

/// The editor, with the payload as typed and what is wrong or would change.
async fn editor(
    caller: &Caller,
    record: &CommandRecord,
    text: &str,
    outcome: Option<Markup>,
) -> Result<Html<String>, Refusal> {
    let catalog = caller.console.bus.catalog().await?;
    let schema = catalog
        .latest(&record.domain, &record.command_type)
        .map(|entry| (entry.version, html::pretty(&entry.definition.payload_schema.to_string())));
    let action = format!("{}/edit", html::command_url(caller, &record.domain, record.command_id));
    let body = html! {
        p { "The edited payload is checked against the payload schema of "
            code { (record.domain) "/" (record.command_type) }
            @if let Some((version, _)) = &schema { " (catalog version " (version) ")" }
            ", then stored and the command retried. The audit trail records you and every changed field." }
        @if let Some(outcome) = outcome { (outcome) }
        form method="post" action=(action) {
            (html::csrf(caller))
            label { "Payload (JSON)" textarea id="payload-editor" name="payload" spellcheck="false" { (text) } }
            p {
                button id="check" type="submit" name="step" value="check" class="plain" { "Check changes" } " "
                button id="save" type="submit" name="step" value="save" { "Save and retry" } " "
                a href=(html::command_url(caller, &record.domain, record.command_id)) { "Back" }
            }
        }
        @if let Some((_, schema)) = &schema { details { summary { "Payload schema" } pre { (schema) } } }
    };
    Ok(html::page(
        caller,
        &format!("Edit {} {}", record.command_type, record.command_id),
        false,
        body,
    ))
}

pub(crate) async fn edit(
    Path((domain, id)): Path<(String, String)>,
    act: Act,
) -> Result<Response, Refusal> {
    let Act { caller, form } = act;
    let record = load(&caller, &domain, &id).await?;
    let text = form.raw("payload");
    let payload: serde_json::Value = match serde_json::from_str(text) {
        Ok(payload) => payload,
        Err(e) => {
            let problem = html! { p.error role="alert" { "The payload is not JSON: " (e) } };
            return Ok(editor(&caller, &record, text, Some(problem)).await?.into_response());
        }
    };
    let dry_run = form.get("step") != Some("save");
    let tsq = caller.console.bus.troubleshooting();
    let key = CommandKey::new(record.domain.clone(), record.command_id);
    match tsq.edit_and_retry(key, &caller.user.name, &payload, dry_run).await {
        Ok(edit) if edit.applied => {
            let done = format!("Payload edited ({} field(s)) and retried.", edit.changes.len());
            Ok(back_with_notice(&caller, &record, &done))
        }
        Ok(edit) => {
            let changes = html! {
                div.notice id="edit-changes" { p { "Not saved yet. These fields would change:" } (changes_list(&edit.changes)) }
            };
            Ok(editor(&caller, &record, text, Some(changes)).await?.into_response())
        }
        Err(Error::PayloadMismatch { problems, version, .. }) => {
            let problem = html! {
                div.error id="edit-problems" role="alert" {
                    p { "Not stored: the payload does not match the schema (catalog version " (version) "):" }
                    ul { @for p in &problems { li { (p) } } }
                }
            };
            Ok(editor(&caller, &record, text, Some(problem)).await?.into_response())
        }
        Err(error) => Err(error.into()),
    }
}
