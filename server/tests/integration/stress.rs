//! 1,000 installs under concurrent decisions: no errors, and every answer's decision is the
//! one its reported version gives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{olivia_creates, start, Fixture, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reloads_under_load() {
    let f = Fixture::new();
    let mut config = f.config();
    config.watch = false;
    let server = start(config).await;
    let http = Http::new(&server);
    let allow = server.state.served().snapshot.clone();
    // The same folder with a forbid added: olivia's request is denied under it.
    let other = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(f.policies()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), other.path().join(e.file_name())).unwrap();
        }
    }
    std::fs::write(
        other.path().join("test.cedar"),
        "forbid (principal, action == Portal::Action::\"shipment.create\", resource);\n",
    )
    .unwrap();
    let deny = Arc::new(portcullis_engine::load(other.path()).unwrap());
    let expected: Arc<HashMap<String, &str>> = Arc::new(HashMap::from([
        (allow.version().to_owned(), "allow"),
        (deny.version().to_owned(), "deny"),
    ]));

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let seen_deny = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, stop, answered, seen_deny, expected) = (
            http.clone(),
            stop.clone(),
            answered.clone(),
            seen_deny.clone(),
            expected.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (s, b) = http.post("/v1/authorize", &olivia_creates()).await;
                assert_eq!(s, 200, "{b}");
                let version = b["version"].as_str().unwrap();
                let want = expected
                    .get(version)
                    .unwrap_or_else(|| panic!("unknown version {version}"));
                assert_eq!(b["decision"], *want, "{b}");
                if *want == "deny" {
                    seen_deny.fetch_add(1, Ordering::Relaxed);
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let state = server.state.clone();
    let g0 = state.subscribe().borrow().generation;
    for i in 0..1000 {
        let s = if i % 2 == 0 { deny.clone() } else { allow.clone() };
        state.install_snapshot(s);
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Keep the load going over a few more installs so answers under both versions are seen.
    let until = answered.load(Ordering::Relaxed) + 200;
    let mut i = 0;
    while answered.load(Ordering::Relaxed) < until {
        let s = if i % 2 == 0 { deny.clone() } else { allow.clone() };
        state.install_snapshot(s);
        i += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(state.subscribe().borrow().generation >= g0 + 1000);
    assert!(seen_deny.load(Ordering::Relaxed) > 0);
    server.shutdown().await;
}
