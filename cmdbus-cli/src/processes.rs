//! `cmdbus process list|show|retry|abandon`: process instances, and the
//! two things an operator does to one.

use std::io::Write;

use cmdbus::process::{ProcessAction, ProcessFilter, ProcessRecord};
use cmdbus_pg::PgBus;

use crate::{
    args::{Cli, Process},
    output,
    run::{Result, acting_operator},
};

const HEADERS: [&str; 6] =
    ["TYPE", "PROCESS", "STATUS", "CORRELATION", "STARTED (UTC)", "CHANGED (UTC)"];

pub(crate) async fn run(
    cli: &Cli,
    bus: &PgBus,
    out: &mut impl Write,
    command: &Process,
) -> Result<()> {
    let processes = bus.processes();
    match command {
        Process::List { process_type, status, correlation_id, limit, after } => {
            let mut filter = ProcessFilter::new();
            filter.process_type.clone_from(process_type);
            filter.correlation_id = *correlation_id;
            for status in status {
                filter = filter.status(cmdbus::ProcessStatus::parse(status)?);
            }
            let page = processes.list(&filter, *after, *limit).await?;
            output::page(cli.json, out, &page, &HEADERS, row)?;
        }
        Process::Show { process_type, id } => {
            let record = processes.get(process_type, *id).await?;
            // Its history: every command it sent and every event it
            // handled carries its correlation id (newest first).
            let query =
                cmdbus_pg::CommandQuery::new().correlation_id(record.correlation_id).limit(100);
            let history = bus.query(&query).await?.items;
            if cli.json {
                output::json(out, &serde_json::json!({ "process": record, "history": history }))?;
                return Ok(());
            }
            show(out, &record)?;
            writeln!(out, "history (newest first; cmdbus audit <id> for each):")?;
            output::table(
                out,
                &["CREATED (UTC)", "DOMAIN", "TYPE", "ID", "STATUS"],
                &history
                    .iter()
                    .map(|c| {
                        vec![
                            time(c.created_at),
                            c.domain.clone(),
                            c.command_type.clone(),
                            c.command_id.to_string(),
                            c.status.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )?;
        }
        Process::Retry { process_type, id, dry_run } => {
            let operator = acting_operator(cli, *dry_run)?;
            let action = processes.retry(process_type, *id, &operator, *dry_run).await?;
            acted(cli, out, "retry", &action)?;
        }
        Process::Abandon { process_type, id, reason, dry_run } => {
            let operator = acting_operator(cli, *dry_run)?;
            let action = processes.abandon(process_type, *id, reason, &operator, *dry_run).await?;
            acted(cli, out, "abandon", &action)?;
        }
    }
    Ok(())
}

fn acted(cli: &Cli, out: &mut impl Write, what: &str, action: &ProcessAction) -> Result<()> {
    if cli.json {
        let value = serde_json::json!({
            "action": what,
            "process_id": action.process_id,
            "status": action.status,
            "dry_run": action.event_id.is_none(),
            "event_id": action.event_id,
        });
        output::json(out, &value)?;
    } else if let Some(event) = action.event_id {
        writeln!(
            out,
            "{what}: sent event {event} to process {} ({})",
            action.process_id, action.status
        )?;
    } else {
        writeln!(
            out,
            "dry run: {what} would act on process {} ({}); nothing changed",
            action.process_id, action.status
        )?;
    }
    Ok(())
}

fn show(out: &mut impl Write, record: &ProcessRecord) -> Result<()> {
    writeln!(out, "process:      {} {}", record.process_type, record.process_id)?;
    writeln!(out, "domain:       {}", record.domain)?;
    writeln!(out, "status:       {}", record.status)?;
    writeln!(
        out,
        "correlation:  {}  (cmdbus query --correlation-id shows its commands)",
        record.correlation_id
    )?;
    writeln!(out, "started:      {}", time(record.created_at))?;
    writeln!(out, "changed:      {}", time(record.updated_at))?;
    if let Some(error) = &record.last_error {
        writeln!(out, "last error:   {error}")?;
    }
    writeln!(out, "waiting for:  {}", serde_json::to_string(&record.awaiting).unwrap_or_default())?;
    writeln!(out, "compensations kept: {}", record.compensations.len())?;
    writeln!(out, "state:\n{}", serde_json::to_string_pretty(&record.state).unwrap_or_default())?;
    Ok(())
}

fn row(record: &ProcessRecord) -> Vec<String> {
    vec![
        record.process_type.clone(),
        record.process_id.to_string(),
        record.status.to_string(),
        record.correlation_id.to_string(),
        time(record.created_at),
        time(record.updated_at),
    ]
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}
