//! `cmdbus`: the operator CLI.
//!
//! Exit codes: 0 success; 2 bad arguments; 3 refused (not found, not in the
//! troubleshooting queue, invalid input); 4 database unreachable or failing;
//! 5 schema missing or at a version this CLI cannot use.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod output;
mod run;
mod when;

use std::{process::ExitCode, time::Duration};

use clap::Parser;

use crate::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::from(1);
            }
        };
    match runtime.block_on(run::run(cli, Duration::from_secs(5))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(error.exit_code())
        }
    }
}
