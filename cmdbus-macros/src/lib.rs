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
mod payload;
mod reply;
mod shadow;
mod symbol;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Declares a struct or enum as a command: `#[derive(Command)]` with
/// `#[command(domain = "...", ...)]`.
///
/// Keys: `domain` (required), `name` (default: the type's name), `reply`
/// (default `()`), `max_attempts` (default 3), `backoff` (default
/// `["10s", "60s", "300s"]`), `manual_serde` (the type implements serde's
/// traits and `JsonSchema` itself). Generates the `cmdbus::Command` impl and,
/// unless `manual_serde`, `Serialize` / `Deserialize` / `JsonSchema` through
/// cmdbus's re-exports, honouring `#[serde]` and `#[schemars]` attributes.
/// Examples that compile: the `cmdbus::Command` trait's documentation.
#[proc_macro_derive(Command, attributes(command, serde, schemars))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    command::derive(input.into()).into()
}

/// Serialization and a JSON schema for a type carried inside commands or
/// replies (nested payload types, reply types), through cmdbus's re-exports:
/// `Serialize`, `Deserialize` and `JsonSchema`, honouring `#[serde]` and
/// `#[schemars]` attributes. Structs and enums; not unions or generic types.
///
/// ```ignore
/// #[derive(cmdbus::Payload)]
/// struct Address { city: String }
/// ```
#[proc_macro_derive(Payload, attributes(serde, schemars))]
pub fn derive_payload(input: TokenStream) -> TokenStream {
    payload::derive(input.into()).into()
}

/// The attribute form of `#[derive(Command)]`, kept as an alias. See `cmdbus::command`.
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
