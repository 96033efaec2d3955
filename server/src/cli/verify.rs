//! `portcullis verify`: prove the folder's properties (`properties/*.toml` and the built-in
//! ones) for every request; exit 0 when all are proved, 1 when one is refuted, 2 when the folder,
//! a property file or the solver cannot be used.

use std::time::Instant;

use clap::{Args, ValueEnum};
use portcullis_server::verify::{self, Outcome, Verdict};

use super::migrate::block_on;
use super::{FolderArgs, EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Output formats of `portcullis verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum VerifyFormat {
    /// `proved` / `refuted` per property, each counterexample as a fixture file, the counts.
    #[default]
    Human,
    /// Every verdict as JSON.
    Json,
}

/// Arguments of `portcullis verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    folder: FolderArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: VerifyFormat,
    /// Leave out the built-in properties (no request of any action errors).
    #[arg(long)]
    no_built_in: bool,
}

pub fn run(a: VerifyArgs) -> u8 {
    let snapshot = match a.folder.load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut properties = if a.no_built_in {
        Vec::new()
    } else {
        verify::built_in(&snapshot)
    };
    match verify::load(&a.folder.folder, &snapshot) {
        Ok(mut written) => properties.append(&mut written),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    }
    let started = Instant::now();
    block_on(async move {
        let verdicts = match verify::prove(&snapshot, &properties).await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_ERROR;
            }
        };
        let refuted = verdicts
            .iter()
            .filter(|v| matches!(v.outcome, Outcome::Refuted { .. }))
            .count();
        match a.format {
            VerifyFormat::Human => print!("{}", render(&verdicts, started.elapsed())),
            VerifyFormat::Json => {
                println!("{}", serde_json::to_string_pretty(&verdicts).unwrap_or_default())
            }
        }
        if refuted > 0 {
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    })
}

/// The human report: one line per property, each counterexample as a fixture file.
fn render(verdicts: &[Verdict], took: std::time::Duration) -> String {
    let mut out = String::new();
    let mut refuted = 0;
    for v in verdicts {
        match &v.outcome {
            Outcome::Proved => out.push_str(&format!(
                "proved   {} ({}, {} request kinds)\n",
                v.name, v.source, v.request_kinds
            )),
            Outcome::Refuted { counterexample: c } => {
                refuted += 1;
                out.push_str(&format!(
                    "refuted  {} ({}): {} {} {} is {}\n",
                    v.name, v.source, c.principal, c.action, c.resource, c.decision
                ));
                out.push_str("  counterexample, as a fixture file for `fixtures/`:\n");
                for line in c.fixture(&v.name).lines() {
                    out.push_str(&format!("  | {line}\n"));
                }
            }
        }
    }
    out.push_str(&format!(
        "{} proved, {refuted} refuted in {:.1} s\n",
        verdicts.len() - refuted,
        took.as_secs_f64()
    ));
    out
}
