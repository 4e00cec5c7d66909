//! `#[handler]`: registers an `async fn(cmd: C, ctx: &mut HandlerContext)
//! -> Result<C::Reply, E>` as the handler of command `C`.
//!
//! The function is kept as written (users call it directly in unit tests);
//! the macro adds a type-erased shim and an `inventory` registration next to it.

mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(&args, "#[handler] takes no arguments"));
    }
    let function: syn::ItemFn = match syn::parse2(input.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = syn::Error::new(error.span(), "#[handler] applies to an `async fn`")
                .to_compile_error();
            return quote!(#error #input);
        }
    };
    let handler = ast::Handler::from_fn(&function, &mut errors);
    let errors = errors.to_compile_errors();
    let registration = handler.map(|handler| expand::registration(&handler));
    quote!(#errors #function #registration)
}
