//! Bad input: every case answered with a 4xx and the JSON error envelope.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{start, Fixture, Http, DEADLINE};

fn assert_envelope(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_4xx_envelopes() {
    let f = Fixture::new();
    let mut config = f.config();
    config.limits.max_batch = 10;
    let server = start(config).await;
    let http = Http::new(&server);

    let (s, b) = http
        .send("POST", "/v1/authorize", b"{\"principal\": ".to_vec())
        .await;
    assert_envelope(s, &b, 400, "malformed_json");

    let (s, b) = http
        .post("/v1/authorize", &json!({ "principal": "olivia" }))
        .await;
    assert_envelope(s, &b, 400, "invalid_body");

    let (s, b) = http
        .post("/v1/authorize", &json!({ "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"", "extra": 1 }))
        .await;
    assert_envelope(s, &b, 400, "invalid_body");

    // A misspelt type or action: 400, naming what is known.
    for (action, resource, says) in [
        (
            "shipment.create",
            "Portal::Shipmnt::\"s1\"",
            "did you mean `Portal::Shipment`?",
        ),
        (
            "shipment.crate",
            "Portal::Shipment::\"s1\"",
            "unknown action `shipment.crate`",
        ),
    ] {
        let body = json!({ "principal": "olivia", "action": action, "resource": resource });
        let (s, b) = http.post("/v1/authorize", &body).await;
        assert_envelope(s, &b, 400, "invalid_reference");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{b}");
    }

    let (s, b) = http
        .post("/v1/authorize", &json!({ "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"", "entities": [{ "uid": { "type": "Portal::Nope", "id": "x" }, "attrs": {}, "parents": [] }] }))
        .await;
    assert_envelope(s, &b, 400, "invalid_entities");

    let (s, b) = http
        .post("/v1/authorize", &json!({ "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"", "context": { "x": 1 } }))
        .await;
    assert_eq!(s, 400, "{b}");

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, b) = http.send("POST", "/v1/authorize", deep.into_bytes()).await;
    assert_envelope(s, &b, 400, "too_deep");

    let big = format!("{{\"principal\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (s, b) = http.send("POST", "/v1/authorize", big.into_bytes()).await;
    assert_envelope(s, &b, 413, "body_too_large");
    // The server answers 413 without reading the rest of the body and closes that connection;
    // a new client, so the next request does not race the close on a pooled connection.
    let http = Http::new(&server);

    let checks: Vec<Value> = (0..11)
        .map(|i| json!({ "id": i, "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"" }))
        .collect();
    let (s, b) = http
        .post("/v1/authorize/batch", &json!({ "checks": checks }))
        .await;
    assert_envelope(s, &b, 400, "batch_too_large");
    let (s, b) = http.post("/access/v1/evaluations", &json!({ "subject": { "type": "User", "id": "olivia" }, "action": { "name": "shipment.create" }, "resource": { "type": "Shipment", "id": "s1" }, "evaluations": vec![json!({}); 11] })).await;
    assert_envelope(s, &b, 400, "batch_too_large");

    let (s, b) = http.get("/v1/nothing").await;
    assert_envelope(s, &b, 404, "not_found");
    let (s, b) = http.get("/v1/authorize").await;
    assert_envelope(s, &b, 405, "method_not_allowed");

    // Still serving after all that.
    let (s, _) = http.get("/healthz").await;
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_gets_408() {
    let f = Fixture::new();
    let mut config = f.config();
    config.limits.header_read_timeout = Duration::from_millis(300);
    let server = start(config).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the server never cut the slow client off")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"header_timeout\""), "{text}");
    server.shutdown().await;
}
