//! Shared helpers: where the default policy folder is, and writable copies of policy folders in
//! temporary directories so a test can make one broken edit and load the result.
//!
//! The diagnostics snapshots start from `data/policies/`, a frozen copy of the default
//! `policies/` folder: snapshots hold line numbers and source lines, so they must not move
//! each time a product owner edits the live folder. Refresh the copy (and review the
//! snapshots) when the engine's diagnostics change, not when the policies do.

use std::fs;
use std::path::{Path, PathBuf};

use portcullis_engine::Diagnostics;
use tempfile::TempDir;

/// The default policy folder of the workspace (`policies/`).
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// The frozen copy of the default folder the diagnostics tests edit (`data/policies/`).
pub fn frozen_policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/data/policies")
}

/// A policy folder in a temporary directory, deleted when dropped.
pub struct Folder {
    dir: TempDir,
}

impl Folder {
    /// An empty folder.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of the frozen default folder (`data/policies/`), fixtures included.
    pub fn copy_of_policies() -> Self {
        Self::copy_of(&frozen_policies_dir())
    }

    /// A copy of the live default folder (`policies/`), fixtures included.
    pub fn copy_of_live_policies() -> Self {
        Self::copy_of(&policies_dir())
    }

    /// A copy of any folder.
    pub fn copy_of(from: &Path) -> Self {
        let f = Self::empty();
        copy_dir(from, f.path());
        f
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The contents of a file of the folder.
    pub fn read(&self, file: &str) -> String {
        fs::read_to_string(self.path().join(file)).unwrap()
    }

    /// Writes a file of the folder, creating sub-folders as needed.
    pub fn write(&self, file: &str, text: &str) {
        let path = self.path().join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, text).unwrap();
    }

    /// Replaces the first occurrence of `from` in a file; the edit must apply.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert!(
            text.contains(from),
            "`{from}` does not occur in {file}, so the edit would test nothing"
        );
        self.write(file, &text.replacen(from, to, 1));
    }

    /// Appends text to a file.
    pub fn append(&self, file: &str, text: &str) {
        let mut old = self.read(file);
        old.push_str(text);
        self.write(file, &old);
    }

    /// Deletes a file.
    pub fn remove(&self, file: &str) {
        fs::remove_file(self.path().join(file)).unwrap();
    }

    /// Loads the folder, which must fail, and returns its diagnostics.
    pub fn load_err(&self) -> Diagnostics {
        match portcullis_engine::load(self.path()) {
            Ok(_) => panic!("the edited folder loaded, but it should not"),
            Err(d) => d,
        }
    }

    /// Loads the folder, which must succeed.
    pub fn load(&self) -> portcullis_engine::Snapshot {
        match portcullis_engine::load(self.path()) {
            Ok(s) => s,
            Err(d) => panic!("the folder does not load:\n{}", d.render_human("policies")),
        }
    }

    /// Renders diagnostics as `portcullis check policies` would, and makes sure no temporary
    /// path leaks into the output (snapshots must be the same on every machine).
    pub fn render(&self, d: &Diagnostics) -> String {
        let out = d.render_human("policies");
        self.assert_no_temp_path(&out);
        out
    }

    /// Renders diagnostics as JSON with the root `policies`.
    pub fn render_json(&self, d: &Diagnostics) -> String {
        let out = d.render_json("policies");
        self.assert_no_temp_path(&out);
        out
    }

    fn assert_no_temp_path(&self, out: &str) {
        let tmp = self.path().to_string_lossy();
        assert!(!out.contains(tmp.as_ref()), "temp path in output:\n{out}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}
