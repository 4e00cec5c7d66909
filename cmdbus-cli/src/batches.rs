//! `cmdbus batch list|show`: tracked batches and their members by status.

use std::io::Write;

use cmdbus::BatchStatus;
use cmdbus_pg::PgBus;

use crate::{args::Cli, output, run::Result};

const HEADERS: [&str; 10] = [
    "BATCH",
    "MEMBERS",
    "PENDING",
    "RUNNING",
    "TSQ",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "OPENED (UTC)",
    "ENDED (UTC)",
];

/// Prints a page of batches, newest first.
pub(crate) async fn list(
    cli: &Cli,
    bus: &PgBus,
    out: &mut impl Write,
    open_only: bool,
    limit: usize,
    after: Option<cmdbus::Cursor>,
) -> Result<()> {
    let page = bus.batches(open_only, limit, after).await?;
    Ok(output::page(cli.json, out, &page, &HEADERS, row)?)
}

/// Prints one batch in full.
pub(crate) async fn show(
    cli: &Cli,
    bus: &PgBus,
    out: &mut impl Write,
    batch_id: uuid::Uuid,
) -> Result<()> {
    let batch = bus.batch(batch_id).await?;
    if cli.json {
        output::json(out, &batch)?;
        return Ok(());
    }
    writeln!(out, "batch:        {}", batch.batch_id)?;
    writeln!(out, "opened:       {}", time(Some(batch.created_at)))?;
    let state = if batch.is_finished() {
        format!("ended {}", time(batch.finished_at))
    } else if batch.in_troubleshooting_queue > 0 {
        "open: held by members in the troubleshooting queue".to_owned()
    } else {
        "open".to_owned()
    };
    writeln!(out, "state:        {state}")?;
    writeln!(out, "members:      {}", batch.total)?;
    for (name, n) in [
        ("pending", batch.pending),
        ("running", batch.in_progress),
        ("in TSQ", batch.in_troubleshooting_queue),
        ("completed", batch.completed),
        ("failed", batch.failed),
        ("canceled", batch.canceled),
    ] {
        writeln!(out, "  {name:<11} {n}")?;
    }
    match &batch.completion {
        Some((domain, id)) => writeln!(out, "completion:   {domain} {id}")?,
        None => writeln!(out, "completion:   none")?,
    }
    Ok(())
}

fn row(batch: &BatchStatus) -> Vec<String> {
    let counts = [
        batch.total,
        batch.pending,
        batch.in_progress,
        batch.in_troubleshooting_queue,
        batch.completed,
        batch.failed,
        batch.canceled,
    ];
    let mut row = vec![batch.batch_id.to_string()];
    row.extend(counts.iter().map(u64::to_string));
    row.push(time(Some(batch.created_at)));
    row.push(time(batch.finished_at));
    row
}

fn time(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}
