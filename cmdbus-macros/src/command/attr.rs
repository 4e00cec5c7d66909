//! Parses the `#[command(key = value, ...)]` arguments, without judging them.

use proc_macro2::{Span, TokenStream};
use syn::{ExprArray, LitInt, LitStr, Type, meta::ParseNestedMeta, spanned::Spanned};

use crate::{errors::Errors, symbol};

/// The keys as written. Each is `None` when absent.
#[derive(Default)]
pub(super) struct RawAttrs {
    pub(super) domain: Option<LitStr>,
    pub(super) name: Option<LitStr>,
    pub(super) reply: Option<Type>,
    pub(super) max_attempts: Option<LitInt>,
    pub(super) backoff: Option<ExprArray>,
    pub(super) timeout: Option<LitStr>,
    pub(super) priority: Option<syn::Expr>,
    /// Where `manual_serde` was written.
    pub(super) manual_serde: Option<Span>,
}

/// Parses one `#[command(...)]` argument list into `raw` (the derive may
/// meet several attributes; a key repeated across them is still a duplicate).
pub(super) fn parse(args: TokenStream, raw: &mut RawAttrs, errors: &mut Errors) {
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(symbol::DOMAIN) {
            set(&meta, &mut raw.domain, symbol::DOMAIN, errors)
        } else if meta.path.is_ident(symbol::NAME) {
            set(&meta, &mut raw.name, symbol::NAME, errors)
        } else if meta.path.is_ident(symbol::REPLY) {
            set(&meta, &mut raw.reply, symbol::REPLY, errors)
        } else if meta.path.is_ident(symbol::MAX_ATTEMPTS) {
            set(&meta, &mut raw.max_attempts, symbol::MAX_ATTEMPTS, errors)
        } else if meta.path.is_ident(symbol::BACKOFF) {
            set(&meta, &mut raw.backoff, symbol::BACKOFF, errors)
        } else if meta.path.is_ident(symbol::TIMEOUT) {
            set(&meta, &mut raw.timeout, symbol::TIMEOUT, errors)
        } else if meta.path.is_ident(symbol::PRIORITY) {
            set(&meta, &mut raw.priority, symbol::PRIORITY, errors)
        } else if meta.path.is_ident(symbol::MANUAL_SERDE) {
            if raw.manual_serde.is_some() {
                errors.push(
                    meta.error(format!("duplicate #[command] key `{}`", symbol::MANUAL_SERDE)),
                );
            }
            raw.manual_serde = Some(meta.path.span());
            Ok(())
        } else {
            errors.push(meta.error(format!(
                "unknown #[command] key; expected one of: {}",
                symbol::ALL.join(", ")
            )));
            // Skip the value so the keys after it are still checked.
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            }
            Ok(())
        }
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        errors.push(error);
    }
}

/// Stores a key's value; a key given twice is reported and the first kept.
fn set<T: syn::parse::Parse>(
    meta: &ParseNestedMeta<'_>,
    slot: &mut Option<T>,
    key: &str,
    errors: &mut Errors,
) -> syn::Result<()> {
    let value = meta.value()?.parse::<T>()?;
    if slot.is_some() {
        errors.push(meta.error(format!("duplicate #[command] key `{key}`")));
    } else {
        *slot = Some(value);
    }
    Ok(())
}
