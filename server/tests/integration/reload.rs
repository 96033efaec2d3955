//! Hot reload: edits flip decisions, broken edits keep the old policy, saves of every editor
//! style never expose a partial folder.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::common::{await_install, olivia_creates, poll_policy, start, Fixture, Http};

const FORBID: &str = "@id(\"test.no-shipments\")\nforbid (principal, action == Portal::Action::\"shipment.create\", resource);\n";
const BROKEN: &str = "@id(\"test.no-shipments\")\nforbid (principal, action == Portal::Action::\"shipment.create\", resource\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_flip_decisions_broken_edits_keep_the_old_policy() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let file = f.policies().join("test.cedar");
    let (_, before) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(before["decision"], "allow");

    // An edit flips the decision.
    let g = server.state.subscribe().borrow().generation;
    std::fs::write(&file, FORBID).unwrap();
    let installed = await_install(&server, g).await;
    let (_, after) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(after["decision"], "deny", "{after}");
    assert_eq!(after["reasons"], serde_json::json!(["test.no-shipments"]));
    assert_eq!(after["version"], &*installed.version);
    assert_ne!(after["version"], before["version"]);

    // A broken edit keeps it and reports where.
    std::fs::write(&file, BROKEN).unwrap();
    let policy = poll_policy(&http, |p| !p["last_error"].is_null()).await;
    let message = policy["last_error"]["message"].as_str().unwrap();
    assert!(message.starts_with("test.cedar:"), "{message}");
    let d = &policy["last_error"]["diagnostics"][0];
    assert_eq!(d["file"], "test.cedar");
    assert!(
        d["line"].as_u64().unwrap() >= 1 && d["column"].as_u64().unwrap() >= 1,
        "{d}"
    );
    assert_eq!(policy["version"], &*installed.version);
    let (_, still) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(
        (still["decision"].clone(), still["version"].clone()),
        (after["decision"].clone(), after["version"].clone())
    );
    let (_, metrics) = http.send_text("GET", "/metrics", Vec::new()).await;
    assert!(
        metrics.contains("portcullis_reload_failures_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_last_reload_success 0"), "{metrics}");

    // The next good save recovers by itself.
    let g = server.state.subscribe().borrow().generation;
    std::fs::remove_file(&file).unwrap();
    let recovered = await_install(&server, g).await;
    assert_eq!(&*recovered.version, before["version"].as_str().unwrap());
    let policy = poll_policy(&http, |p| p["last_error"].is_null()).await;
    assert_eq!(policy["version"], before["version"]);
    let (_, again) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(again["decision"], "allow");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_reports_errors() {
    let f = Fixture::new();
    let mut config = f.config();
    config.watch = false;
    let server = start(config).await;
    let http = Http::new(&server);
    std::fs::write(f.policies().join("roles.toml"), "").unwrap();
    let (s, b) = http.send("POST", "/v1/policy/reload", Vec::new()).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["code"], "reload_failed");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("roles.toml"),
        "{b}"
    );
    std::fs::remove_file(f.policies().join("roles.toml")).unwrap();
    let (s, b) = http.send("POST", "/v1/policy/reload", Vec::new()).await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("disappeared"),
        "{b}"
    );
    std::fs::remove_file(f.policies().join("schema.cedarschema")).unwrap();
    let (s, _) = http.send("POST", "/v1/policy/reload", Vec::new()).await;
    assert_eq!(s, 422);
    let (_, d) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(d["decision"], "allow", "{d}");
    server.shutdown().await;
}

#[derive(Clone, Copy, Debug)]
enum Save {
    TruncateThenWrite,
    RenameOver,
    DeleteRecreate,
}

fn save(path: &std::path::Path, text: &str, how: Save) {
    use std::io::Write;
    match how {
        Save::TruncateThenWrite => {
            let mut f = std::fs::File::create(path).unwrap();
            f.flush().unwrap();
            std::thread::yield_now();
            f.write_all(text.as_bytes()).unwrap();
        }
        Save::RenameOver => {
            let tmp = path.with_file_name(".roles.toml.swp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        Save::DeleteRecreate => {
            std::fs::remove_file(path).unwrap();
            std::thread::yield_now();
            std::fs::write(path, text).unwrap();
        }
    }
}

async fn saves_never_expose_a_partial_folder(how: Save) {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let roles = f.policies().join("roles.toml");
    let original = std::fs::read_to_string(&roles).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (http, stop, count) = (http.clone(), stop.clone(), count.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (s, b): (u16, Value) = http.post("/v1/authorize", &olivia_creates()).await;
                assert_eq!((s, b["decision"].as_str()), (200, Some("allow")), "{how:?}: {b}");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut rx = server.state.subscribe();
    let writer = tokio::task::spawn_blocking(move || {
        for i in 0..100 {
            save(&roles, &format!("{original}\n# edit {i}\n"), how);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        roles
    });
    let roles = writer.await.unwrap();
    // The last save ends up served, whatever was skipped on the way.
    let last = std::fs::read_to_string(&roles).unwrap();
    assert!(last.ends_with("# edit 99\n"));
    let mut source_matches = false;
    let deadline = tokio::time::Instant::now() + crate::common::DEADLINE;
    while !source_matches {
        let served = server.state.served();
        source_matches = served
            .snapshot
            .sources()
            .roles
            .as_ref()
            .is_some_and(|r| r.text == last);
        if !source_matches {
            let _ = tokio::time::timeout_at(deadline, rx.changed())
                .await
                .expect("the last save was never served");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(count.load(Ordering::Relaxed) > 0);
    let policy = poll_policy(&http, |p| p["last_error"].is_null()).await;
    assert_eq!(policy["version"], server.state.served().snapshot.version());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_then_write_saves_never_expose_a_partial_folder() {
    saves_never_expose_a_partial_folder(Save::TruncateThenWrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_over_saves_never_expose_a_partial_folder() {
    saves_never_expose_a_partial_folder(Save::RenameOver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_recreate_saves_never_expose_a_partial_folder() {
    saves_never_expose_a_partial_folder(Save::DeleteRecreate).await;
}
