//! Console edits of real `roles.toml` files (the default folder and every example): random
//! sequences of cell changes keep every comment in order, build, and give each changed cell
//! exactly the access asked for; the reverse changes give every cell back.

use std::path::{Path, PathBuf};

use portcullis_engine::roles::edit::{apply, Access, Edit};
use portcullis_engine::{Cell, Snapshot, SourceLimits, SourceSet};
use proptest::prelude::*;

fn folders() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = vec![root.join("policies")];
    let mut examples: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("roles.toml").is_file())
        .collect();
    examples.sort();
    out.extend(examples);
    out
}

fn comments(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.find('#').map(|i| l[i..].trim()))
        .collect()
}

fn access_of(c: Cell) -> Access {
    match c {
        Cell::Yes => Access::Yes,
        Cell::Own => Access::Own,
        Cell::Addon => Access::Addon,
        Cell::No => Access::None,
    }
}

#[test]
fn random_cell_edits_keep_comments_build_and_hold_what_was_asked() {
    for folder in folders() {
        let sources = SourceSet::read(&folder, SourceLimits::default()).unwrap();
        let original = sources.roles.as_ref().unwrap().text.clone();
        let model = Snapshot::build(sources.clone()).unwrap();
        let model = model.model().unwrap();
        let roles: Vec<String> = model.roles.iter().map(|r| r.name.clone()).collect();
        let features: Vec<String> = model.features.iter().map(|f| f.name.clone()).collect();
        let accesses = [Access::Yes, Access::Own, Access::Addon, Access::None];
        let edit = (0..features.len(), 0..roles.len(), 0..accesses.len()).prop_map(|(f, r, a)| (f, r, a));
        let config = ProptestConfig {
            cases: 8,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(picks in proptest::collection::vec(edit, 1..6))| {
            let edits: Vec<Edit> = picks
                .iter()
                .map(|&(f, r, a)| Edit::Cell {
                    feature: features[f].clone(),
                    role: roles[r].clone(),
                    access: accesses[a],
                    account_type: None,
                })
                .collect();
            let text = apply(&original, &edits).unwrap();
            prop_assert_eq!(comments(&text), comments(&original), "{}", folder.display());
            let mut edited = sources.clone();
            if let Some(r) = edited.roles.as_mut() {
                r.text = text.clone();
            }
            let built = Snapshot::build(edited).map_err(|d| d.render_human("")).unwrap();
            let m = built.model().unwrap();
            // The last edit of each cell wins.
            for (i, &(f, r, a)) in picks.iter().enumerate() {
                if picks[i + 1..].iter().any(|&(f2, r2, _)| (f2, r2) == (f, r)) {
                    continue;
                }
                let feature = m.features.iter().find(|x| x.name == features[f]).unwrap();
                prop_assert_eq!(access_of(m.cell(&roles[r], feature)), accesses[a]);
            }
            // Putting every touched cell back restores the file exactly.
            let mut back = Vec::new();
            for &(f, r, _) in picks.iter().rev() {
                let feature = model.features.iter().find(|x| x.name == features[f]).unwrap();
                back.push(Edit::Cell {
                    feature: features[f].clone(),
                    role: roles[r].clone(),
                    access: access_of(model.cell(&roles[r], feature)),
                    account_type: None,
                });
            }
            let restored = apply(&text, &back).unwrap();
            let rebuilt = {
                let mut s = sources.clone();
                if let Some(r) = s.roles.as_mut() {
                    r.text = restored.clone();
                }
                Snapshot::build(s).unwrap()
            };
            for f in &model.features {
                let g = rebuilt.model().unwrap().features.iter().find(|x| x.name == f.name).unwrap();
                for r in &roles {
                    prop_assert_eq!(model.cell(r, f), rebuilt.model().unwrap().cell(r, g), "{} {}", f.name, r);
                }
            }
        });
    }
}
