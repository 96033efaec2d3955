//! `portcullis test`: run a folder's fixtures; exit 1 on a failed case, 2 on a load error.

use clap::{Args, ValueEnum};
use portcullis_engine::fixtures;

use super::{root_name, FolderArgs, EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Output formats of `portcullis test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TestFormat {
    /// Failures, coverage and `N passed, N failed`.
    #[default]
    Human,
    /// Every result and the coverage as JSON.
    Json,
    /// JUnit XML for CI systems.
    Junit,
}

/// Arguments of `portcullis test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    folder: FolderArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: TestFormat,
    /// List passing cases too.
    #[arg(short, long)]
    verbose: bool,
    /// Fail (exit 1) when a policy or matrix cell is not exercised by any case.
    #[arg(long)]
    require_coverage: bool,
}

pub fn run(a: TestArgs) -> u8 {
    let snapshot = match a.folder.load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let report = match fixtures::run(&snapshot) {
        Ok(r) => r,
        Err(d) => {
            eprint!("{}", a.folder.render(&d));
            return EXIT_ERROR;
        }
    };
    let root = root_name(&a.folder.folder);
    match a.format {
        TestFormat::Human => print!("{}", report.render_human(&root, a.verbose)),
        TestFormat::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        TestFormat::Junit => print!("{}", report.render_junit(&root)),
    }
    let uncovered =
        !report.coverage.unexercised_policies.is_empty() || !report.coverage.unexercised_cells.is_empty();
    if report.failed() > 0 || (a.require_coverage && uncovered) {
        EXIT_FAILED
    } else if report.results.is_empty() {
        eprintln!("error: no fixture cases found under `{root}/fixtures`");
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
