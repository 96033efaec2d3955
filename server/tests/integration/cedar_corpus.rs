//! Differential test against Cedar's own integration corpus: every route that decides gives
//! Cedar's answer.
//!
//! The corpus is the public `cedar-policy/cedar-integration-tests` repository (at
//! `/work/shared/cedar-integration-tests`, or `PORTCULLIS_CEDAR_CORPUS_DIR`): hand-written tests
//! under `tests/`, 7,809 generated ones in `corpus-tests.tar.gz` (unpacked here into a temp
//! folder). Each test whose policies validate (`shouldValidate`) becomes a policy folder
//! (`policies.cedar` and `schema.cedarschema`, no `roles.toml`) and an entities file, and each
//! of its requests is asked
//! - (a) of `portcullis authorize --request R --entities FILE`,
//! - (b) of `POST /v1/authorize/batch` on a server without entities, the entities inline (twice),
//! - (c) of `POST /v1/authorize` on `portcullis serve --entities FILE`, caches on (twice), the
//!   entities held whole as Cedar entities (`whole_entities`), and
//! - (d) the same with the caches off and every question decided over its slice of the compact
//!   store (`PORTCULLIS_SLICE_CACHE=0`, `PORTCULLIS_DECISION_CACHE=0`,
//!   `PORTCULLIS_WHOLE_ENTITIES=0`),
//!
//! and every answer is compared with Cedar's expected decision and with the other routes.
//!
//! `PORTCULLIS_CEDAR_CORPUS` picks the generated tests: unset, every 40th; `all`; or `N`, every
//! Nth. The hand-written tests always run. `PORTCULLIS_CEDAR_CORPUS_JOBS` tests run at once
//! (default 2). The figures go to stderr.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use crate::common::Http;
use crate::procs::{Proc, BIN};

/// One request of a test and Cedar's decision.
#[derive(Debug, Clone)]
struct Ask {
    principal: Value,
    action: Value,
    resource: Value,
    context: Value,
    /// Cedar's answer.
    allow: bool,
    /// Whether Cedar's harness validated the request against the schema.
    validated: bool,
}

/// One test: a schema, policies, entities and requests.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    schema: String,
    policies: String,
    entities: Value,
    asks: Vec<Ask>,
}

/// What a route answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Allow,
    Deny,
    /// The request was refused (an error code or message).
    Refused(String),
}

impl Answer {
    fn decided(allow: bool) -> Answer {
        if allow {
            Answer::Allow
        } else {
            Answer::Deny
        }
    }
}

const ROUTES: [&str; 4] = ["cli", "batch-inline", "serve-entities", "serve-entities-nocache"];

/// The figures of a run.
#[derive(Debug, Default)]
struct Figures {
    tests: usize,
    run: usize,
    skipped: BTreeMap<String, usize>,
    requests: usize,
    /// Per route: compared with Cedar, agreed, refused, differed.
    compared: [usize; 4],
    agreed: [usize; 4],
    refused: [usize; 4],
    differed: [usize; 4],
    /// Of the refusals, those of requests Cedar's harness did not validate against the schema
    /// (Portcullis validates every request, so it may refuse what Cedar decides); a refusal of
    /// a request Cedar validated also counts as a difference.
    refused_unvalidated: [usize; 4],
    /// Requests on which the routes did not all give the same answer.
    routes_disagree: usize,
    /// The first differences, for the failure message.
    diffs: Vec<String>,
}

impl Figures {
    fn skip(&mut self, why: &str) {
        *self.skipped.entry(why.to_owned()).or_default() += 1;
    }

    fn print(&self, took: std::time::Duration) {
        eprintln!(
            "cedar corpus: {} tests, {} run, {} skipped, {} requests, {:.1} s",
            self.tests,
            self.run,
            self.skipped.values().sum::<usize>(),
            self.requests,
            took.as_secs_f64()
        );
        for (why, n) in &self.skipped {
            eprintln!("  skipped {n}: {why}");
        }
        for (i, r) in ROUTES.iter().enumerate() {
            eprintln!(
                "  {r:<24} compared {:>6}  agreed {:>6}  refused {:>4} (of which unvalidated requests {:>4})  differed {}",
                self.compared[i], self.agreed[i], self.refused[i], self.refused_unvalidated[i], self.differed[i]
            );
        }
        eprintln!(
            "  requests on which the routes disagree: {}",
            self.routes_disagree
        );
        for d in self.diffs.iter().take(30) {
            eprintln!("  DIFF {d}");
        }
    }

