//! `portcullis verify` with the real cvc5 solver: every example folder's properties proved; a
//! wrong edit of each kind refuted with a counterexample that `portcullis test` decides as
//! claimed; bad property files and a missing solver are clear errors (exit 2). Without cvc5 on
//! the machine (`.ci/run` installs it) the tests that need it say loudly that they were skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{copy_dir, portal_folders, repo};
use crate::procs::BIN;

/// Whether the solver `portcullis verify` uses is on this machine.
fn solver() -> bool {
    let cmd = std::env::var("CVC5").unwrap_or_else(|_| "cvc5".to_owned());
    let found = Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: no cvc5 solver on this machine (apt-get install cvc5, as .ci/run does)");
    }
    found
}

/// `portcullis <args>`: exit code, stdout, stderr.
fn portcullis(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of `policies/` to edit.
fn copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    copy_dir(&repo().join("policies"), &folder);
    (dir, folder)
}

#[test]
fn every_example_folder_proves_its_properties() {
    if !solver() {
        return;
    }
    let folders: Vec<PathBuf> = portal_folders().iter().map(|f| repo().join(f)).collect();
    for folder in folders {
        let (code, out, err) = portcullis(&["verify", folder.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{}: {out}{err}", folder.display());
        assert!(out.contains("no request of any action errors"), "{out}");
        assert!(out.contains(" proved, 0 refuted"), "{out}");
    }
}

/// Verifies `folder` as JSON; answers the exit code and the verdicts.
fn verdicts(folder: &Path) -> (i32, Vec<Value>) {
    let (code, out, err) = portcullis(&["verify", folder.to_str().unwrap(), "--format", "json"], &[]);
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| format!("{e}: {out}{err}"))
        .unwrap();
    (code, v.as_array().unwrap().clone())
}

/// The refuted verdict of `name`, its counterexample saved as a fixture file of `folder`, which
/// `portcullis test` then runs: it passes (the folder decides as the counterexample says) and
/// fails once its expectation is flipped.
fn counterexample_decides_as_claimed(folder: &Path, verdicts: &[Value], name: &str, decision: &str) {
    let v = verdicts.iter().find(|v| v["name"] == name).unwrap();
    assert_eq!(v["outcome"], "refuted", "{v}");
    let c = &v["counterexample"];
    assert_eq!(c["decision"], decision, "{c}");
    // The human report prints the same case as a fixture file.
    let (_, out, _) = portcullis(&["verify", folder.to_str().unwrap()], &[]);
    let start = out.find(&format!("refuted  {name}")).unwrap();
    let fixture: String = out[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("  | ") || *l == "  |")
        .map(|l| l.strip_prefix("  | ").unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let file = folder.join("fixtures").join("counterexample.toml");
    // The case's own result (the edit may break other fixtures of the folder, as edits do).
    let case = |fixture: &str| {
        std::fs::write(&file, fixture).unwrap();
        let (_, out, err) = portcullis(&["test", folder.to_str().unwrap(), "--format", "json"], &[]);
        let report: Value = serde_json::from_str(&out)
            .map_err(|e| format!("{e}: {out}{err}"))
            .unwrap();
        let mine: Vec<Value> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["file"].as_str().unwrap().ends_with("counterexample.toml"))
            .cloned()
            .collect();
        assert_eq!(mine.len(), 1, "{fixture}\n{out}");
        mine[0].clone()
    };
    let result = case(&fixture);
    assert!(
        result["failure"].is_null(),
        "the counterexample decides as claimed: {result}\n{fixture}"
    );
    let other = if decision == "allow" { "deny" } else { "allow" };
    let flipped = fixture.replace(
        &format!("expect = \"{decision}\""),
        &format!("expect = \"{other}\""),
    );
    let result = case(&flipped);
    assert!(
        result["failure"]
            .as_str()
            .is_some_and(|f| f.contains(&format!("expected {other}, got {decision}"))),
        "{result}"
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_permit_that_widens_rights_is_refuted_with_a_counterexample_that_decides_as_claimed() {
    if !solver() {
        return;
    }
    let (_dir, folder) = copy();
    // An edit that lets anyone configure the theme. Deactivated users still may not: the
    // folder's forbid of them holds whatever is permitted, and verify proves it again.
    std::fs::write(
        folder.join("theme.cedar"),
        "@id(\"theme.anyone\")\npermit (principal, action == Portal::Action::\"theme.configure\", resource);\n",
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    assert_eq!(code, 1, "{v:?}");
    counterexample_decides_as_claimed(
        &folder,
        &v,
        "the theme is configured only by owners and admins",
        "allow",
    );
    let proved: Vec<&Value> = v
        .iter()
        .filter(|v| v["outcome"] == "proved")
        .map(|v| &v["name"])
        .collect();
    assert_eq!(
        proved.len(),
        v.len() - 1,
        "the other properties still hold: {v:?}"
    );
    assert!(
        proved.contains(&&Value::from("a deactivated user is denied everything")),
        "{v:?}"
    );
}

#[test]
fn always_and_never_errors_claims_are_refuted_when_false() {
    if !solver() {
        return;
    }
    let (_dir, folder) = copy();
    std::fs::write(
        folder.join("properties").join("claims.toml"),
        r#"
[[property]]
name = "viewers never configure settings"
actions = ["settings.configure"]
always = "deny"
assuming = "principal in Portal::Role::\"viewer\""

[[property]]
name = "everyone may read every shipment"
actions = ["shipment.read"]
always = "allow"

[[property]]
name = "themes never error"
actions = ["theme.configure"]
never_errors = true

[[property]]
name = "owners never configure the theme"
actions = ["theme.configure"]
always = "deny"
assuming = 'principal in Portal::Role::"owner"'
"#,
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    assert_eq!(code, 1, "{v:?}");
    let outcome = |name: &str| v.iter().find(|v| v["name"] == name).unwrap()["outcome"].clone();
    assert_eq!(outcome("viewers never configure settings"), "proved", "{v:?}");
    assert_eq!(outcome("themes never error"), "proved", "{v:?}");
    counterexample_decides_as_claimed(&folder, &v, "everyone may read every shipment", "deny");
    counterexample_decides_as_claimed(&folder, &v, "owners never configure the theme", "allow");

    // A policy that errors at run time (an overflow the validator cannot see) refutes the
    // built-in property.
    std::fs::write(
        folder.join("overflow.cedar"),
        "@id(\"overflow\")\npermit (principal, action == Portal::Action::\"theme.configure\", resource)\nwhen { 9223372036854775807 + 1 > 0 };\n",
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    assert_eq!(code, 1, "{v:?}");
    let built_in = v.iter().find(|v| v["source"] == "built-in").unwrap();
    assert_eq!(built_in["outcome"], "refuted", "{built_in}");
    assert_eq!(
        built_in["counterexample"]["errors"],
        serde_json::json!(["overflow"]),
        "{built_in}"
    );
    let themes = v.iter().find(|v| v["name"] == "themes never error").unwrap();
    assert_eq!(themes["outcome"], "refuted", "{themes}");
    // Cedar skips a policy that errors: the counterexample decides as the others say.
    let decision = themes["counterexample"]["decision"].as_str().unwrap().to_owned();
    counterexample_decides_as_claimed(&folder, &v, "themes never error", &decision);
}

#[test]
fn bad_property_files_and_a_missing_solver_are_clear_errors() {
    let (_dir, folder) = copy();
    let props = folder.join("properties").join("bad.toml");
    for (text, expected) in [
        (
            "[[property]]\nname = \"x\"\nactions = [\"shipment.raed\"]\nalways = \"deny\"\n",
            "properties/bad.toml:1:1: property `x`: unknown action `shipment.raed`; did you mean `shipment.read`?",
        ),
        (
            "[[property]]\nname = \"x\"\nalways = \"deny\"\nnever_errors = true\n",
            "expected exactly one claim",
        ),
        ("[[property]]\nname = \"x\"\nimplies = \"principal.\"\n", "`implies` is not a Cedar condition"),
        ("[[property]]\nname = \"x\"\nalways = \"sometimes\"\n", "properties/bad.toml:3:10: unknown variant `sometimes`"),
        ("[[property]]\nname = \"x\"\nprincipal = \"Robot\"\nalways = \"deny\"\n", "unknown principal type `Portal::Robot`"),
    ] {
        std::fs::write(&props, text).unwrap();
        let (code, out, err) = portcullis(&["verify", folder.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{text}: {out}{err}");
        assert!(err.contains(expected), "{text}: expected {expected:?} in {err}");
    }
    std::fs::remove_file(&props).unwrap();
    let (code, out, err) = portcullis(
        &["verify", folder.to_str().unwrap()],
        &[("CVC5", "/nonexistent/cvc5")],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("apt-get install cvc5") && err.contains("/nonexistent/cvc5"),
        "{err}"
    );
}

#[test]
fn a_role_given_rights_above_its_rank_breaks_the_built_in_properties() {
    if !solver() {
        return;
    }
    let (_dir, folder) = copy();
    // A hand-written permit that lets a viewer change anyone's role in its company.
    std::fs::write(
        folder.join("viewers.cedar"),
        "@id(\"viewers.set-role\")\npermit (principal in Portal::Role::\"viewer\", action == Portal::Action::\"user.set_role\", resource is Portal::User)\nwhen { resource in principal.company };\n",
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    assert_eq!(code, 1, "{v:?}");
    let name = "role viewer never gives a role ranked above it (owner, admin, operator, user, regular)";
    counterexample_decides_as_claimed(&folder, &v, name, "allow");
    let refuted: Vec<&Value> = v
        .iter()
        .filter(|v| v["outcome"] == "refuted")
        .map(|v| &v["name"])
        .collect();
    assert_eq!(
        refuted,
        [&Value::from(name)],
        "only the viewer's rank is broken: {v:?}"
    );
    assert!(
        v.iter().any(|v| v["source"] == "built-in, roles.toml"
            && v["name"]
                .as_str()
                .unwrap()
                .starts_with("Carrier users never hold")),
        "{v:?}"
    );

    // The same run as JUnit: one case per property, the refuted one failing.
    let (code, out, _) = portcullis(&["verify", folder.to_str().unwrap(), "--format", "junit"], &[]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("<?xml") && out.contains("<testsuites name=\"portcullis verify\""),
        "{out}"
    );
    assert_eq!(out.matches("<testcase ").count(), v.len(), "{out}");
    assert_eq!(out.matches("<failure message=\"refuted: ").count(), 1, "{out}");
}

#[test]
fn diff_prove_says_which_actions_an_edit_widened_or_narrowed() {
    if !solver() {
        return;
    }
    let (_dir, folder) = copy();
    let old = repo().join("policies");
    // Widened: anyone configures the theme. Narrowed: regular users no longer read shipments.
    std::fs::write(
        folder.join("edit.cedar"),
        "@id(\"theme.anyone\")\npermit (principal, action == Portal::Action::\"theme.configure\", resource);\n\
         @id(\"regulars.no-shipments\")\nforbid (principal in Portal::Role::\"regular\", action == Portal::Action::\"shipment.read\", resource);\n",
    )
    .unwrap();
    let (code, out, err) = portcullis(
        &[
            "diff",
            old.to_str().unwrap(),
            folder.to_str().unwrap(),
            "--prove",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    let rights = d["rights"].as_array().unwrap();
    let of = |action: &str| rights.iter().find(|r| r["action"] == action).unwrap();
    assert_eq!(of("theme.configure")["widened"]["decision"], "allow", "{out}");
    assert!(of("theme.configure")["narrowed"].is_null(), "{out}");
    assert_eq!(of("shipment.read")["narrowed"]["decision"], "deny", "{out}");
    assert!(of("shipment.read")["widened"].is_null(), "{out}");
    let changed: Vec<&Value> = rights
        .iter()
        .filter(|r| !r["widened"].is_null() || !r["narrowed"].is_null())
        .map(|r| &r["action"])
        .collect();
    assert_eq!(
        changed.len(),
        2,
        "every other action kept its rights: {changed:?}"
    );
    // The narrowing's counterexample is a request the old folder allowed: a regular user
    // reading a shipment it may see.
    let x = &of("shipment.read")["narrowed"];
    assert!(
        x["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["uid"]["type"] == "Portal::Shipment"),
        "{x}"
    );

    let (code, out, _) = portcullis(
        &[
            "diff",
            old.to_str().unwrap(),
            folder.to_str().unwrap(),
            "--prove",
            "--exit-code",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("  widened  theme.configure: ") && out.contains("  narrowed shipment.read: "),
        "{out}"
    );
    assert!(out.contains("2 actions changed, "), "{out}");
    // No edit, nothing proved changed.
    let (code, out, _) = portcullis(
        &[
            "diff",
            old.to_str().unwrap(),
            old.to_str().unwrap(),
            "--prove",
            "--exit-code",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 actions changed"), "{out}");
}

/// Whether `set` allows a request over `entities` (Cedar's own authorizer), and whether any
/// of its policies errored on it.
fn allows(
    set: &cedar_policy::PolicySet,
    request: &cedar_policy::Request,
    entities: &cedar_policy::Entities,
) -> (bool, bool) {
    let r = cedar_policy::Authorizer::new().is_authorized(request, set, entities);
    let errored = r.diagnostics().errors().next().is_some();
    (r.decision() == cedar_policy::Decision::Allow, errored)
}

/// A one-permit policy set of a condition, as the prover writes it.
fn permit_when(cond: &str) -> cedar_policy::PolicySet {
    portcullis_engine::properties::condition(cond).unwrap()
}

/// What the solver proved, checked against concrete decisions: every property proved on every
/// folder holds on the requests the folder's fixture worlds can make of its request kinds
/// (principals and resources of the right types in each fixture file's entities, with an empty
/// context where the action's context allows one). The same semantics as the prover's:
/// `implies` is "the folder allows ⇒ the condition allows", evaluated by Cedar's authorizer.
/// Each request kind of each fixture file takes every `stride`-th of its principal and
/// resource pairs: 7 here, 1 (all, about 1.5 million pairs) with `PORTCULLIS_VERIFY_ALL=1`.
#[test]
fn proved_properties_hold_on_every_request_of_the_fixture_worlds() {
    if !solver() {
        return;
    }
    use portcullis_engine::properties::{self, Always, Claim};
    let folders: Vec<PathBuf> = portal_folders().iter().map(|f| repo().join(f)).collect();
    let stride = if std::env::var_os("PORTCULLIS_VERIFY_ALL").is_some() {
        1
    } else {
        7
    };
    let mut checked = 0usize;
    let mut contradictions = Vec::new();
    for folder in folders {
        let snapshot = portcullis_engine::load(&folder).unwrap();
        let mut props = properties::built_in(&snapshot);
        props.extend(properties::load(&folder, &snapshot).unwrap());
        let verdicts = portcullis_server::verify::prove(&snapshot, &props, &Default::default()).unwrap();
        let schema = snapshot.schema();
        let policies = snapshot.policy_set();
        // Per proved property and request kind, the policy set its claim is checked against.
        let mut claims: std::collections::HashMap<(usize, String), cedar_policy::PolicySet> =
            Default::default();
        for file in &snapshot.sources().fixtures {
            let Ok((entities, _)) = portcullis_engine::fixtures::environment(&snapshot, &file.path) else {
                continue;
            };
            for env in schema.request_envs() {
                let of = |ty: &cedar_policy::EntityTypeName| -> Vec<cedar_policy::EntityUid> {
                    entities
                        .iter()
                        .filter(|e| e.uid().type_name() == ty)
                        .map(|e| e.uid())
                        .collect()
                };
                let pairs: Vec<(cedar_policy::EntityUid, cedar_policy::EntityUid)> = of(env.principal())
                    .into_iter()
                    .flat_map(|p| of(env.resource()).into_iter().map(move |r| (p.clone(), r)))
                    .step_by(stride)
                    .collect();
                let kind = format!("{} {} {}", env.principal(), env.action(), env.resource());
                {
                    for (principal, resource) in pairs {
                        let Ok(request) = cedar_policy::Request::new(
                            principal.clone(),
                            env.action().clone(),
                            resource.clone(),
                            cedar_policy::Context::empty(),
                            Some(schema),
                        ) else {
                            continue;
                        };
                        let (allowed, errored) = allows(policies, &request, &entities);
                        for (i, (p, v)) in props.iter().zip(&verdicts).enumerate() {
                            // Claims against another version have nothing to decide here.
                            if v.outcome.is_refuted() || !p.envs.contains(&env) || p.claim.other().is_some() {
                                continue;
                            }
                            let set = claims.entry((i, kind.clone())).or_insert_with(|| {
                                let assumed = properties::assumptions(&snapshot, &env, &p.assuming);
                                let a = assumed.as_deref().unwrap_or("true");
                                match &p.claim {
                                    Claim::NeverErrors => cedar_policy::PolicySet::new(),
                                    Claim::Always(Always::Allow) => permit_when(a),
                                    Claim::Always(Always::Deny) => permit_when(&format!("!({a})")),
                                    Claim::Implies(c) => permit_when(&format!("!({a}) || ({c})")),
                                    // Compared with another version: none in the folders here.
                                    Claim::NoWiderThan(_) | Claim::EquivalentTo(_) => {
                                        cedar_policy::PolicySet::new()
                                    }
                                }
                            });
                            let holds = match &p.claim {
                                Claim::NeverErrors => !errored,
                                // The assumptions allow ⇒ the folder allows.
                                Claim::Always(Always::Allow) => {
                                    !allows(set, &request, &entities).0 || allowed
                                }
                                // The folder allows ⇒ the condition allows.
                                _ => !allowed || allows(set, &request, &entities).0,
                            };
                            checked += 1;
                            if !holds {
                                contradictions.push(format!("{}: {}: {request}", folder.display(), p.name));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("verify differential: {checked} (request, proved property) pairs decided by Cedar");
    assert!(contradictions.is_empty(), "{contradictions:#?}");
    assert!(checked > 100_000 / stride, "only {checked} pairs checked");
}

/// `git` in `dir`, failing loudly.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_edit_is_proved_no_wider_than_the_released_revision_or_refuted() {
    if !solver() {
        return;
    }
    let (dir, folder) = copy();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "released"]);
    // Against the released revision and a copy of it beside the folder.
    copy_dir(&folder, &dir.path().join("released"));
    std::fs::write(
        folder.join("properties").join("releases.toml"),
        r#"
[[property]]
name = "the theme is given to nobody the release did not give it to"
actions = ["theme.configure"]
no_wider_than = "git:HEAD"

[[property]]
name = "shipments are read exactly as in the released folder"
actions = ["shipment.read"]
equivalent_to = "../released"
"#,
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    assert_eq!(
        code, 0,
        "an unchanged folder is proved equal to its release: {v:?}"
    );
    // Widen the theme and narrow the shipments: both claims are refuted, each with a request
    // the folder now decides otherwise.
    std::fs::write(
        folder.join("edit.cedar"),
        "@id(\"theme.anyone\")\npermit (principal, action == Portal::Action::\"theme.configure\", resource);\n\
         @id(\"regulars.no-shipments\")\nforbid (principal in Portal::Role::\"regular\", action == Portal::Action::\"shipment.read\", resource);\n",
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    assert_eq!(code, 1, "{v:?}");
    counterexample_decides_as_claimed(
        &folder,
        &v,
        "the theme is given to nobody the release did not give it to",
        "allow",
    );
    counterexample_decides_as_claimed(
        &folder,
        &v,
        "shipments are read exactly as in the released folder",
        "deny",
    );
    // A narrowing is no widening.
    std::fs::write(
        folder.join("edit.cedar"),
        "@id(\"regulars.no-shipments\")\nforbid (principal in Portal::Role::\"regular\", action == Portal::Action::\"shipment.read\", resource);\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("properties").join("releases.toml"),
        "[[property]]\nname = \"shipments are read by no one more\"\nactions = [\"shipment.read\"]\nno_wider_than = \"git:HEAD\"\n",
    )
    .unwrap();
    let (code, v) = verdicts(&folder);
    let shipments = v
        .iter()
        .find(|v| v["name"] == "shipments are read by no one more")
        .unwrap();
    assert_eq!(shipments["outcome"], "proved", "{v:?}");
    assert_eq!(code, 0, "{v:?}");
    // A revision that does not exist is a clear error.
    std::fs::write(
        folder.join("properties").join("releases.toml"),
        "[[property]]\nname = \"x\"\nno_wider_than = \"git:no-such-tag\"\n",
    )
    .unwrap();
    let (code, out, err) = portcullis(&["verify", folder.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no-such-tag"), "{err}");
}
