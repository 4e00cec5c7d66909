//! Queue health per domain and type, reloaded every few seconds.

use std::time::Duration;

use axum::response::Html;
use maud::html;

use crate::{Caller, error::Refusal, html};

/// "Recently" on the overview.
const WINDOW: Duration = Duration::from_secs(3600);

pub(crate) async fn show(caller: Caller) -> Result<Html<String>, Refusal> {
    let bus = &caller.console.bus;
    let health = bus.overview(WINDOW).await?;
    let catalog = bus.catalog().await?;
    let pauses = bus.pauses().await?;
    let tsq = |domain: &str, command_type: &str| {
        caller.console.url(&format!(
            "/tsq{}",
            html::query_string([("domain", Some(domain)), ("type", Some(command_type))])
        ))
    };
    let body = html! {
        p.muted { "Live: reloads every 5 seconds. “Last hour” counts commands that ended within the hour." }
        @if !pauses.is_empty() {
            p.error { "Paused: "
                @for pause in &pauses { (pause.target) " (by " (pause.operator) ": " (pause.reason) ") " }
            }
        }
        @if health.is_empty() {
            p { "No commands are waiting, running or in the troubleshooting queue, and none ended in the last hour." }
        } @else {
            table id="health" {
                thead { tr {
                    th { "Domain" } th { "Type" } th.n { "Due" } th.n { "Scheduled" } th.n { "In progress" }
                    th.n { "In TSQ" } th.n { "Completed (1 h)" } th.n { "Failed (1 h)" } th.n { "Canceled (1 h)" }
                    th { "Oldest due" } th.n { "Workers now" } th { "Last served" }
                } }
                tbody {
                    @for row in &health {
                        @let served = catalog.served(&row.domain, Some(&row.command_type));
                        tr {
                            td { (row.domain) } td { (row.command_type) }
                            td.n { (row.due) } td.n { (row.scheduled) } td.n { (row.in_progress) }
                            td.n { @if row.in_tsq > 0 { a href=(tsq(&row.domain, &row.command_type)) { (row.in_tsq) } } @else { "0" } }
                            td.n { (row.completed_recently) } td.n { (row.failed_recently) } td.n { (row.canceled_recently) }
                            td { @if let Some(age) = row.oldest_due_age { (html::age(age)) } @else { "—" } }
                            td.n { (row.workers_now) }
                            td { @match served.last_served_at {
                                Some(at) => { (html::when(at)) @if !served.live { " " span.status.tsq { "no live worker" } } }
                                None => span.muted { "never" },
                            } }
                        }
                    }
                }
            }
        }
    };
    Ok(html::page(&caller, "Overview", true, body))
}
