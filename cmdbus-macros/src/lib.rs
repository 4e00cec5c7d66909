//! Procedural macros for [cmdbus](https://docs.rs/cmdbus). Use them through
//! the `cmdbus` crate (`cmdbus::command`, `cmdbus::handler`), never directly:
//! the generated code names `::cmdbus` paths only.
//!
//! Each macro is a thin entry point: parse the input into a typed view,
//! validate it (collecting every mistake at once), then expand. On error the
//! user's item is still emitted so that one mistake does not cascade.

mod command;
mod errors;
mod handler;
mod names;
mod reply;
mod symbol;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Declares a struct or enum as a command. See `cmdbus::command`.
#[proc_macro_attribute]
pub fn command(args: TokenStream, input: TokenStream) -> TokenStream {
    command::expand(args.into(), input.into()).into()
}

/// Derives serialization and a JSON schema for a reply type, through
/// cmdbus's re-exports (no direct serde or schemars dependency needed).
#[proc_macro_attribute]
pub fn reply(args: TokenStream, input: TokenStream) -> TokenStream {
    reply::expand(args.into(), input.into()).into()
}

/// Registers an async function as the handler of a command. See `cmdbus::handler`.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, input: TokenStream) -> TokenStream {
    handler::expand(args.into(), input.into()).into()
}
