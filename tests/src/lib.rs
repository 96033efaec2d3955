//! Shared test harness: where the workspace's policy folders are, and copies of them to edit.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every policy folder shipped in the repository: `policies/` and each `examples/*/` that
/// holds a schema.
pub fn policy_folders() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut out = vec![root.join("policies")];
    if let Ok(entries) = fs::read_dir(root.join("examples")) {
        let mut examples: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join(portcullis_engine::SCHEMA_FILE).is_file())
            .collect();
        examples.sort();
        out.extend(examples);
    }
    out
}

/// Copies a folder tree (files and sub-folders) to `to`.
pub fn copy_folder(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_folder(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
