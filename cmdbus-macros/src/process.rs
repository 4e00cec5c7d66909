//! `#[derive(Process)]`: a process manager's name, domain and steps.
//!
//! `#[process(domain = "...", name = "...", steps(A, B), compensations(C))]`
//! makes the type a `cmdbus::process::ProcessType`: it may send exactly the
//! commands listed (`Sends<C>`), each step's reply goes to its
//! `Reacts<Step>` impl (a missing one is reported at the step's name), and
//! workers serving the domain run its events (an `inventory` registration).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{
    Data, DeriveInput, LitStr, Path, Token, meta::ParseNestedMeta, punctuated::Punctuated,
    spanned::Spanned,
};

use crate::errors::Errors;

#[derive(Default)]
struct Attrs {
    domain: Option<LitStr>,
    name: Option<LitStr>,
    steps: Vec<Path>,
    compensations: Vec<Path>,
}

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let item: DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    if let Data::Union(union) = &item.data {
        errors.push(syn::Error::new(
            union.union_token.span,
            "a process cannot be a union; use a struct or an enum",
        ));
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new(
            item.generics.span(),
            "a process cannot be generic: its stored name must name one concrete type",
        ));
    }
    let attrs = parse(&item, &mut errors);
    let errors = errors.to_compile_errors();
    if !errors.is_empty() {
        return errors;
    }
    expand(&item, &attrs)
}

fn parse(item: &DeriveInput, errors: &mut Errors) -> Attrs {
    let mut attrs = Attrs::default();
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("process")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("domain") {
                set(&meta, &mut attrs.domain, errors)
            } else if meta.path.is_ident("name") {
                set(&meta, &mut attrs.name, errors)
            } else if meta.path.is_ident("steps") {
                list(&meta, &mut attrs.steps)
            } else if meta.path.is_ident("compensations") {
                list(&meta, &mut attrs.compensations)
            } else {
                Err(meta.error(
                    "unknown #[process] key; expected one of: domain, name, steps, compensations",
                ))
            }
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    match &attrs.domain {
        None => errors.push(syn::Error::new(
            item.ident.span(),
            "a process needs `#[process(domain = \"...\")]`: the domain its events run in",
        )),
        Some(domain) => {
            if let Some(why) = crate::names::domain_error(&domain.value()) {
                errors.push(syn::Error::new(domain.span(), why));
            }
        }
    }
    if let Some(name) = &attrs.name
        && let Some(why) = crate::names::name_error(&name.value())
    {
        errors.push(syn::Error::new(name.span(), why));
    }
    if attrs.steps.is_empty() {
        errors.push(syn::Error::new(
            item.ident.span(),
            "a process needs at least one step: `#[process(steps(FirstCommand, ...))]`",
        ));
    }
    attrs
}

fn set(
    meta: &ParseNestedMeta<'_>,
    slot: &mut Option<LitStr>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let value: LitStr = meta.value()?.parse()?;
    if slot.is_some() {
        errors.push(meta.error("duplicate #[process] key"));
    } else {
        *slot = Some(value);
    }
    Ok(())
}

fn list(meta: &ParseNestedMeta<'_>, into: &mut Vec<Path>) -> syn::Result<()> {
    let content;
    syn::parenthesized!(content in meta.input);
    into.extend(Punctuated::<Path, Token![,]>::parse_terminated(&content)?);
    Ok(())
}

fn expand(item: &DeriveInput, attrs: &Attrs) -> TokenStream {
    let ident = &item.ident;
    let serde = crate::shadow::impls(item);
    let domain = attrs.domain.as_ref().map(LitStr::value).unwrap_or_default();
    let name = attrs.name.as_ref().map_or_else(|| ident.to_string(), LitStr::value);
    let sends = attrs.steps.iter().chain(&attrs.compensations).map(|command| {
        quote_spanned! {command.span()=>
            impl ::cmdbus::process::Sends<#command> for #ident {}
        }
    });
    let reactions = attrs.steps.iter().map(|step| {
        let call = quote_spanned! {step.span()=>
            ::cmdbus::process::__react::<Self, #step>(self, reply, steps)
        };
        quote! {
            if domain == <#step as ::cmdbus::Command>::DOMAIN
                && command_type == <#step as ::cmdbus::Command>::NAME
            {
                return #call.map(|()| true);
            }
        }
    });
    quote! {
        #serde

        #(#sends)*

        impl ::cmdbus::process::ProcessType for #ident {
            const DOMAIN: &'static str = #domain;
            const NAME: &'static str = #name;

            fn react(
                &mut self,
                domain: &str,
                command_type: &str,
                reply: &::cmdbus::Reply,
                steps: &mut ::cmdbus::process::Steps<Self>,
            ) -> ::core::result::Result<bool, ::cmdbus::HandlerError> {
                #(#reactions)*
                let _ = (domain, command_type, reply, steps);
                ::core::result::Result::Ok(false)
            }
        }

        ::cmdbus::__private::inventory::submit! {
            ::cmdbus::__private::HandlerRegistration::new::<::cmdbus::process::ProcessEvent<#ident>>(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                ::core::concat!(::core::file!(), ":", ::core::line!()),
                ::cmdbus::process::__handle::<#ident>,
            )
        }
    }
}
