//! W3C trace context carried with every command, so a handler's span can be
//! tied to the sender's (across processes and retries).
//!
//! cmdbus does not depend on OpenTelemetry: it generates and propagates
//! `traceparent` values and records them on its spans (`cmdbus.send`,
//! `cmdbus.handle`). Teams using OpenTelemetry pass their current context with
//! [`SendOptions::traceparent`](crate::SendOptions::traceparent) and set a
//! handler span's parent from [`HandlerContext::traceparent`](crate::HandlerContext::traceparent).

use std::{fmt, str::FromStr};

use crate::Error;

/// A W3C `traceparent`: version 00, trace id, span id, flags.
///
/// ```
/// let parent: cmdbus::TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
/// let child = parent.child();
/// assert_eq!(child.trace_id(), parent.trace_id());
/// assert_ne!(child.span_id(), parent.span_id());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceParent {
    /// A new trace (sampled).
    pub fn root() -> Self {
        Self { trace_id: nonzero_u128(), span_id: nonzero_u64(), flags: 1 }
    }

    /// A new span in the same trace.
    #[must_use]
    pub fn child(&self) -> Self {
        Self { span_id: nonzero_u64(), ..*self }
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id, 16 hex digits.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

fn nonzero_u128() -> u128 {
    uuid::Uuid::new_v4().as_u128() | 1
}

fn nonzero_u64() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64) | 1
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

impl FromStr for TraceParent {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidName {
            kind: "traceparent",
            value: s.chars().take(80).collect(),
            reason: "expected 00-<32 hex>-<16 hex>-<2 hex>, ids not all zero",
        };
        let parts: Vec<&str> = s.split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else { return Err(invalid()) };
        let hex = |text: &str, len: usize| {
            (text.len() == len
                && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then_some(())
            .ok_or_else(invalid)
        };
        hex(version, 2)?;
        hex(trace, 32)?;
        hex(span, 16)?;
        hex(flags, 2)?;
        if *version != "00" {
            return Err(invalid());
        }
        let parsed = Self {
            trace_id: u128::from_str_radix(trace, 16).map_err(|_| invalid())?,
            span_id: u64::from_str_radix(span, 16).map_err(|_| invalid())?,
            flags: u8::from_str_radix(flags, 16).map_err(|_| invalid())?,
        };
        if parsed.trace_id == 0 || parsed.span_id == 0 {
            return Err(invalid());
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_values() {
        let root = TraceParent::root();
        assert_eq!(root.to_string().parse::<TraceParent>().unwrap(), root);
        assert_eq!(root.to_string().len(), 55);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
        }
    }
}
