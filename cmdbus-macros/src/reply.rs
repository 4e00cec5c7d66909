//! `#[reply]`: a reply type that serializes through cmdbus's re-exports.

use proc_macro2::TokenStream;
use quote::quote;

use crate::command::expand::serde_derives;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            let error = syn::Error::new(error.span(), "#[reply] applies to a struct or an enum")
                .to_compile_error();
            return quote!(#error #input);
        }
    };
    let args_error = (!args.is_empty())
        .then(|| syn::Error::new_spanned(&args, "#[reply] takes no arguments").to_compile_error());
    let derive = serde_derives(&item);
    quote!(#args_error #derive #item)
}
