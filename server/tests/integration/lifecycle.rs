//! The server around the decisions: API key, panics, graceful shutdown, metrics, OpenAPI.

use std::sync::Arc;

use axum::routing::post;
use portcullis_server::Server;
use serde_json::json;
use tokio::sync::Notify;

use crate::common::{olivia_creates, start, Fixture, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_guards_decisions() {
    let f = Fixture::new();
    let mut config = f.config();
    config.api_key = Some(portcullis_server::config::Secret::new("k-0123456789abcdef"));
    let server = start(config).await;
    let http = Http::new(&server);
    let (s, b) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (s, _) = http
        .clone()
        .with_key("wrong")
        .post("/v1/authorize", &olivia_creates())
        .await;
    assert_eq!(s, 401);
    let (s, b) = http
        .clone()
        .with_key("k-0123456789abcdef")
        .post("/v1/authorize", &olivia_creates())
        .await;
    assert_eq!((s, b["decision"].as_str()), (200, Some("allow")), "{b}");
    let (s, _) = http.get("/healthz").await;
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_500_and_the_server_lives_on() {
    let f = Fixture::new();
    let extra = axum::Router::new().route(
        "/v1/test/panic",
        post(|| async {
            let empty: Vec<&'static str> = Vec::new();
            empty[0]
        }),
    );
    let server = Server::start_with(f.config(), extra).await.unwrap();
    let http = Http::new(&server);
    let (s, b) = http.post("/v1/test/panic", &json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (500, Some("internal")));
    assert!(!b.to_string().contains("index out of bounds"));
    let (s, _) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests() {
    let f = Fixture::new();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let extra = axum::Router::new().route(
        "/v1/test/slow",
        post(move || {
            let (e, r) = (e.clone(), r.clone());
            async move {
                e.notify_one();
                r.notified().await;
                "done"
            }
        }),
    );
    let server = Server::start_with(f.config(), extra).await.unwrap();
    let http = Http::new(&server);
    let in_flight = tokio::spawn(async move { http.send_text("POST", "/v1/test/slow", Vec::new()).await });
    entered.notified().await;
    let addr = server.addr;
    let shutdown = tokio::spawn(server.shutdown());
    // New connections are refused once the listener is closed.
    let deadline = tokio::time::Instant::now() + crate::common::DEADLINE;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never closed"
        );
        tokio::task::yield_now().await;
    }
    release.notify_one();
    let (s, body) = in_flight.await.unwrap();
    assert_eq!((s, body.as_str()), (200, "done"));
    tokio::time::timeout(crate::common::DEADLINE, shutdown)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_openapi_describe_the_server() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(http.get("/v1/no-such-thing").await.0, 404);
    let (s, text) = http.send_text("GET", "/metrics", Vec::new()).await;
    assert_eq!(s, 200);
    assert!(
        text.contains("portcullis_decisions_total{result=\"allow\"} 1"),
        "{text}"
    );
    assert!(text.contains("portcullis_decision_errors_total 0"), "{text}");
    // The decision and the 404; the /metrics answer itself is counted after it is written.
    assert!(
        text.contains("portcullis_http_responses_total{class=\"2xx\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_http_responses_total{class=\"4xx\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_decision_request_duration_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "portcullis_policy_info{{version=\"{}\"}} 1",
        server.state.served().snapshot.version()
    )));
    assert!(text.contains("portcullis_reloads_total 0"));
    assert!(text.contains("portcullis_entities 5"), "{text}");
    for cache in ["users", "decisions", "slices", "inline_entities"] {
        for kind in ["hits", "misses"] {
            let line = format!("portcullis_cache_{kind}_total{{cache=\"{cache}\"}} ");
            assert!(text.contains(&line), "{line} missing: {text}");
        }
    }

    let (s, doc) = http.get("/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // The document is made from the handlers' own attributes (utoipa): every operation of it
    // is routed, with its method, and every decision route is in it.
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/authorize",
        "/v1/authorize/batch",
        "/v1/permissions",
        "/access/v1/evaluation",
        "/v1/policy",
        "/openapi.json",
        "/",
    ] {
        assert!(paths.contains_key(route), "{route} missing");
    }
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            crate::common::assert_routed(&http, method, path).await;
        }
    }
    assert!(operations >= 68, "{operations} operations");
    // Operation ids are made from method and path: one per operation, none twice.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), operations, "operation ids missing or repeated");
    let (_, policy) = http.get("/v1/policy").await;
    assert_eq!(
        policy["files"].as_array().map(Vec::len),
        Some(server.state.served().snapshot.sources().policy_files().count())
    );
    assert_eq!(policy["entities"]["count"], 5);
    server.shutdown().await;
}

/// Readiness apart from liveness: `/readyz` is 200 while serving with a store that answers,
/// 503 from SIGTERM on while the server keeps answering for `--drain-delay-ms`, and the process
/// then exits 0 on its own; `/healthz` stays 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_at_sigterm_and_the_server_drains_then_exits() {
    use std::time::{Duration, Instant};

    use crate::procs::Proc;
    let f = Fixture::new();
    let db = f.dir.path().join("ready.db");
    let entities = f.entities();
    let extra = [
        "--entities",
        entities.to_str().unwrap(),
        "--drain-delay-ms",
        "1500",
    ];
    let (mut proc, _) = Proc::serve(&f.policies(), Some(db.to_str().unwrap()), &extra);
    let http = Http::at(proc.url.clone());
    let (s, b) = http.get("/readyz").await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ready")), "{b}");
    let (s, _) = http.get("/healthz").await;
    assert_eq!(s, 200);
    let (s, b) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(
        (s, b["decision"].as_str()),
        (200, Some("allow")),
        "before SIGTERM: {b}"
    );

    let sent = Instant::now();
    proc.terminate();
    // Not ready at once; still answering (decisions and liveness) while the balancer notices.
    let mut seen = None;
    while sent.elapsed() < Duration::from_millis(1200) {
        let (s, b) = http.get("/readyz").await;
        if s == 503 {
            seen = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = seen.expect("/readyz never said 503 after SIGTERM");
    assert_eq!(b["status"], "draining", "{b}");
    let (s, _) = http.get("/healthz").await;
    assert_eq!(s, 200, "liveness holds while draining");
    let (s, b) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(
        (s, b["decision"].as_str()),
        (200, Some("allow")),
        "decisions still answered: {b}"
    );

    let status = tokio::task::spawn_blocking(move || proc.wait_exit())
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "left before its drain delay: {:?}",
        sent.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_draining_in_process_too() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let (s, _) = http.get("/readyz").await;
    assert_eq!(s, 200);
    server.state.start_draining();
    let (s, b) = http.get("/readyz").await;
    assert_eq!((s, b["status"].as_str()), (503, Some("draining")), "{b}");
    server.shutdown().await;
}
