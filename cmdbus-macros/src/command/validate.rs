//! Judges the command item and its keys; every mistake is reported at the
//! span the user must edit.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Expr, ExprLit, Lit, Type, spanned::Spanned};

use super::attr::RawAttrs;
use crate::{errors::Errors, names, symbol};

/// What the expansion needs, valid or replaced by a placeholder.
pub(super) struct Spec {
    pub(super) domain: String,
    pub(super) name: String,
    pub(super) reply: Type,
    pub(super) max_attempts: Option<u32>,
    pub(super) backoff_ms: Option<Vec<u64>>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) priority: Option<i16>,
    /// The type implements serde's traits and `JsonSchema` itself.
    pub(super) manual_serde: bool,
}

/// Returns whether the item has a shape a command can take.
pub(super) fn item(item: &DeriveInput, errors: &mut Errors) -> bool {
    let mut ok = true;
    if let Data::Union(union) = &item.data {
        errors.push(syn::Error::new(
            union.union_token.span,
            "a command cannot be a union; use a struct or an enum",
        ));
        ok = false;
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new(
            item.generics.span(),
            "a command cannot be generic: its type name is stored with every command and must name one concrete type",
        ));
        ok = false;
    }
    ok
}

pub(super) fn attrs(raw: RawAttrs, item: &DeriveInput, errors: &mut Errors) -> Spec {
    let domain = match &raw.domain {
        Some(lit) => checked(lit, names::domain_error, errors),
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!(
                    "#[command] needs a `{}` key, e.g. #[command({} = \"payments\")]",
                    symbol::DOMAIN,
                    symbol::DOMAIN
                ),
            ));
            None
        }
    };
    let name = match &raw.name {
        Some(lit) => checked(lit, names::name_error, errors),
        None => {
            let name = item.ident.to_string();
            match names::name_error(&name) {
                Some(why) => {
                    errors.push(syn::Error::new(
                        item.ident.span(),
                        format!("{why}; set `name = \"...\"`"),
                    ));
                    None
                }
                None => Some(name),
            }
        }
    };
    let max_attempts = raw.max_attempts.as_ref().and_then(|lit| match lit.base10_parse::<u32>() {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            errors.push(syn::Error::new(
                lit.span(),
                "`max_attempts` must be a whole number from 1 to 4294967295",
            ));
            None
        }
    });
    let backoff_ms = raw.backoff.as_ref().and_then(|array| {
        if array.elems.is_empty() {
            errors.push(syn::Error::new(
                array.span(),
                "`backoff` needs at least one delay, e.g. backoff = [\"10s\", \"1m\"]",
            ));
            return None;
        }
        let delays: Vec<Option<u64>> = array.elems.iter().map(|e| delay_ms(e, errors)).collect();
        delays.into_iter().collect()
    });
    let timeout_ms = raw.timeout.as_ref().and_then(|lit| {
        let parsed = parse_delay(&lit.value()).filter(|ms| *ms > 0);
        if parsed.is_none() {
            errors.push(syn::Error::new(
                lit.span(),
                "malformed timeout: expected a positive duration such as \"30s\", \"5m\" or \"1h\"",
            ));
        }
        parsed
    });
    let priority = raw.priority.as_ref().and_then(|expr| {
        let parsed = priority(expr);
        if parsed.is_none() {
            errors.push(syn::Error::new(
                expr.span(),
                "`priority` must be a whole number from -32768 to 32767 (higher is leased first; default 0)",
            ));
        }
        parsed
    });
    Spec {
        domain: domain.unwrap_or_else(|| "invalid".to_owned()),
        name: name.unwrap_or_else(|| "Invalid".to_owned()),
        reply: raw.reply.unwrap_or_else(|| syn::parse_quote!(())),
        max_attempts,
        backoff_ms,
        timeout_ms,
        priority,
        manual_serde: raw.manual_serde.is_some(),
    }
}

fn checked(
    lit: &syn::LitStr,
    rule: fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> Option<String> {
    let value = lit.value();
    match rule(&value) {
        Some(why) => {
            errors.push(syn::Error::new(lit.span(), why));
            None
        }
        None => Some(value),
    }
}

/// Parses one delay such as `"250ms"`, `"10s"`, `"5m"` or `"1h"`.
/// An integer literal, possibly negated, that fits an `i16`.
fn priority(expr: &Expr) -> Option<i16> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => lit.base10_parse::<i16>().ok(),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match &**expr {
            Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => {
                format!("-{}", lit.base10_digits()).parse::<i16>().ok()
            }
            _ => None,
        },
        _ => None,
    }
}

fn delay_ms(expr: &Expr, errors: &mut Errors) -> Option<u64> {
    let parsed = match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => parse_delay(&lit.value()),
        _ => None,
    };
    if parsed.is_none() {
        errors.push(syn::Error::new(
            expr.span(),
            "malformed backoff delay: expected a string such as \"250ms\", \"10s\", \"5m\" or \"1h\"",
        ));
    }
    parsed
}

fn parse_delay(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    value.checked_mul(factor)
}
