//! `SourceSet`: the files of a policy folder, as read from disk, and their content hash.
//!
//! Input: a folder path. Output: the role definitions (`roles.toml`), the Cedar schema
//! (`schema.cedarschema`), every `*.cedar` file, and the fixture files under `fixtures/`, each
//! with its path relative to the folder. The policy version is a hash over the policy files
//! (not the fixtures), so editing a test never changes what is served.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics, Location};

/// Name of the role-definition file in a policy folder.
pub const ROLES_FILE: &str = "roles.toml";
/// Name of the Cedar schema file in a policy folder.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// Name of the fixtures sub-folder.
pub const FIXTURES_DIR: &str = "fixtures";

/// Limits on what a policy folder may hold, so a stray huge file cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: u64,
    /// Most files read from one folder.
    pub max_files: usize,
}

impl SourceLimits {
    /// 8 MiB per file.
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
    /// 10,000 files.
    pub const DEFAULT_MAX_FILES: usize = 10_000;
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            max_files: Self::DEFAULT_MAX_FILES,
        }
    }
}

/// One file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the folder, `/`-separated.
    pub path: String,
    /// The contents.
    pub text: String,
}

/// The files of one policy folder, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSet {
    /// The folder they were read from (empty for in-memory sets).
    pub root: PathBuf,
    /// `roles.toml`, when present.
    pub roles: Option<SourceFile>,
    /// `schema.cedarschema`.
    pub schema: Option<SourceFile>,
    /// Every `*.cedar` file, sorted by path.
    pub cedar: Vec<SourceFile>,
    /// Every `fixtures/**/*.toml` file, sorted by path.
    pub fixtures: Vec<SourceFile>,
}

impl SourceSet {
    /// Reads a folder. Unreadable or oversized files become diagnostics.
    pub fn read(root: &Path, limits: SourceLimits) -> Result<Self, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut set = SourceSet {
            root: root.to_path_buf(),
            ..Self::default()
        };
        if !root.is_dir() {
            diags.push(Diagnostic::error(
                "source::not-a-folder",
                format!("`{}` is not a policy folder", root.display()),
            ));
            return Err(diags);
        }
        let mut files = Vec::new();
        walk(root, root, &mut files, &mut diags);
        files.sort();
        if files.len() > limits.max_files {
            diags.push(Diagnostic::error(
                "source::too-many-files",
                format!(
                    "the folder holds {} files, more than the limit of {}",
                    files.len(),
                    limits.max_files
                ),
            ));
            return Err(diags);
        }
        for rel in files {
            let kind = classify(&rel);
            if kind == Kind::Other {
                continue;
            }
            let full = root.join(&rel);
            let size = fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
            if size > limits.max_file_bytes {
                diags.push(
                    Diagnostic::error(
                        "source::file-too-large",
                        format!(
                            "file is {size} bytes, more than the limit of {} bytes",
                            limits.max_file_bytes
                        ),
                    )
                    .at(Location::file_only(&rel)),
                );
                continue;
            }
            let text = match fs::read(&full) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => {
                        diags.push(
                            Diagnostic::error("source::not-utf8", "file is not valid UTF-8")
                                .at(Location::file_only(&rel)),
                        );
                        continue;
                    }
                },
                Err(e) => {
                    diags.push(
                        Diagnostic::error("source::unreadable", format!("cannot read file: {e}"))
                            .at(Location::file_only(&rel)),
                    );
                    continue;
                }
            };
            let file = SourceFile { path: rel, text };
            match kind {
                Kind::Roles => set.roles = Some(file),
                Kind::Schema => set.schema = Some(file),
                Kind::Cedar => set.cedar.push(file),
                Kind::Fixture => set.fixtures.push(file),
                Kind::Other => {}
            }
        }
        if diags.has_errors() {
            Err(diags)
        } else {
            Ok(set)
        }
    }

    /// The policy version: a hash of every policy file's path and contents (fixtures excluded).
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        for f in self.policy_files() {
            h.update(f.path.as_bytes());
            h.update([0]);
            h.update((f.text.len() as u64).to_le_bytes());
            h.update(f.text.as_bytes());
        }
        let digest = h.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Roles, schema and Cedar files, in a stable order.
    pub fn policy_files(&self) -> impl Iterator<Item = &SourceFile> {
        self.roles
            .iter()
            .chain(self.schema.iter())
            .chain(self.cedar.iter())
    }

    /// Finds a file of the set by its relative path.
    pub fn file(&self, path: &str) -> Option<&SourceFile> {
        self.policy_files()
            .chain(self.fixtures.iter())
            .find(|f| f.path == path)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Roles,
    Schema,
    Cedar,
    Fixture,
    Other,
}

fn classify(rel: &str) -> Kind {
    let in_fixtures = rel.starts_with(&format!("{FIXTURES_DIR}/"));
    if in_fixtures {
        return if rel.ends_with(".toml") {
            Kind::Fixture
        } else {
            Kind::Other
        };
    }
    if rel == ROLES_FILE {
        Kind::Roles
    } else if rel == SCHEMA_FILE {
        Kind::Schema
    } else if rel.ends_with(".cedar") {
        Kind::Cedar
    } else {
        Kind::Other
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, diags: &mut Diagnostics) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::error(
                "source::unreadable",
                format!("cannot read folder `{}`: {e}", dir.display()),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Editors leave swap and backup files beside the real ones; they are never policy.
        if name.starts_with('.') || name.ends_with('~') || name.starts_with('#') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk(root, &path, out, diags);
        } else if ft.is_file() || ft.is_symlink() {
            if let Ok(rel) = path.strip_prefix(root) {
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(rel.join("/"));
            }
        }
    }
}
