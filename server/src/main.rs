//! The `portcullis` command: check, test, decide and render policy folders.
//!
//! Exit codes: 0 ok, 1 a failed test case or a deny, 2 a usage or load error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not the system's allocator: a decision allocates and frees many small objects
/// (Cedar's entities and values, the request's JSON), which glibc's malloc serves at about
/// twice the cost (`server/benches/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ExitCode::from(cli.run())
}
