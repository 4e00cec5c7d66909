//! Serialization and JSON schema for `#[derive(Command)]` and
//! `#[derive(Payload)]`, through cmdbus's re-exports.
//!
//! A derive cannot add `#[derive(Serialize, …)]` to the item it sees, so it
//! declares a private copy of the type (same fields, same `serde`,
//! `schemars` and doc attributes) and lets serde and schemars derive on the
//! copy in their "remote" form: serde writes functions that (de)serialize
//! the user's type field by field, schemars describes the same shape under
//! the user's type name. The impls for the user's type then delegate to the
//! copy. The user's crate needs no serde or schemars dependency.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{
    Attribute, Data, DeriveInput, Fields, LitStr, Meta, Token, Visibility, punctuated::Punctuated,
    spanned::Spanned,
};

/// `Serialize`, `Deserialize` and `JsonSchema` impls for `item`.
pub(crate) fn impls(item: &DeriveInput) -> TokenStream {
    let ident = &item.ident;
    let shadow = shadow_item(item);
    let shadow_ident = &shadow.ident;
    let remote = LitStr::new(&ident.to_string(), ident.span());
    // serde names the type in messages and non-JSON formats after the copy
    // unless told otherwise; a rename the user wrote wins.
    let rename = (!renames(&item.attrs)).then(|| quote!(#[serde(rename = #remote)]));
    let field_checks = field_checks(item);
    quote! {
        #field_checks

        #[derive(
            ::cmdbus::__private::serde::Serialize,
            ::cmdbus::__private::serde::Deserialize,
            ::cmdbus::__private::schemars::JsonSchema
        )]
        #[serde(crate = "::cmdbus::__private::serde", remote = #remote)]
        #[schemars(crate = "::cmdbus::__private::schemars")]
        #rename
        #[allow(dead_code, non_camel_case_types)]
        #shadow

        #[automatically_derived]
        impl ::cmdbus::__private::serde::Serialize for #ident {
            fn serialize<__S>(&self, serializer: __S) -> ::core::result::Result<__S::Ok, __S::Error>
            where
                __S: ::cmdbus::__private::serde::Serializer,
            {
                #shadow_ident::serialize(self, serializer)
            }
        }

        #[automatically_derived]
        impl<'de> ::cmdbus::__private::serde::Deserialize<'de> for #ident {
            fn deserialize<__D>(deserializer: __D) -> ::core::result::Result<Self, __D::Error>
            where
                __D: ::cmdbus::__private::serde::Deserializer<'de>,
            {
                #shadow_ident::deserialize(deserializer)
            }
        }

        #[automatically_derived]
        impl ::cmdbus::__private::schemars::JsonSchema for #ident {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                <#shadow_ident as ::cmdbus::__private::schemars::JsonSchema>::schema_name()
            }
            fn schema_id() -> ::std::borrow::Cow<'static, str> {
                <#shadow_ident as ::cmdbus::__private::schemars::JsonSchema>::schema_id()
            }
            fn inline_schema() -> bool {
                <#shadow_ident as ::cmdbus::__private::schemars::JsonSchema>::inline_schema()
            }
            fn json_schema(
                generator: &mut ::cmdbus::__private::schemars::SchemaGenerator,
            ) -> ::cmdbus::__private::schemars::Schema {
                <#shadow_ident as ::cmdbus::__private::schemars::JsonSchema>::json_schema(generator)
            }
        }
    }
}

/// A check per field that its type is a payload, spanned at the type so a
/// missing `#[derive(Payload)]` is reported there with the fix (serde's own
/// errors follow, but this one says what to do). Fields that serde or
/// schemars are told to skip or to handle `with` something are not checked.
fn field_checks(item: &DeriveInput) -> TokenStream {
    let fields: Vec<&syn::Field> = match &item.data {
        Data::Struct(data) => data.fields.iter().collect(),
        Data::Enum(data) => data.variants.iter().flat_map(|v| v.fields.iter()).collect(),
        Data::Union(_) => Vec::new(),
    };
    let checks = fields.into_iter().filter(|f| !handled_elsewhere(&f.attrs)).map(|field| {
        let ty = &field.ty;
        quote_spanned! {ty.span()=>
            (&::cmdbus::__private::field_check::Field::<#ty>::new()).payload_field();
        }
    });
    quote! {
        const _: () = {
            #[allow(unused_imports)]
            use ::cmdbus::__private::field_check::{IsPayload as _, NotPayload as _};
            #[allow(dead_code)]
            fn __cmdbus_fields_are_payloads() {
                #(#checks)*
            }
        };
    }
}

/// Whether serde or schemars skip the field or (de)serialize it `with`
/// something else, so its type need not be a payload.
fn handled_elsewhere(attrs: &[Attribute]) -> bool {
    attrs.iter().filter(|a| a.path().is_ident("serde") || a.path().is_ident("schemars")).any(|a| {
        let tokens = a.meta.to_token_stream().to_string();
        tokens.contains("with") || tokens.contains("skip")
    })
}

/// The private copy: the item with only the attributes serde and schemars
/// read (and docs, which become schema descriptions), under another name.
fn shadow_item(item: &DeriveInput) -> DeriveInput {
    let mut shadow = item.clone();
    shadow.ident = format_ident!("__CmdbusSerde{}", item.ident);
    shadow.vis = Visibility::Inherited;
    keep_serde_attrs(&mut shadow.attrs);
    shadow.attrs = shadow.attrs.iter().filter_map(without_crate_key).collect();
    match &mut shadow.data {
        Data::Struct(data) => strip_fields(&mut data.fields),
        Data::Enum(data) => {
            for variant in &mut data.variants {
                keep_serde_attrs(&mut variant.attrs);
                strip_fields(&mut variant.fields);
            }
        }
        // Refused by the callers' validation before expansion.
        Data::Union(_) => {}
    }
    shadow
}

fn strip_fields(fields: &mut Fields) {
    for field in fields.iter_mut() {
        keep_serde_attrs(&mut field.attrs);
        field.vis = Visibility::Inherited;
    }
}

fn keep_serde_attrs(attrs: &mut Vec<Attribute>) {
    attrs.retain(|a| ["serde", "schemars", "doc"].iter().any(|name| a.path().is_ident(name)));
}

/// The attribute without a `crate = "..."` key (the copy names cmdbus's
/// re-exports itself; a second `crate` would be an error), or `None` when
/// nothing else is left in it.
fn without_crate_key(attr: &Attribute) -> Option<Attribute> {
    if attr.path().is_ident("doc") {
        return Some(attr.clone());
    }
    let Ok(metas) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else {
        // Malformed: keep it for serde or schemars to report.
        return Some(attr.clone());
    };
    let kept: Punctuated<Meta, Token![,]> =
        metas.into_iter().filter(|meta| !meta.path().is_ident("crate")).collect();
    if kept.is_empty() {
        return None;
    }
    let path = attr.path();
    Some(syn::parse_quote!(#[#path(#kept)]))
}

/// Whether a container `#[serde(rename …)]` is present.
fn renames(attrs: &[Attribute]) -> bool {
    let mut found = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // A malformed attribute is serde's to report.
        let _ = attr.parse_nested_meta(|meta| {
            found |= meta.path.is_ident("rename");
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::Group>()?;
            }
            Ok(())
        });
    }
    found
}
