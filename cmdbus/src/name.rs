//! Rules for domain and command-type names, checked wherever a name enters
//! from outside the type system (configuration, the CLI, hand-built
//! registrations). `#[command]` applies the same rules at compile time.

use crate::Error;

const DOMAIN_MAX: usize = 63;
const NAME_MAX: usize = 128;

/// Checks a domain name: lowercase ASCII letters, digits, `_`, `-`, `.`,
/// starting with a letter, at most 63 bytes.
///
/// ```
/// assert!(cmdbus::validate_domain("payments").is_ok());
/// assert!(cmdbus::validate_domain("\"; drop table x").is_err());
/// ```
pub fn validate_domain(value: &str) -> Result<(), Error> {
    check(value, DOMAIN_MAX, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
    })
    .map_err(|reason| Error::InvalidName { kind: "domain", value: value.to_owned(), reason })
}

/// Checks a command type name: ASCII letters, digits, `_`, `-`, `.`,
/// starting with a letter, at most 128 bytes.
///
/// ```
/// assert!(cmdbus::validate_command_type("DebitAccount").is_ok());
/// assert!(cmdbus::validate_command_type("Debit Account").is_err());
/// ```
pub fn validate_command_type(value: &str) -> Result<(), Error> {
    check(value, NAME_MAX, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).map_err(
        |reason| Error::InvalidName { kind: "command type", value: value.to_owned(), reason },
    )
}

fn check(value: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("it is empty")
    } else if value.len() > max {
        Err("it is too long")
    } else if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Err("it must start with an ASCII letter")
    } else if !value.chars().all(allowed) {
        Err("it contains a character that is not allowed")
    } else {
        Ok(())
    }
}

/// Refuses commands whose domain or type breaks the naming rules, before a
/// backend stores any of them (a batch is all or nothing).
///
/// # Errors
///
/// [`Error::InvalidName`](crate::Error::InvalidName) for the first that does.
pub fn validate_commands<'a>(
    commands: impl IntoIterator<Item = &'a crate::backend::NewCommand>,
) -> crate::Result<()> {
    commands.into_iter().try_for_each(|command| {
        validate_domain(&command.domain)?;
        validate_command_type(&command.command_type)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses_domains() {
        for ok in ["payments", "a", "billing-v2", "eu.payments", &"a".repeat(63)] {
            assert!(validate_domain(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "Payments",
            "1pay",
            " pay",
            "pay ments",
            "pay;",
            &"a".repeat(64),
            "\"; drop table x",
        ] {
            assert!(validate_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accepts_and_refuses_command_types() {
        for ok in ["DebitAccount", "v2.Debit", "debit_account", &"A".repeat(128)] {
            assert!(validate_command_type(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "_Debit", "Debit Account", "Débit", &"A".repeat(129)] {
            assert!(validate_command_type(bad).is_err(), "{bad:?}");
        }
        let message = validate_command_type("Debit Account").unwrap_err().to_string();
        assert!(message.contains("not allowed"), "{message}");
    }
}
