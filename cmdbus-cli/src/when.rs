//! Points in time given on the command line: RFC 3339, or an age ("2h" ago).

use std::{fmt, str::FromStr};

use chrono::{DateTime, Duration, Utc};

/// A time from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct When(pub(crate) DateTime<Utc>);

impl FromStr for When {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            return Ok(Self(at.with_timezone(&Utc)));
        }
        let bad = || format!("{s:?} is neither an RFC 3339 time nor an age such as 30m, 2h, 7d");
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = s.split_at(split);
        let n: i64 = digits.parse().map_err(|_| bad())?;
        let age = match unit {
            "s" => Duration::try_seconds(n),
            "m" => Duration::try_minutes(n),
            "h" => Duration::try_hours(n),
            "d" => Duration::try_days(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        Ok(Self(Utc::now() - age))
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_and_ages() {
        assert_eq!(
            "2026-01-02T03:04:05Z".parse::<When>().unwrap().0.to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
        let two_hours = "2h".parse::<When>().unwrap().0;
        let expected = Utc::now() - Duration::hours(2);
        assert!((two_hours - expected).num_seconds().abs() < 5);
        for ok in ["10s", "5m", "7d"] {
            assert!(ok.parse::<When>().is_ok(), "{ok}");
        }
        for bad in ["", "h", "2w", "yesterday", "99999999999999999999d"] {
            assert!(bad.parse::<When>().is_err(), "{bad:?}");
        }
    }
}
