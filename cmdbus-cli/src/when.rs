//! Points in time given on the command line: a time as the CLI prints it
//! (`2026-01-02 03:04:05`, UTC), a date (midnight UTC), RFC 3339, or an
//! age ("2h" ago).

use std::{fmt, str::FromStr};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

/// A time from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct When(pub(crate) DateTime<Utc>);

impl FromStr for When {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            return Ok(Self(at.with_timezone(&Utc)));
        }
        // The forms the CLI prints (UTC), with or without fractions.
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(at) = NaiveDateTime::parse_from_str(s, format) {
                return Ok(Self(at.and_utc()));
            }
        }
        if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Self(date.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        let bad = || {
            format!(
                "{s:?} is not a time: give one as printed (2026-01-02 03:04:05, UTC), a date \
                 (2026-01-02), RFC 3339, or an age such as 30m, 2h, 7d"
            )
        };
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

/// Checks a `--since`/`--until` pair: `--since` not in the future, and
/// before `--until`.
pub(crate) fn check_range(since: Option<When>, until: Option<When>) -> Result<(), String> {
    if let Some(since) = since
        && since.0 > Utc::now()
    {
        return Err(format!(
            "--since {} is in the future (UTC): nothing can match; did you mean an age such as 2h?",
            since.0.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    if let (Some(since), Some(until)) = (since, until)
        && since.0 >= until.0
    {
        return Err("--since must be before --until".into());
    }
    Ok(())
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
        let printed = "2026-01-02 03:04:05".parse::<When>().unwrap().0.to_rfc3339();
        assert_eq!(printed, "2026-01-02T03:04:05+00:00");
        let precise = "2026-01-02 03:04:05.250".parse::<When>().unwrap().0;
        assert_eq!(precise.timestamp_subsec_millis(), 250);
        let date = "2026-01-02".parse::<When>().unwrap().0.to_rfc3339();
        assert_eq!(date, "2026-01-02T00:00:00+00:00");
        for ok in ["10s", "5m", "7d"] {
            assert!(ok.parse::<When>().is_ok(), "{ok}");
        }
        for bad in ["", "h", "2w", "yesterday", "99999999999999999999d"] {
            assert!(bad.parse::<When>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_are_checked() {
        let at = |s: &str| Some(s.parse::<When>().unwrap());
        assert!(check_range(at("2h"), None).is_ok());
        assert!(check_range(at("2h"), at("1h")).is_ok());
        assert_eq!(check_range(at("1h"), at("2h")).unwrap_err(), "--since must be before --until");
        let future = check_range(at("2999-01-01"), None).unwrap_err();
        assert!(future.starts_with("--since 2999-01-01 00:00:00 is in the future"), "{future}");
    }
}
