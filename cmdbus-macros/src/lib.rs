//! Procedural macros for [cmdbus](https://docs.rs/cmdbus). Use them through
//! the `cmdbus` crate, never directly: the generated code names `::cmdbus`
//! paths only, and their reference documentation is where `cmdbus`
//! re-exports them (`cmdbus::handler`, `derive@cmdbus::Command`, …).
//!
//! Each macro is a thin entry point: parse the input into a typed view,
//! validate it (collecting every mistake at once), then expand. On error the
//! user's item is still emitted so that one mistake does not cascade.

mod command;
mod errors;
mod handler;
mod names;
mod payload;
mod process;
mod reply;
mod shadow;
mod symbol;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// `#[derive(Command)]`: the `cmdbus::Command` impl and, unless
/// `manual_serde`, serialization and a JSON schema through cmdbus's
/// re-exports.
#[proc_macro_derive(Command, attributes(command, serde, schemars))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    command::derive(input.into()).into()
}

/// `#[derive(Payload)]`: `Serialize`, `Deserialize` and `JsonSchema`
/// through cmdbus's re-exports.
#[proc_macro_derive(Payload, attributes(serde, schemars))]
pub fn derive_payload(input: TokenStream) -> TokenStream {
    payload::derive(input.into()).into()
}

/// `#[derive(Process)]`: a process manager's name, domain, the commands it
/// sends, and the registration that lets workers run it.
#[proc_macro_derive(Process, attributes(process, serde, schemars))]
pub fn derive_process(input: TokenStream) -> TokenStream {
    process::derive(input.into()).into()
}

/// `#[command(...)]` as an attribute: the derives of `#[derive(Command)]`.
#[proc_macro_attribute]
pub fn command(args: TokenStream, input: TokenStream) -> TokenStream {
    command::expand(args.into(), input.into()).into()
}

/// `#[reply]`: the derives of `#[derive(Payload)]`.
#[proc_macro_attribute]
pub fn reply(args: TokenStream, input: TokenStream) -> TokenStream {
    reply::expand(args.into(), input.into()).into()
}

/// `#[handler]`: the function plus its link-time registration.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, input: TokenStream) -> TokenStream {
    handler::expand(args.into(), input.into()).into()
}
