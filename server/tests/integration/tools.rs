//! The product owner's tools on the example folders, pinned by snapshots: `explain` (allow,
//! forbid, and a default deny explained by the nearest permits), `what-can` and `diff`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Runs `portcullis` in the examples folder; returns (exit code, stdout).
fn portcullis(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(examples())
        .output()
        .expect("portcullis runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty() || out.status.code() != Some(2),
        "{stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn explain_a_default_deny_by_the_nearest_permits() {
    // A Planner without the add-on: the role grant and the add-on grant both came close.
    let (code, out) = portcullis(&[
        "explain",
        "load-planner",
        "--fixture",
        "fixtures/common.toml",
        "--principal",
        "pia",
        "--action",
        "cargo.edit",
        "--resource",
        "Portal::Cargo::\"hl-cargo\"",
    ]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(out);
}

#[test]
fn explain_a_deny_by_a_forbid() {
    let (code, out) = portcullis(&[
        "explain",
        "load-planner",
        "--fixture",
        "fixtures/common.toml",
        "--principal",
        "ivy",
        "--action",
        "loadlist.edit",
        "--resource",
        "Portal::LoadList::\"hl-ll\"",
    ]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(out);
}

#[test]
fn explain_an_allow_as_json() {
    let (code, out) = portcullis(&[
        "explain",
        "load-planner",
        "--fixture",
        "fixtures/common.toml",
        "--principal",
        "addie",
        "--action",
        "cargo.edit",
        "--resource",
        "Portal::Cargo::\"hl-cargo\"",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["decision"], "allow");
    insta::assert_snapshot!(v["summary"].as_str().unwrap());
}

#[test]
fn what_can_lists_actions_and_features() {
    let (code, out) = portcullis(&[
        "what-can",
        "load-planner",
        "--fixture",
        "fixtures/common.toml",
        "--principal",
        "addie",
        "--resource",
        "Portal::Cargo::\"hl-cargo\"",
    ]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

#[test]
fn diff_shows_cells_and_outcomes_an_edit_changes() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("load-planner");
    crate::common::copy_dir(&examples().join("load-planner"), &new);
    // The edit: Editors lose the Cargo Editor permission they held by role.
    let roles = std::fs::read_to_string(new.join("roles.toml")).unwrap();
    let start = roles.find("[features.cargo_editor]").unwrap();
    let line = roles[start..].find("\nroles = ").unwrap() + start + 1;
    let end = roles[line..].find('\n').unwrap() + line;
    let edited = format!(
        "{}roles = [\"administrator\", \"developer\"]{}",
        &roles[..line],
        &roles[end..]
    );
    std::fs::write(new.join("roles.toml"), edited).unwrap();

    let (code, out) = portcullis(&["diff", "load-planner", new.to_str().unwrap(), "--exit-code"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("standard/editor/cargo_editor: yes -> -"), "{out}");
    insta::assert_snapshot!(out);

    let (code, out) = portcullis(&["diff", "load-planner", "load-planner", "--exit-code"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("matrix: no cell changed\nfixtures: no outcome changed\n"),
        "{out}"
    );
}

#[test]
fn what_can_on_a_resource_type_answers_for_a_new_record() {
    let ask = |who: &str| {
        let (code, out) = portcullis(&[
            "what-can",
            "load-planner",
            "--fixture",
            "fixtures/common.toml",
            "--principal",
            who,
            "--resource-type",
            "Portal::Cargo",
        ]);
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["allowed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // A Planner with the Cargo Editor add-on may create cargo; one without may not.
    assert_eq!(ask("addie"), ["cargo.edit", "library.read"]);
    assert_eq!(ask("pia"), ["library.read"]);
}
