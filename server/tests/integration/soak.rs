//! Soak: one real `portcullis serve` process (SQLite store, watched policy folder) under
//! decision load, a stream of management writes and a policy edit every second, for
//! `PORTCULLIS_SOAK_SECS` seconds (default 10; CI runs 60; see `server/benches/README.md`).
//!
//! The edit flips the policy between two versions (a `forbid` file present or absent) under
//! which known requests flip between allow and deny; each answer is checked against the
//! version it reports. Reports errors (must be 0), answers inconsistent with their version
//! (must be 0), policy edits applied, management writes, decisions, p50/p99 latency and the
//! server's resident memory growth (`VmRSS`, bounded).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{copy_dir, olivia_creates, Fixture, Http, DEADLINE};
use crate::manage::sqlite_url;
use crate::procs::{bootstrap_owner, env_u64, ms, percentile, Proc};

/// The edit: present, it denies both probe requests.
const FLIP: &str = "@id(\"soak.flip\")\nforbid (principal, action in [Portal::Action::\"shipment.create\", \
                    Portal::Action::\"shipping_rule.edit\"], resource);\n";
/// Decision clients.
const CLIENTS: usize = 3;
/// Resident memory may grow by at most this over a run (after a warm-up second).
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;

#[derive(Default)]
struct Tally {
    errors: AtomicU64,
    inconsistent: AtomicU64,
    decisions: AtomicU64,
    denied: AtomicU64,
    writes: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap().get_or_insert(what);
    }
}

/// The version of a folder's content.
fn version_of(folder: &Path) -> String {
    portcullis_engine::load(folder).unwrap().version().to_owned()
}

