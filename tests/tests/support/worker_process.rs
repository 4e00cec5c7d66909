//! Starts `crash_worker` processes (serving domain `crash`) for the tests
//! that need workers in other processes.

use std::process::{Child, Command, Stdio};

/// A `crash_worker` process on `schema`.
pub(crate) fn spawn_worker(schema: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash_worker"))
        .arg(schema)
        .stdout(Stdio::null())
        .spawn()
        .expect("crash_worker starts")
}
