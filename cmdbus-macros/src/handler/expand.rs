//! Code generation for `#[handler]`: `quote!` only, no decisions.
//!
//! Each piece of the shim is spanned at the part of the signature it checks,
//! so a type error points at the user's argument or return type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::Handler;

pub(super) fn registration(handler: &Handler<'_>) -> TokenStream {
    let Handler { ident, command, context, output } = handler;
    let decode = quote_spanned! {command.span()=>
        ::cmdbus::__private::decode::<#command>(payload)
    };
    let call = match context {
        Some(context) => {
            let ctx = quote_spanned!(context.span()=> ctx);
            quote!(#ident(cmd, #ctx))
        }
        None => quote!({ let _ = ctx; #ident(cmd) }),
    };
    let encode = quote_spanned! {output.span()=>
        <#output as ::cmdbus::__private::HandlerOutput<#command>>::into_reply(output)
    };
    let register = quote_spanned! {command.span()=>
        ::cmdbus::__private::HandlerRegistration::new::<#command>
    };
    let line = quote_spanned!(ident.span()=> ::core::line!());

    quote! {
        const _: () = {
            fn __cmdbus_call<'a>(
                payload: &'a ::cmdbus::__private::RawValue,
                ctx: &'a mut ::cmdbus::HandlerContext,
            ) -> ::cmdbus::__private::BoxFuture<'a, ::cmdbus::__private::ErasedResult> {
                ::std::boxed::Box::pin(async move {
                    let cmd = #decode?;
                    let output: #output = #call.await;
                    #encode
                })
            }

            ::cmdbus::__private::inventory::submit! {
                #register(
                    ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    ::core::concat!(::core::file!(), ":", #line),
                    __cmdbus_call,
                )
            }
        };
    }
}
