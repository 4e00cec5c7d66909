//! Compile-time checks of domain and command-type names.
//!
//! The same rules as `cmdbus::validate_domain` / `validate_command_type`,
//! which check names that arrive at run time (this crate cannot depend on
//! the runtime crate). Both crates' tests cover the same edge cases.

/// Longest accepted domain, in bytes.
const DOMAIN_MAX: usize = 63;
/// Longest accepted command type name, in bytes.
const NAME_MAX: usize = 128;

/// Why `value` is not a valid domain, if it is not.
pub(crate) fn domain_error(value: &str) -> Option<String> {
    check(value, DOMAIN_MAX, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
    })
    .map(|why| format!("invalid domain {value:?}: {why} (allowed: lowercase ASCII letters, digits, `_`, `-`, `.`; starts with a letter; at most {DOMAIN_MAX} bytes)"))
}

/// Why `value` is not a valid command type name, if it is not.
pub(crate) fn name_error(value: &str) -> Option<String> {
    check(value, NAME_MAX, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
    })
    .map(|why| format!("invalid command name {value:?}: {why} (allowed: ASCII letters, digits, `_`, `-`, `.`; starts with a letter; at most {NAME_MAX} bytes)"))
}

fn check(value: &str, max: usize, allowed: impl Fn(char) -> bool) -> Option<&'static str> {
    if value.is_empty() {
        Some("it is empty")
    } else if value.len() > max {
        Some("it is too long")
    } else if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("it must start with an ASCII letter")
    } else if !value.chars().all(allowed) {
        Some("it contains a character that is not allowed")
    } else {
        None
    }
}
