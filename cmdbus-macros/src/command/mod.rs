//! `#[command(...)]`: turns a struct or enum into a `cmdbus::Command`.
//!
//! An attribute macro rather than a derive, because it can add the
//! `Serialize`, `Deserialize` and `JsonSchema` derives itself (pointed at
//! cmdbus's re-exports), so a crate that only declares commands needs no
//! direct serde or schemars dependency, and one line declares a command.

mod attr;
pub(crate) mod expand;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

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
    let raw = attr::parse(args, &mut errors);
    let shape_ok = validate::item(&item, &mut errors);
    // Invalid keys are replaced by placeholders so the impl is still emitted:
    // the user then sees the one real mistake, not "Command is not
    // implemented" at every use site.
    let spec = validate::attrs(raw, &item, &mut errors);
    let errors = errors.to_compile_errors();
    if shape_ok {
        let expanded = expand::command(&item, &spec);
        quote!(#errors #expanded)
    } else {
        quote!(#errors #input)
    }
}
