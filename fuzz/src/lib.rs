//! Shared setup of the fuzz targets: the policy folders of the repository (the default
//! `policies/` and every `examples/*` folder), read and built once per process.
//!
//! Input: the folders at their paths in the repository (found from this crate's manifest
//! directory). Output: their `SourceSet`s, to rebuild with a fuzzed file swapped in, and their
//! `Snapshot`s, to decide fuzzed requests and fixtures against. A target picks a folder with
//! the first byte of its input ([`split`]), so one corpus covers every folder.

use std::path::PathBuf;
use std::sync::OnceLock;

use portcullis_engine::{Snapshot, SourceLimits, SourceSet};

/// The folders, in the order a selector byte indexes them.
pub const FOLDERS: [&str; 6] = [
    "policies",
    "examples/customs-portal",
    "examples/forwarding-portal",
    "examples/load-planner",
    "examples/service-portal",
    "examples/shipping-platform",
];

/// One folder, as read and as built.
#[derive(Debug)]
pub struct Folder {
    /// Its path relative to the repository root.
    pub name: &'static str,
    /// The files as read.
    pub sources: SourceSet,
    /// The snapshot they build.
    pub snapshot: Snapshot,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every folder of [`FOLDERS`], read and built on first use. A folder that does not build is
/// a broken checkout, not a finding, so it stops the run with its diagnostics.
pub fn folders() -> &'static [Folder] {
    static FOLDERS_CELL: OnceLock<Vec<Folder>> = OnceLock::new();
    FOLDERS_CELL.get_or_init(|| {
        FOLDERS
            .iter()
            .map(|name| {
                let path = repo_root().join(name);
                let sources = match SourceSet::read(&path, SourceLimits::default()) {
                    Ok(s) => s,
                    Err(d) => fail(name, &d.to_string()),
                };
                let snapshot = match Snapshot::build(sources.clone()) {
                    Ok(s) => s,
                    Err(d) => fail(name, &d.to_string()),
                };
                Folder {
                    name,
                    sources,
                    snapshot,
                }
            })
            .collect()
    })
}

fn fail(name: &str, why: &str) -> ! {
    eprintln!("fuzz setup: `{name}` does not build: {why}");
    std::process::exit(2)
}

/// Splits an input into the folder its first byte selects, the selector byte itself, and the
/// rest; `None` for an empty input.
pub fn split(data: &[u8]) -> Option<(&'static Folder, u8, &[u8])> {
    let (&first, rest) = data.split_first()?;
    let all = folders();
    Some((&all[usize::from(first) % all.len()], first, rest))
}
