//! Keyset pagination: a page of rows and where the next one starts.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, Result};

/// Most rows one page returns.
pub const MAX_PAGE: usize = 1000;

/// Where the next page starts: the last row's sort time and id.
///
/// Printed and parsed as `<RFC 3339 time>~<uuid>`, so scripts can pass it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    at: DateTime<Utc>,
    command_id: Uuid,
}

impl Cursor {
    /// The page after the row sorted at `at` with `command_id`.
    pub fn new(at: DateTime<Utc>, command_id: Uuid) -> Self {
        Self { at, command_id }
    }

    /// The last row's sort time.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The last row's command id.
    pub fn command_id(&self) -> Uuid {
        self.command_id
    }

    /// Whether a row sorted at `at` with `command_id` comes after this
    /// cursor (newest first, ties by id, descending).
    pub fn precedes(&self, at: DateTime<Utc>, command_id: Uuid) -> bool {
        (at, command_id) < (self.at, self.command_id)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}~{}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.command_id
        )
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidName {
            kind: "cursor",
            value: s.to_owned(),
            reason: "expected <time>~<uuid>",
        };
        let (at, id) = s.split_once('~').ok_or_else(invalid)?;
        Ok(Self {
            at: DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?.with_timezone(&Utc),
            command_id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// One page of results.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Page<T> {
    /// The rows, newest first.
    pub items: Vec<T>,
    /// Pass on to get the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page of `items` (at most `limit` are kept) from rows fetched with
    /// one extra: when that extra row is there, the page has a successor,
    /// starting after the last row kept (`sort_key` gives its time and id).
    pub fn from_rows(
        mut items: Vec<T>,
        limit: usize,
        sort_key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
    ) -> Self {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| {
                let (at, command_id) = sort_key(last);
                Cursor { at, command_id }
            })
        } else {
            None
        };
        Self { items, next }
    }

    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_through_its_text() {
        let cursor = Cursor::new(Utc::now(), Uuid::now_v7());
        let parsed: Cursor = cursor.to_string().parse().unwrap();
        assert_eq!(parsed.command_id(), cursor.command_id());
        assert_eq!(parsed.at().timestamp_micros(), cursor.at().timestamp_micros());
        for bad in ["", "x~y", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z~nope"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let t = Utc::now();
        let rows: Vec<(DateTime<Utc>, Uuid)> = (0..3).map(|_| (t, Uuid::now_v7())).collect();
        let page = Page::from_rows(rows.clone(), 2, |r| *r);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, Some(Cursor::new(t, rows[1].1)));
        assert!(Page::from_rows(rows, 3, |r| *r).next.is_none());
    }
}
