//! The typed view of a handler function, built while validating it.

use syn::{FnArg, ItemFn, ReturnType, Type, spanned::Spanned};

use crate::errors::Errors;

pub(super) struct Handler<'a> {
    pub(super) ident: &'a syn::Ident,
    pub(super) command: &'a Type,
    /// The context parameter's type, if the handler takes one.
    pub(super) context: Option<&'a Type>,
    pub(super) output: &'a Type,
}

impl<'a> Handler<'a> {
    /// Validates `function`, reporting every mistake; `None` when the shim
    /// cannot be generated at all.
    pub(super) fn from_fn(function: &'a ItemFn, errors: &mut Errors) -> Option<Self> {
        let sig = &function.sig;
        if sig.asyncness.is_none() {
            errors.push(syn::Error::new(sig.fn_token.span, "a handler must be an `async fn`"));
        }
        if !sig.generics.params.is_empty() {
            errors.push(syn::Error::new(
                sig.generics.span(),
                "a handler cannot be generic: it serves exactly one command type",
            ));
        }
        let mut typed = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => errors.push(syn::Error::new(
                    receiver.span(),
                    "a handler is a free function; it cannot take `self`",
                )),
                FnArg::Typed(pat) => typed.push(&*pat.ty),
            }
        }
        let output = match &sig.output {
            ReturnType::Type(_, ty) => Some(&**ty),
            ReturnType::Default => {
                errors.push(syn::Error::new(
                    sig.ident.span(),
                    "a handler must return `Result<<C as Command>::Reply, E>`",
                ));
                None
            }
        };
        let (command, context) = match typed.as_slice() {
            [command] => (Some(*command), None),
            [command, context] => (Some(*command), Some(*context)),
            _ => {
                errors.push(syn::Error::new(
                    sig.paren_token.span.join(),
                    "a handler takes the command and optionally the context: `(cmd: MyCommand, ctx: &mut HandlerContext)`",
                ));
                (None, None)
            }
        };
        let valid_shape = sig.asyncness.is_some()
            && sig.generics.params.is_empty()
            && typed.len() == sig.inputs.len();
        Some(Handler { ident: &sig.ident, command: command?, context, output: output? })
            .filter(|_| valid_shape)
    }
}
