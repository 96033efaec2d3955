//! `portcullis explain`: why a request is allowed or denied; on a default deny, the permits
//! that came closest and which of their conditions failed. Exit 0 allow, 1 deny, 2 bad input.

use clap::{Args, ValueEnum};

use super::authorize::RequestArgs;
use super::{FolderArgs, EXIT_FAILED, EXIT_OK};

/// Output formats of `portcullis explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ExplainFormat {
    /// Sentences.
    #[default]
    Human,
    /// JSON.
    Json,
}

/// Arguments of `portcullis explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    folder: FolderArgs,
    #[command(flatten)]
    request: RequestArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: ExplainFormat,
}

pub fn run(a: ExplainArgs) -> u8 {
    let (snapshot, prepared, policies) = match super::authorize::load(&a.folder, &a.request) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let e = snapshot.explain_with(&prepared, &policies);
    match a.format {
        ExplainFormat::Human => print!("{}", e.render()),
        ExplainFormat::Json => println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default()),
    }
    if e.decision.allowed() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
