//! Compile-fail and compile-pass cases for the macros and the typed API.
//! Each `.stderr` is blessed on the pinned toolchain (`rust-toolchain.toml`):
//! `TRYBUILD=overwrite cargo test -p cmdbus-tests --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*/fail/*.rs");
    cases.pass("ui/*/pass/*.rs");
}
