//! `cmdbus types` and the unserved-work part of `cmdbus stats`: what the
//! command-type catalog holds, read beside the commands' status counts.

use std::io::Write;

use cmdbus::{CatalogEntry, CommandStatus};
use cmdbus_pg::{PgBus, StatusCount};

use crate::{
    args::Cli,
    output,
    run::{CliError, Result},
};

/// Lists the recorded command types (latest versions, or all with
/// `history`); with `command_type`, also prints their schemas.
pub(crate) async fn list(
    cli: &Cli,
    bus: &PgBus,
    out: &mut impl Write,
    domain: Option<&str>,
    command_type: Option<&str>,
    history: bool,
) -> Result<()> {
    let catalog = bus.catalog().await?;
    let counts = bus.status_counts(domain).await?;
    let shown: Vec<&CatalogEntry> =
        if history { catalog.entries().iter().collect() } else { catalog.current().collect() };
    let shown: Vec<&CatalogEntry> = shown
        .into_iter()
        .filter(|e| domain.is_none_or(|d| e.definition.domain == d))
        .filter(|e| command_type.is_none_or(|t| e.definition.command_type == t))
        .collect();
    if let (Some(domain), Some(command_type), true) = (domain, command_type, shown.is_empty()) {
        return Err(CliError::Refused(format!(
            "no command type {domain}/{command_type} is recorded in the catalog \
             (`cmdbus types` lists those that are)"
        )));
    }
    let count = |e: &CatalogEntry, status| -> i64 {
        counts
            .iter()
            .filter(|c| {
                c.status == status
                    && c.domain == e.definition.domain
                    && c.command_type == e.definition.command_type
            })
            .map(|c| c.count)
            .sum()
    };
    let pending = |e| count(e, CommandStatus::Pending);
    let tsq = |e| count(e, CommandStatus::InTroubleshootingQueue);
    if cli.json {
        let items: Vec<serde_json::Value> = shown
            .iter()
            .map(|e| {
                let served = catalog.served(&e.definition.domain, Some(&e.definition.command_type));
                let mut item = serde_json::to_value(e).unwrap_or_default();
                item["served"] = serde_json::to_value(served).unwrap_or_default();
                item["pending"] = pending(e).into();
                item["tsq"] = tsq(e).into();
                item
            })
            .collect();
        output::json(out, &items)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|e| {
            let d = &e.definition;
            let served = catalog.served(&d.domain, Some(&d.command_type));
            vec![
                d.domain.clone(),
                d.command_type.clone(),
                e.version.to_string(),
                served_text(served),
                d.max_attempts.to_string(),
                d.backoff_ms.iter().map(|ms| duration_text(*ms)).collect::<Vec<_>>().join(" "),
                pending(e).to_string(),
                tsq(e).to_string(),
                e.last_seen_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]
        })
        .collect();
    let headers = [
        "DOMAIN",
        "TYPE",
        "VERSION",
        "HANDLER",
        "MAX ATTEMPTS",
        "BACKOFF",
        "PENDING",
        "TSQ",
        "LAST SEEN (UTC)",
    ];
    output::table(out, &headers, &rows)?;
    if command_type.is_some() {
        for e in &shown {
            writeln!(out, "\nversion {} payload schema:", e.version)?;
            output::json(out, &e.definition.payload_schema)?;
            writeln!(out, "version {} reply schema:", e.version)?;
            output::json(out, &e.definition.reply_schema)?;
        }
    }
    Ok(())
}

/// A domain with pending work that no live worker serves.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Unserved {
    domain: String,
    pending: i64,
    last_served_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The domains in `counts` with PENDING commands and no live worker.
pub(crate) async fn unserved(bus: &PgBus, counts: &[StatusCount]) -> Result<Vec<Unserved>> {
    let catalog = bus.catalog().await?;
    let mut unserved: Vec<Unserved> = Vec::new();
    for c in counts.iter().filter(|c| c.status == CommandStatus::Pending && c.count > 0) {
        let served = catalog.served(&c.domain, None);
        if served.live {
            continue;
        }
        match unserved.iter_mut().find(|u| u.domain == c.domain) {
            Some(u) => u.pending += c.count,
            None => unserved.push(Unserved {
                domain: c.domain.clone(),
                pending: c.count,
                last_served_at: served.last_served_at,
            }),
        }
    }
    Ok(unserved)
}

/// Says, after the stats table, which domains wait for a worker.
pub(crate) fn print_unserved(out: &mut impl Write, unserved: &[Unserved]) -> Result<()> {
    for u in unserved {
        let last = u.last_served_at.map_or_else(
            || "no worker has ever served it".to_owned(),
            |at| format!("last served {} UTC", at.format("%Y-%m-%d %H:%M:%S")),
        );
        writeln!(
            out,
            "warning: domain {} has {} pending command(s) and no live worker ({last})",
            u.domain, u.pending
        )?;
    }
    Ok(())
}

/// `live`, `last 2026-01-02 03:04:05`, or `never`.
fn served_text(served: cmdbus::Served) -> String {
    match (served.live, served.last_served_at) {
        (true, _) => "live".to_owned(),
        (false, Some(at)) => format!("last {}", at.format("%Y-%m-%d %H:%M:%S")),
        (false, None) => "never".to_owned(),
    }
}

/// `250ms`, `10s`, `5m`, `1h`: the largest unit that divides the value.
fn duration_text(ms: u64) -> String {
    match ms {
        0 => "0s".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        let shown: Vec<String> =
            [0, 250, 10_000, 90_000, 300_000, 7_200_000].map(duration_text).into();
        assert_eq!(shown, ["0s", "250ms", "10s", "90s", "5m", "2h"]);
    }
}
