//! Runnable cmdbus scenarios; see `examples/`. Run one with
//! `cargo run -p cmdbus-examples --example demo`.
