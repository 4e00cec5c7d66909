//! Commands: `#[derive(Command)]` with `#[command(...)]` keys, and the
//! `#[command(...)]` attribute form (an alias kept for existing code).
//!
//! Both forms parse the same keys (`attr`), judge them the same way
//! (`validate`) and emit the same `Command` impl (`expand`). They differ in
//! how serialization is provided: the attribute adds serde/schemars derives
//! to the item; the derive cannot touch the item, so it implements the
//! traits through a private copy (`crate::shadow`). Either way a crate that
//! declares commands needs no serde or schemars dependency.

mod attr;
pub(crate) mod expand;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

use crate::{errors::Errors, symbol};

/// `#[command(...)]` on an item.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            let error = syn::Error::new(error.span(), "#[command] applies to a struct or an enum")
                .to_compile_error();
            return quote!(#error #input);
        }
    };
    let mut errors = Errors::default();
    let mut raw = attr::RawAttrs::default();
    attr::parse(args, &mut raw, &mut errors);
    let shape_ok = validate::item(&item, &mut errors);
    // Invalid keys are replaced by placeholders so the impl is still emitted:
    // the user then sees the one real mistake, not "Command is not
    // implemented" at every use site.
    let spec = validate::attrs(raw, &item, &mut errors);
    let errors = errors.to_compile_errors();
    if shape_ok {
        let expanded = expand::attribute(&item, &spec);
        quote!(#errors #expanded)
    } else {
        quote!(#errors #input)
    }
}

/// `#[derive(Command)]`, its keys in `#[command(...)]` helper attributes.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let mut raw = attr::RawAttrs::default();
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("command")) {
        match attr.meta.require_list() {
            Ok(list) => attr::parse(list.tokens.clone(), &mut raw, &mut errors),
            Err(_) => errors
                .push(syn::Error::new(attr.span(), "expected #[command(domain = \"...\", ...)]")),
        }
    }
    let shape_ok = validate::item(&item, &mut errors);
    let spec = validate::attrs(raw, &item, &mut errors);
    if !spec.manual_serde {
        own_serde(&item, &mut errors);
    }
    let errors = errors.to_compile_errors();
    // As above: on a bad key the impls are still emitted, so one mistake
    // gives one error. A union or generic type gets none (they cannot hold).
    let expanded = shape_ok.then(|| expand::derive(&item, &spec));
    quote!(#errors #expanded)
}

/// A type that derives serde's traits itself must say so, or the derive's
/// impls would conflict with its own.
fn own_serde(item: &syn::DeriveInput, errors: &mut Errors) {
    let derived = expand::derived_traits(item);
    if let Some(own) =
        derived.iter().find(|t| ["Serialize", "Deserialize", "JsonSchema"].contains(&t.as_str()))
    {
        errors.push(syn::Error::new(
            item.ident.span(),
            format!(
                "`{}` derives `{own}` itself; add `{}` to #[command(...)] so that \
                 #[derive(Command)] does not implement serialization again \
                 (the type must then implement Serialize, Deserialize and JsonSchema)",
                item.ident,
                symbol::MANUAL_SERDE
            ),
        ));
    }
}
