//! Runnable cmdbus scenarios; see `examples/`. Run one with
//! `cargo run -p cmdbus-examples --example demo`.

// README's quickstart compiles as a doc test here: this crate has no serde,
// schemars or inventory dependency, which is what the quickstart promises.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeQuickstart;
