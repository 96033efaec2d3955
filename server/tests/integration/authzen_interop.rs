//! The OpenID AuthZEN interop scenarios (`server/tests/authzen/`, see its `ORIGIN.md`) run
//! as the suite sends them against real `portcullis serve` processes, one per scenario's
//! policy folder: todo (evaluation and evaluations), API gateway, search (subject, resource,
//! action) and IdP (resource search, token issuance). The folders state each scenario's
//! rules; the expected answers are the suite's own files.
//!
//! Judged as the suite's harnesses judge: a decision must be the expected boolean (HTTP 200),
//! a batch the expected decisions in order, a search the expected results as a set, each item
//! exactly `{"type","id"}` or `{"name"}`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::Http;
use crate::procs::Proc;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/authzen")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `portcullis serve` on a scenario's folder and its entities, with a store of its own.
fn serve(scenario: &str, store: &tempfile::TempDir) -> Proc {
    let folder = data().join(scenario).join("policies");
    let entities = folder.join("entities.json");
    let db = store.path().join(format!("{scenario}.db"));
    let (proc, _) = Proc::serve(
        &folder,
        Some(db.to_str().unwrap()),
        &["--entities", entities.to_str().unwrap(), "--no-watch"],
    );
    proc
}

/// Results as a sorted list of their JSON texts (order does not count; keys and their order
/// do, as in the suite's harness).
fn result_set(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(Value::to_string).collect();
    out.sort();
    out
}

/// Runs the cases of one section, returning (passed, failures).
async fn run(
    http: &Http,
    path: &str,
    cases: &Value,
    judge: fn(&Value, &Value) -> bool,
) -> (usize, Vec<String>) {
    let mut passed = 0;
    let mut failed = Vec::new();
    for case in cases.as_array().unwrap() {
        let (status, out) = http.post(path, &case["request"]).await;
        if status == 200 && judge(&out, &case["expected"]) {
            passed += 1;
        } else {
            failed.push(format!(
                "{path} {} -> {status} {out} (expected {})",
                case["request"], case["expected"]
            ));
        }
    }
    (passed, failed)
}

fn decision(out: &Value, expected: &Value) -> bool {
    let want = expected.get("decision").unwrap_or(expected);
    out["decision"].is_boolean() && out["decision"] == *want
}

fn decisions(out: &Value, expected: &Value) -> bool {
    let got: Vec<&Value> = out["evaluations"]
        .as_array()
        .map(|a| a.iter().map(|e| &e["decision"]).collect())
        .unwrap_or_default();
    let want: Vec<&Value> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["decision"])
        .collect();
    got == want
}

fn results(out: &Value, expected: &Value) -> bool {
    out["results"].is_array() && result_set(&out["results"]) == result_set(&expected["results"])
}

/// One section of a scenario's file: the file, its key, the endpoint, how an answer is judged.
type Section = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Value, &Value) -> bool,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interop_scenario_passes_as_the_suite_sends_it() {
    let store = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let scenarios: [(&str, &[Section]); 4] = [
        (
            "todo",
            &[
                ("decisions.json", "evaluation", "/access/v1/evaluation", decision),
                (
                    "decisions.json",
                    "evaluations",
                    "/access/v1/evaluations",
                    decisions,
                ),
            ],
        ),
        (
            "gateway",
            &[("decisions.json", "evaluation", "/access/v1/evaluation", decision)],
        ),
        (
            "search",
            &[
                ("subject.json", "evaluation", "/access/v1/search/subject", results),
                (
                    "resource.json",
                    "evaluation",
                    "/access/v1/search/resource",
                    results,
                ),
                ("action.json", "evaluation", "/access/v1/search/action", results),
            ],
        ),
        (
            "idp",
            &[
                ("results.json", "search", "/access/v1/search/resource", results),
                (
                    "token_issuance.json",
                    "evaluation",
                    "/access/v1/evaluation",
                    decision,
                ),
            ],
        ),
    ];
    for (scenario, sections) in scenarios {
        let proc = serve(scenario, &store);
        let http = Http::at(proc.url.clone());
        for (file, section, path, judge) in sections {
            let cases = read(&data().join(scenario).join(file));
            let cases = &cases[*section];
            let total = cases.as_array().unwrap().len();
            assert!(total > 0, "{scenario}/{file}: no `{section}` cases");
            let (passed, failed) = run(&http, path, cases, *judge).await;
            report.push(format!("{scenario} {file} {section}: {passed}/{total}"));
            failures.extend(failed);
        }
        drop(proc);
    }
    eprintln!("AuthZEN interop:\n  {}", report.join("\n  "));
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The suite's batches as it sends them (defaults at the top, items overriding the
/// resource), and the same batch's items answered in order even though both name one todo
/// id with different owners: properties describe each item's own entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_todo_id_with_two_owners_in_one_batch_decides_each_on_its_own() {
    let store = tempfile::tempdir().unwrap();
    let proc = serve("todo", &store);
    let http = Http::at(proc.url.clone());
    let morty = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let item = |owner: &str| json!({ "resource": { "type": "todo", "id": "t1", "properties": { "ownerID": owner } } });
    let body = json!({
        "subject": { "type": "user", "id": morty },
        "action": { "name": "can_update_todo" },
        "evaluations": [item("rick@the-citadel.com"), item("morty@the-citadel.com"), item("rick@the-citadel.com")],
    });
    let (status, out) = http.post("/access/v1/evaluations", &body).await;
    assert_eq!(status, 200, "{out}");
    let got: Vec<&Value> = out["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["decision"])
        .collect();
    assert_eq!(got, vec![&json!(false), &json!(true), &json!(false)], "{out}");
}
