//! The `portcullis` command end to end: exit codes, stdout and stderr of check, test,
//! authorize, matrix and schema on the default policies and on broken copies of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn run(args: &[&str], cwd: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("portcullis runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the default policies in a temp dir, as `policies/` so messages name it.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    crate::common::copy_dir(&policies(), &folder);
    (dir, folder)
}

#[test]
fn check_accepts_the_default_policies() {
    let (dir, _) = scratch();
    let out = run(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(stdout.contains("compiled from roles.toml"), "{stdout}");
}

#[test]
fn check_reports_every_error_with_location_and_exits_2() {
    let (dir, folder) = scratch();
    let roles = std::fs::read_to_string(folder.join("roles.toml")).unwrap();
    let roles = roles.replacen(
        "manages = [\"admin\", \"regular\", \"visitor\"]",
        "manages = [\"admin\", \"regulr\", \"visitor\"]",
        1,
    );
    std::fs::write(folder.join("roles.toml"), roles).unwrap();
    std::fs::write(
        folder.join("broken.cedar"),
        "permit (principal, action, resource) when { 1 + };\n",
    )
    .unwrap();
    let out = run(&["check", "policies"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error[roles::unknown-role]: unknown role `regulr` in `manages` of role `owner`"),
        "{stderr}"
    );
    assert!(stderr.contains("--> policies/roles.toml:"), "{stderr}");
    assert!(stderr.contains("help: did you mean `regular`?"), "{stderr}");
    assert!(stderr.contains("error[cedar::syntax]"), "{stderr}");
    assert!(stderr.contains("--> policies/broken.cedar:1:"), "{stderr}");
    assert!(stdout_empty(&out));

    let out = run(&["check", "policies", "--error-format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stderr)).expect("json diagnostics");
    let all = v.as_array().unwrap();
    assert!(all.iter().any(|d| d["code"] == "roles::unknown-role"
        && d["file"] == "policies/roles.toml"
        && d["line"].as_u64().unwrap() > 1
        && d["help"] == "did you mean `regular`?"));
    assert!(all
        .iter()
        .any(|d| d["code"] == "cedar::syntax" && d["file"] == "policies/broken.cedar" && d["line"] == 1));
}

fn stdout_empty(o: &Output) -> bool {
    o.stdout.is_empty()
}

#[test]
fn test_passes_on_the_default_policies_with_closing_line() {
    let out = run(&["test", policies().to_str().unwrap()], Path::new("."));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed > 0);
}

#[test]
fn test_fails_with_exit_1_on_a_wrong_expectation_and_names_the_case() {
    let (dir, folder) = scratch();
    std::fs::write(
        folder.join("fixtures/zz_wrong.toml"),
        r#"
[companies.wrongco]
account_type = "customer"
attrs = { subscription = [] }

[users.wanda]
company = "wrongco"
role = "regular"
attrs = { scope_all = true, locations = [], actors = [], all_customers = false, customers = [] }

[[case]]
name = "a regular user configures the portal theme"
principal = "wanda"
action = "theme.configure"
resource = 'Portal::Theme::"t"'
expect = "allow"

[[entities]]
uid = { type = "Portal::Theme", id = "t" }
parents = [{ type = "Portal::Company", id = "wrongco" }]
attrs = {}
"#,
    )
    .unwrap();
    let out = run(&["test", "policies"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL  policies/fixtures/zz_wrong.toml:11 a regular user configures the portal theme: expected allow, got deny (no policy applied)"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(" passed, 1 failed"), "{stdout}");

    let out = run(&["test", "policies", "--format", "junit"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let xml = text(&out.stdout);
    assert!(xml.contains("<testsuites name=\"portcullis\""), "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(
        xml.contains("<failure message=\"expected allow, got deny (no policy applied)\"/>"),
        "{xml}"
    );

    let out = run(&["test", "policies", "--format", "json"], dir.path());
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let failed: Vec<_> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["failure"].is_string())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["actual"], "deny");
}

#[test]
fn test_exits_2_on_a_broken_fixture() {
    let (dir, folder) = scratch();
    std::fs::write(folder.join("fixtures/zz_bad.toml"), "[[case]]\nname = \"no expectation\"\nprincipal = \"x\"\naction = \"a\"\nresource = 'Portal::Theme::\"t\"'\n").unwrap();
    let out = run(&["test", "policies"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error[fixture::syntax]: missing field `expect`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> policies/fixtures/zz_bad.toml:1:1"),
        "{stderr}"
    );
}

fn request(principal: serde_json::Value, action: &str, resource: &str) -> String {
    serde_json::json!({
        "principal": principal,
        "action": action,
        "resource": resource,
        "entities": [
            {"uid": {"type": "Portal::Company", "id": "acme"}, "attrs": {"account_type": "customer", "subscription": []}, "parents": []},
            {"uid": {"type": "Portal::User", "id": "olivia"}, "parents": [{"type": "Portal::Role", "id": "owner"}, {"type": "Portal::Company", "id": "acme"}],
             "attrs": {"company": {"__entity": {"type": "Portal::Company", "id": "acme"}}, "role": {"__entity": {"type": "Portal::Role", "id": "owner"}},
                       "active": true, "flags": [], "addons": [], "scope_all": true, "locations": [], "actors": [], "all_customers": false, "customers": []}},
            {"uid": {"type": "Portal::Theme", "id": "t"}, "parents": [{"type": "Portal::Company", "id": "acme"}], "attrs": {}}
        ]
    })
    .to_string()
}

#[test]
fn authorize_answers_with_reasons_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("req.json");
    let folder = policies();
    let folder = folder.to_str().unwrap();

    std::fs::write(
        &req,
        request(
            serde_json::json!("Portal::User::\"olivia\""),
            "theme.configure",
            "Portal::Theme::\"t\"",
        ),
    )
    .unwrap();
    let out = run(
        &["authorize", folder, "--request", req.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["reasons"][0]["id"], "feature.portal_theme");
    assert_eq!(v["reasons"][0]["file"], "roles.toml");
    assert!(v["version"].as_str().unwrap().len() == 16);

    // The object form of a reference decides the same; a forbidden action exits 1.
    std::fs::write(
        &req,
        request(
            serde_json::json!({"type": "Portal::User", "id": "olivia"}),
            "declaration.create",
            "Portal::CustomerProfile::\"p\"",
        ),
    )
    .unwrap();
    let out = run(
        &["authorize", folder, "--request", req.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reasons"], serde_json::json!([]));

    // An unknown action is bad input: exit 2 with a suggestion.
    std::fs::write(
        &req,
        request(
            serde_json::json!("olivia"),
            "theme.configur",
            "Portal::Theme::\"t\"",
        ),
    )
    .unwrap();
    let out = run(
        &["authorize", folder, "--request", req.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown action `theme.configur`; did you mean `theme.configure`?"),
        "{stderr}"
    );
}

#[test]
fn matrix_renders_every_format() {
    let folder = policies();
    let folder = folder.to_str().unwrap();
    let out = run(&["matrix", folder, "--format", "csv"], Path::new("."));
    assert_eq!(out.status.code(), Some(0));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("account_type,role,feature,access"));
    assert!(csv.contains("\ncustomer,owner,portal_theme,yes\n"), "{csv}");
    assert!(csv.contains("\ncustomer,admin,portal_theme,-\n"), "{csv}");
    assert!(csv.contains("\ncustomer,admin,track_profiles,own\n"), "{csv}");
    assert!(
        csv.contains("\ncustomer,admin,all_action_centers,add-on*\n"),
        "{csv}"
    );
    assert!(
        !csv.contains("\ncarrier,owner,"),
        "carriers have no owners: {csv}"
    );

    for (format, needle) in [
        ("table", "Freight forwarder (forwarder)"),
        ("markdown", "| Feature |"),
        ("html", "<table>"),
        ("json", "\"tables\""),
    ] {
        let out = run(&["matrix", folder, "--format", format], Path::new("."));
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains(needle), "{format}");
    }
}

/// Checks `value` against the subset of JSON Schema the written schemas use (`$ref`,
/// `properties`, `additionalProperties`, `items`, `type`, `anyOf`/`oneOf`, `enum`); answers the
/// paths that do not fit.
fn fits(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    if let Some(r) = schema["$ref"].as_str() {
        let target = root.pointer(r.trim_start_matches('#')).unwrap();
        return fits(root, target, value, path, out);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema[key].as_array() {
            let fitting = options.iter().any(|o| {
                let mut e = Vec::new();
                fits(root, o, value, path, &mut e);
                e.is_empty()
            });
            if !fitting {
                out.push(format!("{path}: fits none of {key}"));
            }
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            out.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let allowed =
        types.is_empty() || types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !allowed {
        out.push(format!("{path}: a {kind}, the schema says {types:?}"));
        return;
    }
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let at = format!("{path}.{k}");
                match (schema["properties"].get(k), &schema["additionalProperties"]) {
                    (Some(s), _) => fits(root, s, v, &at, out),
                    (None, Value::Bool(false)) => out.push(format!("{at}: not in the schema")),
                    (None, Value::Object(_)) => fits(root, &schema["additionalProperties"], v, &at, out),
                    _ => {}
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter().enumerate() {
                fits(root, &schema["items"], v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The written JSON Schemas are the ones shipped in `schema/` (editors read those), and every
/// real file of the repository (the default folder's and each example's `roles.toml`, fixture
/// files and property files) fits its schema: a field the engine reads but the schema lacks, or
/// a wrong type, fails here.
#[test]
fn schema_writes_the_json_schemas_every_real_file_fits() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["schema", "--out", "out"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let repo = crate::common::repo();
    let folders: Vec<_> = crate::common::portal_folders()
        .iter()
        .map(|f| repo.join(f))
        .collect();
    let mut checked = 0;
    for (name, files) in [
        ("roles.schema.json", vec!["roles.toml"]),
        ("fixtures.schema.json", vec!["fixtures"]),
        ("properties.schema.json", vec!["properties"]),
    ] {
        let written = std::fs::read_to_string(dir.path().join("out").join(name)).unwrap();
        let shipped = std::fs::read_to_string(repo.join("schema").join(name)).unwrap();
        assert_eq!(
            written, shipped,
            "schema/{name} is out of date: run `portcullis schema`"
        );
        let schema: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            schema["additionalProperties"], false,
            "{name}: unknown keys are refused"
        );
        for folder in &folders {
            for f in &files {
                let at = folder.join(f);
                let paths: Vec<PathBuf> = if at.is_dir() {
                    std::fs::read_dir(&at)
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect()
                } else if at.is_file() {
                    vec![at]
                } else {
                    Vec::new()
                };
                for p in paths {
                    let value: serde_json::Value = serde_json::to_value(
                        toml::from_str::<toml::Value>(&std::fs::read_to_string(&p).unwrap()).unwrap(),
                    )
                    .unwrap();
                    let mut errors = Vec::new();
                    fits(&schema, &schema, &value, "", &mut errors);
                    assert!(errors.is_empty(), "{} against {name}: {errors:?}", p.display());
                    checked += 1;
                }
            }
        }
        // The check itself catches a stray key.
        let mut errors = Vec::new();
        fits(
            &schema,
            &schema,
            &serde_json::json!({ "no_such_key": 1 }),
            "",
            &mut errors,
        );
        assert_eq!(
            errors,
            vec![".no_such_key: not in the schema".to_owned()],
            "{name}"
        );
    }
    assert!(checked > 40, "{checked} files checked");
}

#[test]
fn every_command_has_help() {
    for cmd in ["check", "test", "authorize", "matrix", "schema"] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd}");
        assert!(text(&out.stdout).contains("Usage: portcullis"), "{cmd}");
    }
}

/// `portcullis serve --help` shows every setting with its variable and the default the code
/// uses, read from its one declaration (`config::Settings`).
#[test]
fn serve_help_shows_every_setting_and_its_real_default() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for s in portcullis_server::config::settings() {
        let flag = format!("--{}", s.long());
        assert!(
            help.lines()
                .map(str::trim)
                .any(|l| l == flag || l.starts_with(&format!("{flag} "))),
            "{flag}"
        );
        assert!(help.contains(&format!("[env: {}]", s.env())), "{}", s.key);
        if let Some(d) = &s.default {
            assert!(help.contains(&format!("[default: {d}]")), "{}: {d}", s.key);
        }
    }
    assert!(
        help.contains("--no-watch") && help.contains("[default: 1000]"),
        "{help}"
    );
}

/// `portcullis backup` copies a SQLite store a server is using (the copy serves its users),
/// reminds of the sealing key, never overwrites, and sends PostgreSQL users to `pg_dump`.
#[test]
fn backup_copies_a_live_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let db_url = db.to_str().unwrap();
    crate::procs::bootstrap_owner(db_url, "acme", "olga");
    let (server, _) = crate::procs::Proc::serve(&policies(), Some(db_url), &[]);
    let copy = dir.path().join("copy.db");
    let out = run(
        &["backup", "--database-url", db_url, "--to", copy.to_str().unwrap()],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 companies, 1 users"), "{stdout}");
    assert!(
        stdout.contains("live.db.key"),
        "the sealing key is named: {stdout}"
    );
    drop(server);
    // The copy is a store: the owner is there.
    let listed = crate::procs::run(&[
        "users",
        "--database-url",
        copy.to_str().unwrap(),
        "list",
        "--company",
        "acme",
    ]);
    assert!(listed.contains("olga"), "{listed}");

    let again = run(
        &["backup", "--database-url", db_url, "--to", copy.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let pg = run(
        &["backup", "--database-url", "postgres://nowhere/x", "--to", "x.db"],
        dir.path(),
    );
    assert_eq!(pg.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&pg.stderr).contains("pg_dump"));
}