    fn differed(&self) -> usize {
        self.differed.iter().sum::<usize>() + self.routes_disagree
    }
}

/// Where the corpus is, and its generated tests unpacked.
struct Corpus {
    root: PathBuf,
    unpacked: tempfile::TempDir,
}

impl Corpus {
    fn open() -> Option<Corpus> {
        let root = std::env::var("PORTCULLIS_CEDAR_CORPUS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("/work/shared/cedar-integration-tests"));
        let tarball = root.join("corpus-tests.tar.gz");
        if !tarball.is_file() {
            eprintln!(
                "cedar corpus: no `{}`; the corpus test is skipped",
                tarball.display()
            );
            return None;
        }
        let unpacked = tempfile::tempdir().unwrap();
        let ok = Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(unpacked.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot unpack {}", tarball.display());
        Some(Corpus { root, unpacked })
    }

    /// A path named by a test, relative to the corpus root.
    fn path(&self, rel: &str) -> PathBuf {
        if rel.starts_with("corpus-tests/") {
            self.unpacked.path().join(rel)
        } else {
            self.root.join(rel)
        }
    }

    /// The hand-written tests, then the generated ones, each sorted by name.
    fn tests(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut hand = Vec::new();
        walk_json(&self.root.join("tests"), &mut hand);
        hand.sort();
        let mut generated: Vec<PathBuf> = std::fs::read_dir(self.unpacked.path().join("corpus-tests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.ends_with(".json") && !n.ends_with(".entities.json")
            })
            .collect();
        generated.sort();
        (hand, generated)
    }

    /// A test file as a case, or why it is skipped.
    fn case(&self, file: &Path) -> Result<Case, String> {
        let t: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        if t["shouldValidate"] != json!(true) {
            return Err("policies do not validate (shouldValidate false)".to_owned());
        }
        let read = |k: &str| std::fs::read_to_string(self.path(t[k].as_str().unwrap())).unwrap();
        let asks = t["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Ask {
                principal: r["principal"].clone(),
                action: r["action"].clone(),
                resource: r["resource"].clone(),
                context: r["context"].clone(),
                allow: r["decision"] == "allow",
                validated: r["validateRequest"] != json!(false),
            })
            .collect();
        Ok(Case {
            name: file
                .strip_prefix(&self.root)
                .or_else(|_| file.strip_prefix(self.unpacked.path()))
                .unwrap_or(file)
                .display()
                .to_string(),
            schema: read("schema"),
            policies: read("policies"),
            entities: serde_json::from_str(&read("entities")).unwrap(),
            asks,
        })
    }
}

fn walk_json(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk_json(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// The request body of one ask.
fn query(a: &Ask) -> Value {
    json!({
        "principal": a.principal,
        "action": a.action,
        "resource": a.resource,
        "context": if a.context.is_null() { json!({}) } else { a.context.clone() },
    })
}

/// An HTTP answer as an `Answer`.
fn http_answer(status: u16, body: &Value) -> Answer {
    match (status, body["decision"].as_str()) {
        (200, Some("allow")) => Answer::Allow,
        (200, Some("deny")) => Answer::Deny,
        _ => Answer::Refused(
            body["error"]["code"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{status} {body}")),
        ),
    }
}

/// `portcullis authorize` of one request.
fn cli(folder: &Path, entities: &Path, request: &Path) -> Answer {
    let out = Command::new(BIN)
        .arg("authorize")
        .arg(folder)
        .arg("--request")
        .arg(request)
        .arg("--entities")
        .arg(entities)
        .env_remove("PORTCULLIS_CEDAR_CORPUS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    match (out.status.code(), v["decision"].as_str()) {
        (Some(0), Some("allow")) => Answer::Allow,
        (Some(1), Some("deny")) => Answer::Deny,
        _ => Answer::Refused(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        ),
    }
}

/// The answers of every route to every ask of a case (`answers[route][ask]`), or why the case
/// could not be run. A route asked twice must answer the same twice, or both answers are kept
/// as a difference.
async fn run_case(case: &Case) -> Result<[Vec<Answer>; 4], String> {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("policies.cedar"), &case.policies).unwrap();
    std::fs::write(folder.join("schema.cedarschema"), &case.schema).unwrap();
    let entities = dir.path().join("entities.json");
    std::fs::write(&entities, serde_json::to_vec(&case.entities).unwrap()).unwrap();

    // (a) the CLI, once per distinct request.
    let cli_answers = {
        let (folder, entities, dir_path) = (folder.clone(), entities.clone(), dir.path().to_path_buf());
        let asks = case.asks.clone();
        tokio::task::spawn_blocking(move || {
            let mut seen: HashMap<String, Answer> = HashMap::new();
            asks.iter()
                .enumerate()
                .map(|(i, a)| {
                    let q = query(a);
                    let key = q.to_string();
                    if let Some(ans) = seen.get(&key) {
                        return ans.clone();
                    }
                    let req = dir_path.join(format!("request-{i}.json"));
                    std::fs::write(&req, key.as_bytes()).unwrap();
                    let ans = cli(&folder, &entities, &req);
                    seen.insert(key, ans.clone());
                    ans
                })
                .collect::<Vec<_>>()
        })
    };

    // The three servers, started together.
    let start = |entities: Option<PathBuf>, caches: bool| {
        let folder = folder.clone();
        // Each server its own (empty) user store.
        let db = dir
            .path()
            .join(format!("store-{}-{caches}.db", entities.is_some()))
            .display()
            .to_string();
        tokio::task::spawn_blocking(move || {
            let mut extra: Vec<String> = vec!["--no-watch".to_owned()];
            if let Some(e) = &entities {
                extra.push("--entities".to_owned());
                extra.push(e.display().to_string());
            }
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let env: &[(&str, &str)] = if caches {
                &[]
            } else {
                &[
                    ("PORTCULLIS_SLICE_CACHE", "0"),
                    ("PORTCULLIS_DECISION_CACHE", "0"),
                    ("PORTCULLIS_WHOLE_ENTITIES", "0"),
                ]
            };
            std::panic::catch_unwind(|| Proc::serve_with_env(&folder, Some(&db), &extra, env).0)
                .map_err(|_| "portcullis serve does not start".to_owned())
        })
    };
    let plain = start(None, true);
    let cached = start(Some(entities.clone()), true);
    let uncached = start(Some(entities.clone()), false);
    let (plain, cached, uncached) = (
        plain.await.unwrap(),
        cached.await.unwrap(),
        uncached.await.unwrap(),
    );
    let cli_answers = cli_answers.await.unwrap();
    let (plain, cached, uncached) = match (plain, cached, uncached) {
        (Ok(p), Ok(c), Ok(u)) => (p, c, u),
        (p, c, u) => {
            let folder = folder.clone();
            let why = tokio::task::spawn_blocking(move || {
                let out = Command::new(BIN)
                    .arg("check")
                    .arg(&folder)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let text =
                    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
                if out.status.success() {
                    "portcullis serve refuses the entities file".to_owned()
                } else {
                    format!("portcullis refuses the folder: {}", first_error(&text))
                }
            })
            .await
            .unwrap();
            drop((p, c, u));
            return Err(why);
        }
    };

    // (b) one batch with the entities inline, asked twice.
    let http = Http::at(plain.url.clone());
    let body = json!({
        "entities": case.entities,
        "checks": case.asks.iter().enumerate().map(|(i, a)| {
            let mut q = query(a);
            q["id"] = json!(i);
            q
        }).collect::<Vec<_>>(),
    });
    let mut batch = Vec::new();
    for _ in 0..2 {
        let (status, out) = http.post("/v1/authorize/batch", &body).await;
        let answers: Vec<Answer> = if status == 200 {
            out["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| match r["decision"].as_str() {
                    Some("allow") => Answer::Allow,
                    Some("deny") => Answer::Deny,
                    _ => Answer::Refused(r["error"]["code"].as_str().unwrap_or("?").to_owned()),
                })
                .collect()
        } else {
            vec![http_answer(status, &out); case.asks.len()]
        };
        batch.push(answers);
    }
    let batch = merge_twice(&batch[0], &batch[1]);

    // (c) and (d): each request twice, so the second may be a cache hit.
    let mut served = Vec::new();
    for proc in [&cached, &uncached] {
        let http = Http::at(proc.url.clone());
        let mut answers = Vec::new();
        for a in &case.asks {
            let q = query(a);
            let (s1, b1) = http.post("/v1/authorize", &q).await;
            let (s2, b2) = http.post("/v1/authorize", &q).await;
            let (x, y) = (http_answer(s1, &b1), http_answer(s2, &b2));
            answers.push(if x == y {
                x
            } else {
                Answer::Refused(format!("first {x:?}, again {y:?}"))
            });
        }
        served.push(answers);
    }
    let uncached_answers = served.pop().unwrap();
    let cached_answers = served.pop().unwrap();
    drop((plain, cached, uncached));
    Ok([cli_answers, batch, cached_answers, uncached_answers])
}

/// Two askings of the same batch; an answer that changed becomes a refusal naming both.
fn merge_twice(first: &[Answer], again: &[Answer]) -> Vec<Answer> {
    first
        .iter()
        .zip(again)
        .map(|(x, y)| {
            if x == y {
                x.clone()
            } else {
                Answer::Refused(format!("first {x:?}, again {y:?}"))
            }
        })
        .collect()
}

/// The first line of a diagnostic report that says what is wrong.
fn first_error(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().next())
        .unwrap_or("")
        .trim();
    // The category only: the code in brackets or the text before the first colon.
    match (line.find('['), line.find(']')) {
        (Some(a), Some(b)) if a < b => line[a..=b].to_owned(),
        _ => line.chars().take(80).collect(),
    }
}

/// Compares a case's answers with Cedar's and with each other, into the figures.
fn tally(case: &Case, answers: &[Vec<Answer>; 4], f: &mut Figures) {
    f.run += 1;
    f.requests += case.asks.len();
    for (i, a) in case.asks.iter().enumerate() {
        let want = Answer::decided(a.allow);
        for r in 0..4 {
            let got = &answers[r][i];
            f.compared[r] += 1;
            match got {
                g if *g == want => f.agreed[r] += 1,
                Answer::Refused(why) if !why.starts_with("first ") => {
                    f.refused[r] += 1;
                    if !a.validated {
                        f.refused_unvalidated[r] += 1;
                    } else {
                        // Cedar decided a request that fits the schema: refusing it differs.
                        f.differed[r] += 1;
                        f.diffs.push(format!(
                            "{} request {i} ({}): {} refused a request Cedar validated: {why}",
                            case.name, a.principal, ROUTES[r]
                        ));
                    }
                }
                _ => {
                    f.differed[r] += 1;
                    f.diffs.push(format!(
                        "{} request {i}: {} answered {got:?}, Cedar {want:?}: {}",
                        case.name,
                        ROUTES[r],
                        query(a)
                    ));
                }
            }
        }
        if answers.iter().any(|r| r[i] != answers[0][i]) {
            f.routes_disagree += 1;
            f.diffs.push(format!(
                "{} request {i}: the routes disagree: {:?}",
                case.name,
                answers.iter().map(|r| &r[i]).collect::<Vec<_>>()
            ));
        }
    }
}

/// Runs cases `jobs` at a time.
async fn run_all(cases: Vec<Result<Case, String>>, jobs: usize, f: Figures) -> Figures {
    let cases = Arc::new(cases);
    let next = Arc::new(AtomicUsize::new(0));
    let figures = Arc::new(Mutex::new(f));
    let mut tasks = Vec::new();
    for _ in 0..jobs.max(1) {
        let (cases, next, figures) = (cases.clone(), next.clone(), figures.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                let c = match c {
                    Ok(c) => c,
                    Err(why) => {
                        figures.lock().unwrap().skip(why);
                        continue;
                    }
                };
                match run_case(c).await {
                    Ok(answers) => tally(c, &answers, &mut figures.lock().unwrap()),
                    Err(why) => figures.lock().unwrap().skip(&why),
                }
                if i % 500 == 499 {
                    eprintln!("cedar corpus: {} of {} tests", i + 1, cases.len());
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(figures).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_decides_as_cedar_over_its_corpus() {
    let Some(corpus) = Corpus::open() else { return };
    let stride = match std::env::var("PORTCULLIS_CEDAR_CORPUS").ok().as_deref() {
        Some("all") => 1,
        Some(n) => n.parse().unwrap_or(40).max(1),
        None => 40,
    };
    let jobs = std::env::var("PORTCULLIS_CEDAR_CORPUS_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let started = Instant::now();
    let (hand, generated) = corpus.tests();
    let mut f = Figures {
        tests: hand.len() + generated.len(),
        ..Figures::default()
    };
    let not_sampled = generated.len() - generated.len().div_ceil(stride);
    if not_sampled > 0 {
        f.skipped.insert(
            format!("not in the sample (every {stride}th generated test)"),
            not_sampled,
        );
    }
    let cases: Vec<Result<Case, String>> = hand
        .iter()
        .chain(generated.iter().step_by(stride))
        .map(|p| corpus.case(p))
        .collect();
    let f = run_all(cases, jobs, f).await;
    f.print(started.elapsed());
    assert!(f.run > 0, "no corpus test ran");
    assert_eq!(
        f.differed(),
        0,
        "some route differs from Cedar (see DIFF lines above)"
    );
}

/// Runs hand-made cases through every route and asserts Cedar's answers.
async fn assert_cases(cases: Vec<Case>) {
    let f = run_all(cases.into_iter().map(Ok).collect(), 2, Figures::default()).await;
    f.print(std::time::Duration::ZERO);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(
        f.differed(),
        0,
        "some route differs from Cedar (see DIFF lines above)"
    );
}

fn uid(ty: &str, id: &str) -> Value {
    json!({ "type": ty, "id": id })
}

fn entity(ty: &str, id: &str, attrs: Value, parents: &[(&str, &str)]) -> Value {
    json!({
        "uid": uid(ty, id),
        "attrs": attrs,
        "parents": parents.iter().map(|(t, i)| uid(t, i)).collect::<Vec<_>>(),
    })
}

fn ask(principal: &str, context: Value, allow: bool) -> Ask {
    Ask {
        principal: uid("User", principal),
        action: uid("Action", "view"),
        resource: uid("Doc", "d"),
        context,
        allow,
        validated: true,
    }
}

/// Issue 14: the manager of alice is in the blocked group, so the forbid applies; the slice
/// of `serve --entities` once lacked `principal.manager` and allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_in_a_blocked_group_is_denied_on_every_route() {
    let schema = r#"entity Group; entity User in [Group] = { manager: User }; entity Doc;
action view appliesTo { principal: User, resource: Doc, context: {} };"#;
    let policies = r#"@id("everyone-views") permit (principal, action == Action::"view", resource);
@id("blocked-managers-team") forbid (principal, action == Action::"view", resource)
  when { principal.manager in Group::"blocked" };"#;
    let entities = json!([
        entity("User", "alice", json!({ "manager": uid("User", "bob") }), &[]),
        entity(
            "User",
            "bob",
            json!({ "manager": uid("User", "carol") }),
            &[("Group", "blocked")]
        ),
        entity("User", "carol", json!({ "manager": uid("User", "carol") }), &[]),
        entity("Group", "blocked", json!({}), &[]),
        entity("Doc", "d", json!({}), &[]),
    ]);
    assert_cases(vec![Case {
        name: "issue 14: manager in a blocked group".to_owned(),
        schema: schema.to_owned(),
        policies: policies.to_owned(),
        entities,
        asks: vec![ask("alice", json!({}), false), ask("bob", json!({}), true)],
    }])
    .await;
}

/// Entities named only by the context, or only by a policy literal, are in the slice: the
/// forbids on them apply through `serve --entities`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_named_by_the_context_or_a_policy_literal_are_decided_on() {
    let entities = json!([
        entity("User", "alice", json!({}), &[]),
        entity("User", "eve", json!({}), &[("Group", "blocked")]),
        entity("Group", "blocked", json!({}), &[]),
        entity("Doc", "d", json!({}), &[]),
    ]);
    let by_context = Case {
        name: "an approver named by the context".to_owned(),
        schema: r#"entity Group; entity User in [Group]; entity Doc;
action view appliesTo { principal: User, resource: Doc, context: { approver: User } };"#
            .to_owned(),
        policies: r#"@id("views") permit (principal, action == Action::"view", resource);
@id("blocked-approver") forbid (principal, action == Action::"view", resource)
  when { context.approver in Group::"blocked" };"#
            .to_owned(),
        entities: entities.clone(),
        asks: vec![
            ask(
                "alice",
                json!({ "approver": { "__entity": uid("User", "eve") } }),
                false,
            ),
            ask(
                "alice",
                json!({ "approver": { "__entity": uid("User", "alice") } }),
                true,
            ),
            // The same principal, action and resource again: a slice kept for the question
            // before must not answer this one.
            ask(
                "alice",
                json!({ "approver": { "__entity": uid("User", "eve") } }),
                false,
            ),
        ],
    };
    let by_literal = Case {
        name: "a user named by a policy literal".to_owned(),
        schema: r#"entity Group; entity User in [Group]; entity Doc;
action view appliesTo { principal: User, resource: Doc, context: {} };"#
            .to_owned(),
        policies: r#"@id("views") permit (principal, action == Action::"view", resource);
@id("eve-blocked-stops-alice") forbid (principal == User::"alice", action == Action::"view", resource)
  when { User::"eve" in Group::"blocked" };"#
            .to_owned(),
        entities,
        asks: vec![ask("alice", json!({}), false), ask("eve", json!({}), true)],
    };
    assert_cases(vec![by_context, by_literal]).await;
}

/// Entities further away: two attribute steps, a record field, a tag, the resource's side,
/// and the attribute of a policy literal. Each forbid holds for one request only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_reached_through_records_tags_and_chains_are_decided_on() {
    let schema = r#"entity Group;
entity User in [Group] = { manager: User, info: { boss: User } } tags User;
entity Doc = { owner: User };
action view appliesTo { principal: User, resource: Doc, context: {} };"#;
    let policies = r#"@id("views") permit (principal, action == Action::"view", resource);
@id("two-steps") forbid (principal, action, resource)
  when { principal.manager.manager in Group::"blocked" };
@id("record-field") forbid (principal, action, resource)
  when { principal.info.boss in Group::"blocked" };
@id("tag") forbid (principal, action, resource)
  when { principal.hasTag("sponsor") && principal.getTag("sponsor") in Group::"blocked" };
@id("owner-side") forbid (principal, action, resource)
  when { resource.owner.manager in Group::"blocked" };
@id("literal-attribute") forbid (principal, action, resource)
  when { User::"chief".manager == principal };"#;
    // A user with its manager, its boss (`info.boss`) and its groups.
    let user = |id: &str, manager: &str, boss: &str, groups: &[(&str, &str)]| {
        entity(
            "User",
            id,
            json!({ "manager": uid("User", manager), "info": { "boss": uid("User", boss) } }),
            groups,
        )
    };
    let blocked = [("Group", "blocked")];
    let mut sponsored = user("u4", "ok", "ok", &[]);
    sponsored["tags"] = json!({ "sponsor": uid("User", "s4") });
    let entities = json!([
        entity("Group", "blocked", json!({}), &[]),
        user("ok", "ok", "ok", &[]),
        user("u2", "m2", "ok", &[]),
        user("m2", "m3", "ok", &[]),
        user("m3", "m3", "m3", &blocked),
        user("u3", "ok", "b3", &[]),
        user("b3", "b3", "b3", &blocked),
        sponsored,
        user("s4", "s4", "s4", &blocked),
        user("o5", "p5", "ok", &[]),
        user("p5", "p5", "p5", &blocked),
        user("chief", "u6", "ok", &[]),
        user("u6", "ok", "ok", &[]),
        entity("Doc", "d", json!({ "owner": uid("User", "ok") }), &[]),
        entity("Doc", "d5", json!({ "owner": uid("User", "o5") }), &[]),
    ]);
    let mut on_d5 = ask("ok", json!({}), false);
    on_d5.resource = uid("Doc", "d5");
    assert_cases(vec![Case {
        name: "records, tags and chains".to_owned(),
        schema: schema.to_owned(),
        policies: policies.to_owned(),
        entities,
        asks: vec![
            ask("ok", json!({}), true),
            ask("u2", json!({}), false),
            ask("u3", json!({}), false),
            ask("u4", json!({}), false),
            on_d5,
            ask("u6", json!({}), false),
        ],
    }])
    .await;
}
