//! `cmdbus`: the operator CLI.
//!
//! Exit codes: 0 success; 2 bad arguments; 3 refused (not found, not in the
//! troubleshooting queue, invalid input); 4 database unreachable or failing;
//! 5 schema missing or at a version this CLI cannot use.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod batches;
mod output;
mod processes;
mod run;
mod types;
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
    let json = cli.json;
    match runtime.block_on(run::run(cli, Duration::from_secs(5))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_closed_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                causes.push(cause.to_string());
                source = cause.source();
            }
            let code = error.exit_code();
            if json {
                let report = serde_json::json!({
                    "error": error.to_string(),
                    "causes": causes,
                    "exit_code": code,
                    "meaning": meaning(code),
                });
                eprintln!("{report}");
            } else {
                eprintln!("error: {error}");
                for cause in causes {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::from(code)
        }
    }
}

/// What an exit code means, for `--json` error reports.
fn meaning(code: u8) -> &'static str {
    match code {
        2 => "bad arguments",
        3 => "refused",
        4 => "database unreachable or failing",
        5 => "schema missing or at an unsupported version",
        _ => "failed",
    }
}
