//! The `portcullis` command: check, test, decide and render policy folders.
//!
//! Exit codes: 0 ok, 1 a failed test case or a deny, 2 a usage or load error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ExitCode::from(cli.run())
}
