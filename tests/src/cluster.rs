//! A PostgreSQL cluster of the test's own, for faults that must not touch
//! the shared server: a restart, a stop (connections refused).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A throwaway cluster in a temporary directory, on a free local port,
/// built from the installed PostgreSQL binaries. Stopped and removed on drop.
pub struct PrivateCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Creates and starts the cluster.
    ///
    /// # Panics
    ///
    /// When no PostgreSQL binaries are installed or the cluster fails to start.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries under /usr/lib/postgresql")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an installed PostgreSQL version");
        let dir = std::env::temp_dir().join(crate::fresh_name());
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self { bin, dir, port };
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(&cluster.dir));
        }
        cluster.pg("initdb", &["-D", "data", "-U", "postgres", "--auth=trust", "-N"]);
        cluster.pg_ctl("start");
        cluster
    }

    /// A URL for the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is terminated, the server
    /// is down for a moment, then accepts connections again.
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    /// Stops the server: new connections are refused.
    pub fn stop(&self) {
        self.pg("pg_ctl", &["-D", "data", "-m", "fast", "-w", "stop"]);
    }

    /// Starts a stopped server again.
    pub fn resume(&self) {
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!("-p {} -k {} -h 127.0.0.1", self.port, self.dir.display());
        let log = self.dir.join("log");
        let log = log.to_str().expect("utf-8 path");
        self.pg("pg_ctl", &["-D", "data", "-m", "fast", "-w", "-l", log, "-o", &options, action]);
    }

    fn pg(&self, program: &str, args: &[&str]) {
        run(pg_command(&self.bin, program).args(args).current_dir(&self.dir));
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let stop = ["-D", "data", "-m", "immediate", "stop"];
        let _ = pg_command(&self.bin, "pg_ctl").args(stop).current_dir(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL program, run as the `postgres` user when we are root
/// (the server refuses to run as root).
fn pg_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn run(command: &mut Command) {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
