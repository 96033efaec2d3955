//! What an edit changes: every matrix cell and every fixture outcome that differs between two
//! builds of a policy folder, so a pull request shows what it does to real users' rights.
//!
//! Input: the old and the new snapshot. The fixtures of both folders (by path; the new copy of
//! a file wins) are run against both snapshots, and the outcomes compared case by case; the
//! two role models' matrices are compared cell by cell. Output: a `Diff`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::decide::Outcome;
use crate::fixtures;
use crate::matrix::Matrix;
use crate::snapshot::Snapshot;
use crate::source::SourceFile;

/// One matrix cell that changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CellChange {
    /// Account type (`*` without account types, `groups` for permission groups).
    pub account_type: String,
    /// Role or permission group.
    pub role: String,
    /// Feature.
    pub feature: String,
    /// Before (`absent` when the row or column did not exist).
    pub old: String,
    /// After.
    pub new: String,
}

/// One fixture request whose outcome changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutcomeChange {
    /// Fixture file.
    pub file: String,
    /// Case name.
    pub name: String,
    /// Outcome under the old policies (`None`: could not be asked).
    pub old: Option<Outcome>,
    /// Outcome under the new policies.
    pub new: Option<Outcome>,
}

/// The changes between two builds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Diff {
    /// Old version.
    pub old_version: String,
    /// New version.
    pub new_version: String,
    /// Matrix cells that changed.
    pub cells: Vec<CellChange>,
    /// Fixture outcomes that changed.
    pub outcomes: Vec<OutcomeChange>,
    /// Fixture sets that could not be run against one side, and why.
    pub notes: Vec<String>,
}

impl Diff {
    /// True when nothing a user could notice changed.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.outcomes.is_empty()
    }

    /// Readable text.
    pub fn render(&self) -> String {
        let mut out = format!("policy version {} -> {}\n", self.old_version, self.new_version);
        if self.cells.is_empty() {
            out.push_str("matrix: no cell changed\n");
        } else {
            let _ = writeln!(out, "matrix: {} cells changed", self.cells.len());
            for c in &self.cells {
                let _ = writeln!(
                    out,
                    "  {}/{}/{}: {} -> {}",
                    c.account_type, c.role, c.feature, c.old, c.new
                );
            }
        }
        if self.outcomes.is_empty() {
            out.push_str("fixtures: no outcome changed\n");
        } else {
            let _ = writeln!(out, "fixtures: {} outcomes changed", self.outcomes.len());
            for o in &self.outcomes {
                let _ = writeln!(
                    out,
                    "  {}: {}: {} -> {}",
                    o.file,
                    o.name,
                    show(o.old),
                    show(o.new)
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

fn show(o: Option<Outcome>) -> &'static str {
    o.map_or("error", Outcome::as_str)
}

/// Compares two builds.
pub fn compare(old: &Snapshot, new: &Snapshot) -> Diff {
    let mut diff = Diff {
        old_version: old.version().to_owned(),
        new_version: new.version().to_owned(),
        ..Diff::default()
    };
    diff.cells = cells(old, new);

    // The union of both folders' fixture files; the new copy of a file wins.
    let mut files: BTreeMap<String, SourceFile> = BTreeMap::new();
    for f in old.sources().fixtures.iter().chain(&new.sources().fixtures) {
        files.insert(f.path.clone(), f.clone());
    }
    let files: Vec<SourceFile> = files.into_values().collect();
    let run =
        |s: &Snapshot, side: &str, notes: &mut Vec<String>| -> BTreeMap<(String, String), Option<Outcome>> {
            match fixtures::run_files(s, &files) {
                Ok(r) => r
                    .results
                    .into_iter()
                    .map(|c| ((c.file, c.name), c.actual))
                    .collect(),
                Err(d) => {
                    notes.push(format!(
                        "the fixtures do not load against the {side} policies: {d}"
                    ));
                    BTreeMap::new()
                }
            }
        };
    let before = run(old, "old", &mut diff.notes);
    let after = run(new, "new", &mut diff.notes);
    if !before.is_empty() && !after.is_empty() {
        for (key, new_outcome) in &after {
            let old_outcome = before.get(key).copied().flatten();
            if before.contains_key(key) && old_outcome != *new_outcome {
                diff.outcomes.push(OutcomeChange {
                    file: key.0.clone(),
                    name: key.1.clone(),
                    old: old_outcome,
                    new: *new_outcome,
                });
            }
        }
    }
    diff
}

fn cells(old: &Snapshot, new: &Snapshot) -> Vec<CellChange> {
    let flat = |s: &Snapshot| -> BTreeMap<(String, String, String), String> {
        let mut m = BTreeMap::new();
        if let Some(model) = s.model() {
            for t in Matrix::of(model).tables {
                for r in &t.rows {
                    for (col, c) in t.columns.iter().zip(&r.cells) {
                        m.insert(
                            (t.account_type.clone(), col.clone(), r.feature.clone()),
                            c.label(),
                        );
                    }
                }
            }
        }
        m
    };
    let (a, b) = (flat(old), flat(new));
    let mut keys: Vec<&(String, String, String)> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let absent = "absent".to_owned();
    keys.into_iter()
        .filter_map(|k| {
            let (o, n) = (a.get(k).unwrap_or(&absent), b.get(k).unwrap_or(&absent));
            (o != n).then(|| CellChange {
                account_type: k.0.clone(),
                role: k.1.clone(),
                feature: k.2.clone(),
                old: o.clone(),
                new: n.clone(),
            })
        })
        .collect()
}
