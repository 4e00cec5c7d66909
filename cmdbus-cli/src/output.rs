//! Printing: aligned tables for people, JSON for scripts.

use std::io::{self, Write};

use cmdbus::{AuditEntry, CommandRecord};
use serde::Serialize;

/// Prints `rows` under `headers`, columns padded to their widest cell.
pub(crate) fn table(
    out: &mut impl Write,
    headers: &[&str],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let padded: Vec<String> =
            cells.zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(out, &mut headers.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Prints `value` as pretty JSON.
pub(crate) fn json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::other)?;
    writeln!(out)
}

/// A page of items: JSON with the cursor for scripts, or a table and the
/// `--after` to pass for the next page.
pub(crate) fn page<T: Serialize>(
    json_out: bool,
    out: &mut impl Write,
    page: &cmdbus::Page<T>,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> io::Result<()> {
    if json_out {
        let next = page.next.map(|c| c.to_string());
        return json(out, &serde_json::json!({ "items": page.items, "next": next }));
    }
    let rows: Vec<Vec<String>> = page.items.iter().map(row).collect();
    table(out, headers, &rows)?;
    if let Some(next) = page.next {
        writeln!(out, "more: --after {next}")?;
    }
    Ok(())
}

/// One line per command, for lists.
pub(crate) fn command_rows(records: &[CommandRecord]) -> Vec<Vec<String>> {
    records
        .iter()
        .map(|r| {
            let error =
                r.last_error.as_ref().map(|e| format!("{}: {}", e.code, one_line(&e.message, 60)));
            vec![
                r.command_id.to_string(),
                format!("{}/{}", r.domain, r.command_type),
                if r.is_scheduled(chrono::Utc::now()) {
                    format!("{} (due {})", r.status, r.due_at.format("%Y-%m-%d %H:%M:%S"))
                } else {
                    r.status.to_string()
                },
                format!("{}/{}", r.attempts, r.max_attempts),
                r.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                error.unwrap_or_default(),
            ]
        })
        .collect()
}

/// Headers of [`command_rows`].
pub(crate) const COMMAND_HEADERS: [&str; 6] =
    ["ID", "TYPE", "STATUS", "ATTEMPTS", "UPDATED (UTC)", "LAST ERROR"];

/// One line per audit entry.
pub(crate) fn audit_rows(entries: &[AuditEntry]) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            let details = if e.details.as_object().is_some_and(serde_json::Map::is_empty) {
                String::new()
            } else {
                one_line(&e.details.to_string(), 100)
            };
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                e.event.to_string(),
                e.attempt.to_string(),
                details,
            ]
        })
        .collect()
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(&mut out, &["A", "LONGER"], &[vec!["wide cell".into(), "x".into()]]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A          LONGER\nwide cell  x\n");
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
