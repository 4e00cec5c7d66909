//! Starts `crash_worker` processes (serving domain `crash`) for the tests
//! that need workers in other processes.

use std::{
    ops::{Deref, DerefMut},
    process::{Child, Command, Stdio},
};

/// A `crash_worker` process, killed when dropped: a test that fails
/// half-way leaves no worker running against its (dropped) schema, where
/// its locks would hold up the sweep of the next run.
pub(crate) struct WorkerProcess(Child);

impl Deref for WorkerProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for WorkerProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Already killed and reaped on the normal path: nothing to do then.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A `crash_worker` process on `schema`.
pub(crate) fn spawn_worker(schema: &str) -> WorkerProcess {
    WorkerProcess(
        Command::new(env!("CARGO_BIN_EXE_crash_worker"))
            .arg(schema)
            .stdout(Stdio::null())
            .spawn()
            .expect("crash_worker starts"),
    )
}