/// Writes a file the watcher sees only whole: a dot-file (ignored) renamed into place.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_file_name(".soak.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The probe requests: olivia (static entities) creating a shipment, the stored owner editing
/// its company's shipping rules. Both allowed without the flip, denied with it.
fn probes() -> [Value; 2] {
    [
        olivia_creates(),
        json!({ "principal": "own1", "action": "shipping_rule.edit",
                "resource": "Portal::Company::\"soakco\"" }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_decisions_writes_and_policy_edits() {
    let secs = env_u64("PORTCULLIS_SOAK_SECS", 10);
    let fx = Fixture::new();
    let db = sqlite_url(&fx);
    let key = bootstrap_owner(&db, "soakco", "own1");
    let flip_file = fx.policies().join("soak.cedar");
    let allow_version = version_of(&fx.policies());
    let flipped = tempfile::tempdir().unwrap();
    copy_dir(&fx.policies(), flipped.path());
    std::fs::write(flipped.path().join("soak.cedar"), FLIP).unwrap();
    let deny_version = version_of(flipped.path());
    let expected: Arc<HashMap<String, &str>> = Arc::new(HashMap::from([
        (allow_version.clone(), "allow"),
        (deny_version.clone(), "deny"),
    ]));

    let entities = fx.entities().display().to_string();
    let (mut proc, _) = Proc::serve(
        &fx.policies(),
        Some(&db),
        &["--entities", &entities, "--reload-debounce-ms", "10"],
    );
    let anon = Http::at(proc.url.clone());
    let owner = anon.clone().with_key(&key);
    let (_, p) = anon.get("/v1/policy").await;
    assert_eq!(p["version"], allow_version.as_str(), "{p}");
    for probe in probes() {
        let (s, b) = anon.post("/v1/authorize", &probe).await;
        assert_eq!((s, b["decision"].as_str()), (200, Some("allow")), "{b}");
    }

    let tally = Arc::new(Tally::default());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, tally, latencies, stop, expected) = (
            anon.clone(),
            tally.clone(),
            latencies.clone(),
            stop.clone(),
            expected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let probes = probes();
            let mut mine = Vec::new();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let probe = &probes[i % probes.len()];
                i += 1;
                let t = Instant::now();
                let r = http
                    .try_send("POST", "/v1/authorize", serde_json::to_vec(probe).unwrap())
                    .await;
                mine.push(t.elapsed());
                tally.decisions.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok((200, b)) => {
                        let v = b["version"].as_str().unwrap_or_default();
                        if b["decision"] == "deny" {
                            tally.denied.fetch_add(1, Ordering::Relaxed);
                        }
                        if expected.get(v).copied() != b["decision"].as_str() {
                            tally.inconsistent.fetch_add(1, Ordering::Relaxed);
                            tally.error(format!("inconsistent: {b}"));
                        }
                    }
                    Ok((s, b)) => tally.error(format!("decision answered {s}: {b}")),
                    Err(e) => tally.error(e),
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    {
        // Management writes: create a user, rename it, over and over.
        let (http, tally, stop) = (owner.clone(), tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = format!("s{n}");
                let create =
                    json!({ "id": id, "login": id, "role": "regular", "attrs": { "scope_all": true } });
                let calls = [
                    ("POST", "/v1/users".to_owned(), create, 201),
                    (
                        "PATCH",
                        format!("/v1/users/{id}"),
                        json!({ "name": format!("soak {n}") }),
                        200,
                    ),
                ];
                for (method, path, body, want) in calls {
                    match http
                        .try_send(method, &path, serde_json::to_vec(&body).unwrap())
                        .await
                    {
                        Ok((s, _)) if s == want => {
                            tally.writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((s, b)) => tally.error(format!("{method} {path} answered {s}: {b}")),
                        Err(e) => tally.error(e),
                    }
                }
            }
        }));
    }

    // The policy editor, on this task: one edit a second, each awaited in /v1/policy.
    let started = Instant::now();
    let mut rss_start = None;
    let mut rss_peak = 0;
    let mut edits = 0u64;
    let mut edit_times = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        let want = if edits.is_multiple_of(2) {
            write_atomically(&flip_file, FLIP);
            &deny_version
        } else {
            std::fs::remove_file(&flip_file).unwrap();
            &allow_version
        };
        loop {
            let (s, p) = anon.get("/v1/policy").await;
            if s == 200 && p["version"] == want.as_str() {
                if !p["last_error"].is_null() {
                    tally.error(format!("reload error: {p}"));
                }
                break;
            }
            if tick.elapsed() > DEADLINE {
                tally.error(format!("edit {edits} never installed: {p}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        edit_times.push(tick.elapsed());
        edits += 1;
        let rss = proc.rss_kib();
        rss_start.get_or_insert(rss);
        rss_peak = rss_peak.max(rss);
        if let Some(rest) = Duration::from_secs(1).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(proc.alive(), "the server died:\n{}", proc.log());
    let rss_end = proc.rss_kib();
    let rss_start = rss_start.unwrap_or(rss_end);
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort();
    edit_times.sort();
    let errors = tally.errors.load(Ordering::Relaxed);
    let inconsistent = tally.inconsistent.load(Ordering::Relaxed);
    let decisions = tally.decisions.load(Ordering::Relaxed);
    let denied = tally.denied.load(Ordering::Relaxed);
    let line = format!(
        "soak: {secs} s: {decisions} decisions ({:.0}/s, {denied} denied), {} management writes, {edits} policy edits \
         (installed in median {} max {}), errors {errors}, inconsistent {inconsistent}, \
         latency p50 {} p99 {} max {}, RSS {} KiB -> {} KiB (growth {} KiB, peak {} KiB)\n",
        decisions as f64 / started.elapsed().as_secs_f64(),
        tally.writes.load(Ordering::Relaxed),
        ms(percentile(&edit_times, 50.0)),
        ms(percentile(&edit_times, 100.0)),
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
        ms(percentile(&lat, 100.0)),
        rss_start,
        rss_end,
        rss_end.saturating_sub(rss_start),
        rss_peak,
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert_eq!(
        errors,
        0,
        "first error: {:?}\n{}",
        tally.first_error.lock().unwrap(),
        proc.log()
    );
    assert_eq!(inconsistent, 0);
    assert!(
        denied > 0 && denied < decisions,
        "answers under one version only: the flip was never observed"
    );
    assert!(edits >= secs.min(2), "only {edits} edits");
    assert!(
        tally.writes.load(Ordering::Relaxed) > 0,
        "no management write went through"
    );
    assert!(
        rss_end.saturating_sub(rss_start) < RSS_GROWTH_BOUND_KIB,
        "resident memory grew by {} KiB",
        rss_end - rss_start
    );
}
