//! An error with its causes on one line, for logs and for people.
//!
//! cmdbus's errors follow the standard-library convention: an error's
//! `Display` says what failed at its own level and leaves the cause to
//! `source()`. Whoever prints an error must then walk the chain, or the
//! cause ("connection refused", "terminating connection due to
//! administrator command") is lost. [`Report`] does that walk.

use std::{error::Error as StdError, fmt};

/// Displays an error followed by each of its causes: `context: cause: cause`.
///
/// A cause whose text the line already holds is skipped, so an error that
/// embeds its source's message is not printed twice.
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let error = cmdbus::Error::backend("sending a command", io);
/// assert_eq!(error.to_string(), "sending a command");
/// assert_eq!(error.report().to_string(), "sending a command: connection refused");
/// ```
#[derive(Clone, Copy)]
pub struct Report<'a>(&'a (dyn StdError + 'static));

impl<'a> Report<'a> {
    /// Reports `error` and its causes.
    pub fn new(error: &'a (dyn StdError + 'static)) -> Self {
        Self(error)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !text.is_empty() && !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")] // embeds its source's text, as some libraries do
    struct Middle(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn prints_each_cause_once() {
        assert_eq!(Report::new(&Outer(Middle(Inner))).to_string(), "outer: middle: inner");
        assert_eq!(format!("{:?}", Report::new(&Inner)), "inner");
    }
}
