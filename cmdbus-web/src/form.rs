//! Form bodies and query strings as name–value pairs. Kept as pairs (not a
//! struct) because the TSQ page posts one `id` per ticked item.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use cmdbus::{Cursor, TsqFilter};

use crate::error::Refusal;

/// Decoded `application/x-www-form-urlencoded` pairs, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(encoded: &[u8]) -> Self {
        Self(form_urlencoded::parse(encoded).into_owned().collect())
    }

    pub(crate) fn query(query: Option<&str>) -> Self {
        Self::parse(query.unwrap_or_default().as_bytes())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` untrimmed (a payload or a result), or `""`.
    pub(crate) fn raw(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }
}

impl Form {
    /// An instant from field `name`: RFC 3339, or the browser's
    /// `datetime-local` (`2026-11-27T09:30`, read as UTC), or a date.
    pub(crate) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, Refusal> {
        let Some(text) = self.get(name) else { return Ok(None) };
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Some(at.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
            if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(Some(at.and_utc()));
            }
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(day.and_hms_opt(0, 0, 0).map(|at| at.and_utc()));
        }
        Err(Refusal::bad_request(format!(
            "{name} {text:?} is not a time: use 2026-11-27T09:30 (UTC) or RFC 3339"
        )))
    }

    /// The domain in field `domain` and the type in `type`, if named. A
    /// type is named within its domain, so a type alone is refused.
    pub(crate) fn domain_and_type(&self) -> Result<Option<(&str, Option<&str>)>, Refusal> {
        match (self.get("domain"), self.get("type")) {
            (None, Some(_)) => Err(Refusal::bad_request(
                "a type is named within its domain: choose the domain too",
            )),
            (domain, command_type) => Ok(domain.map(|domain| (domain, command_type))),
        }
    }

    /// The TSQ filter in fields `domain`, `type`, `code`, `since`, `until`.
    pub(crate) fn tsq_filter(&self) -> Result<TsqFilter, Refusal> {
        let mut filter = TsqFilter::new();
        match self.domain_and_type()? {
            Some((domain, Some(command_type))) => {
                filter = filter.command_type(domain, command_type);
            }
            Some((domain, None)) => filter = filter.domain(domain),
            None => {}
        }
        if let Some(code) = self.get("code") {
            filter = filter.error_code(code);
        }
        if let Some(since) = self.time("since")? {
            filter = filter.since(since);
        }
        if let Some(until) = self.time("until")? {
            filter = filter.until(until);
        }
        filter.validate()?;
        Ok(filter)
    }

    /// The page cursor in field `after`.
    pub(crate) fn cursor(&self) -> Result<Option<Cursor>, Refusal> {
        self.get("after")
            .map(|text| {
                text.parse::<Cursor>()
                    .map_err(|_| Refusal::bad_request("the page link is malformed"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_blanks_and_escapes() {
        let form = Form::parse(b"id=a&id=b&id=&reason=+too+late+&x=%3Cb%3E");
        assert_eq!(form.all("id").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(form.get("reason"), Some("too late"));
        assert_eq!(form.get("x"), Some("<b>"));
        assert_eq!(form.get("missing"), None);
        assert_eq!(form.raw("reason"), " too late ");
        assert_eq!(Form::query(None).get("a"), None);
    }
}
