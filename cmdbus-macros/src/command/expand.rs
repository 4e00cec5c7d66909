//! Code generation for `#[command]`: `quote!` only, no decisions.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use super::validate::Spec;

/// The attribute form: the item, serde/schemars derives added to it, and
/// the `Command` impl.
pub(super) fn attribute(item: &DeriveInput, spec: &Spec) -> TokenStream {
    let derive = (!spec.manual_serde).then(|| serde_derives(item));
    let command = command_impl(item, spec);
    quote! {
        #derive
        #item
        #command
    }
}

/// The derive form: serialization through a private copy (see `shadow`)
/// and the `Command` impl; the item itself is left as written.
pub(super) fn derive(item: &DeriveInput, spec: &Spec) -> TokenStream {
    let serde = (!spec.manual_serde).then(|| crate::shadow::impls(item));
    let command = command_impl(item, spec);
    quote! {
        const _: () = {
            #serde
        };
        #command
    }
}

fn command_impl(item: &DeriveInput, spec: &Spec) -> TokenStream {
    let ident = &item.ident;
    let Spec { domain, name, reply, max_attempts, backoff_ms, timeout_ms, priority, .. } = spec;
    let priority = priority.map(|p| quote!(const PRIORITY: i16 = #p;));
    let max_attempts = max_attempts.map(|n| quote!(const MAX_ATTEMPTS: u32 = #n;));
    let timeout = timeout_ms.map(|ms| {
        quote! {
            const TIMEOUT: ::core::option::Option<::core::time::Duration> =
                ::core::option::Option::Some(::core::time::Duration::from_millis(#ms));
        }
    });
    let retry_policy = backoff_ms.as_ref().map(|ms| {
        quote! {
            fn retry_policy() -> ::cmdbus::RetryPolicy {
                ::cmdbus::RetryPolicy::default()
                    .with_max_attempts(Self::MAX_ATTEMPTS)
                    .with_backoff_millis(&[#(#ms),*])
            }
        }
    });
    quote! {
        const _: () = {
            #[automatically_derived]
            impl ::cmdbus::Command for #ident {
                const DOMAIN: &'static str = #domain;
                const NAME: &'static str = #name;
                type Reply = #reply;
                #max_attempts
                #timeout
                #priority
                #retry_policy
            }
        };
    }
}

/// `#[derive(Serialize, Deserialize, JsonSchema)]` pointed at cmdbus's
/// re-exports, leaving out what the item already derives.
pub(crate) fn serde_derives(item: &DeriveInput) -> TokenStream {
    let derived = derived_traits(item);
    let has = |t: &str| derived.iter().any(|d| d == t);
    let mut derives = Vec::new();
    if !has("Serialize") {
        derives.push(quote!(::cmdbus::__private::serde::Serialize));
    }
    if !has("Deserialize") {
        derives.push(quote!(::cmdbus::__private::serde::Deserialize));
    }
    let serde_crate =
        (!derives.is_empty()).then(|| quote!(#[serde(crate = "::cmdbus::__private::serde")]));
    let schemars_crate = (!has("JsonSchema")).then(|| {
        derives.push(quote!(::cmdbus::__private::schemars::JsonSchema));
        quote!(#[schemars(crate = "::cmdbus::__private::schemars")])
    });
    if derives.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[derive(#(#derives),*)]
        #serde_crate
        #schemars_crate
    }
}

/// The last path segment of every trait already in a `#[derive(...)]`.
pub(super) fn derived_traits(item: &DeriveInput) -> Vec<String> {
    let mut found = Vec::new();
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("derive")) {
        // A malformed derive is rustc's to report; we just see no traits in it.
        let _ = attr.parse_nested_meta(|meta| {
            if let Some(last) = meta.path.segments.last() {
                found.push(last.ident.to_string());
            }
            Ok(())
        });
    }
    found
}
