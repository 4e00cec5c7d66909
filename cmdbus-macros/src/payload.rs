//! `#[derive(Payload)]`: a type that travels inside a command or a reply
//! (a nested field type, a reply type) serializes and describes itself
//! through cmdbus's re-exports, like a command does.

use proc_macro2::TokenStream;
use syn::{Data, DeriveInput, spanned::Spanned};

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let item: DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    if let Data::Union(union) = &item.data {
        return syn::Error::new(
            union.union_token.span,
            "a payload cannot be a union; use a struct or an enum",
        )
        .to_compile_error();
    }
    if !item.generics.params.is_empty() {
        return syn::Error::new(
            item.generics.span(),
            "#[derive(Payload)] does not support generic types; derive serde's traits and \
             JsonSchema on it directly",
        )
        .to_compile_error();
    }
    crate::shadow::impls(&item)
}
