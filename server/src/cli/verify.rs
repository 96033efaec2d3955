//! `portcullis verify`: prove the folder's properties (`properties/*.toml` and the built-in
//! ones) for every request; exit 0 when all are proved, 1 when one is refuted, 2 when the folder,
//! a property file or the solver cannot be used.

use std::time::Instant;

use clap::{Args, ValueEnum};
use portcullis_engine::properties;
use portcullis_server::verify::{self, Outcome, Verdict};

use super::{FolderArgs, EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Output formats of `portcullis verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum VerifyFormat {
    /// `proved` / `refuted` per property, each counterexample as a fixture file, the counts.
    #[default]
    Human,
    /// Every verdict as JSON.
    Json,
    /// JUnit XML for CI systems: one test case per property, a refuted one failing.
    Junit,
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
        properties::built_in(&snapshot)
    };
    match properties::load(&a.folder.folder, &snapshot) {
        Ok(mut written) => properties.append(&mut written),
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return EXIT_ERROR;
        }
    }
    let scratch = std::env::temp_dir().join(format!("portcullis-verify-{}", std::process::id()));
    let others = match load_others(&a.folder, &properties, &scratch) {
        Ok(o) => o,
        Err(m) => {
            eprintln!("error: {m}");
            let _ = std::fs::remove_dir_all(&scratch);
            return EXIT_ERROR;
        }
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let started = Instant::now();
    let verdicts = match verify::prove(&snapshot, &properties, &others) {
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
        VerifyFormat::Json => println!("{}", serde_json::to_string_pretty(&verdicts).unwrap_or_default()),
        VerifyFormat::Junit => print!("{}", junit(&verdicts, started.elapsed())),
    }
    if refuted > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// The other versions the properties compare with: `git:REV` is this folder at a git
/// revision, anything else a folder path relative to this one.
fn load_others(
    folder: &FolderArgs,
    properties: &[properties::Property],
    scratch: &std::path::Path,
) -> Result<verify::Others, String> {
    let mut others = verify::Others::new();
    for p in properties {
        let Some(name) = p.claim.other() else { continue };
        if others.contains_key(name) {
            continue;
        }
        let path = match name.strip_prefix("git:") {
            Some(rev) => super::diff::checkout(&folder.folder, rev, &scratch.join(others.len().to_string()))?,
            None => folder.folder.join(name),
        };
        let snapshot = FolderArgs {
            folder: path.clone(),
            error_format: folder.error_format,
        }
        .load()
        .map_err(|_| {
            format!(
                "{}: property `{}`: `{name}` does not load as a policy folder",
                p.source, p.name
            )
        })?;
        others.insert(name.to_owned(), snapshot);
    }
    Ok(others)
}

/// The JUnit report: one suite, one case per property; a refuted one fails with its
/// counterexample as the failure's text.
fn junit(verdicts: &[Verdict], took: std::time::Duration) -> String {
    use portcullis_engine::fixtures::xml;
    let failures = verdicts
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::Refuted { .. }))
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"portcullis verify\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        verdicts.len(),
        took.as_secs_f64()
    ));
    out.push_str(&format!(
        "  <testsuite name=\"properties\" tests=\"{}\" failures=\"{failures}\">\n",
        verdicts.len()
    ));
    for v in verdicts {
        let case = format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(&v.source),
            xml(&v.name)
        );
        match &v.outcome {
            Outcome::Proved => out.push_str(&format!("{case}/>\n")),
            Outcome::Refuted { counterexample: c } => out.push_str(&format!(
                "{case}>\n      <failure message=\"refuted: {} {} {} is {}\">{}</failure>\n    </testcase>\n",
                xml(&c.principal),
                xml(&c.action),
                xml(&c.resource),
                c.decision,
                xml(&c.fixture(&v.name))
            )),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
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
