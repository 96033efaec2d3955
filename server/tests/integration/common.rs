//! The harness: a policy folder copy, a server on an ephemeral port, a small HTTP client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_server::{Config, Installed, Server};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The bound for anything a test awaits.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A temp copy of the default policy folder and the test entities.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        copy_dir(&src, &dir.path().join("policies"));
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/entities.json"),
            dir.path().join("entities.json"),
        )
        .unwrap();
        Self { dir }
    }

    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn entities(&self) -> PathBuf {
        self.dir.path().join("entities.json")
    }

    /// A config serving this fixture on an ephemeral port, with a short debounce.
    pub fn config(&self) -> Config {
        let mut c = Config::new(self.policies());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.entities = Some(self.entities());
        c.reload_debounce = Duration::from_millis(10);
        c
    }
}

/// `method path` with a JSON body (none for `null`).
pub async fn send(http: &Http, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    http.send(method, path, bytes).await
}

/// Asserts that the documented operation `method path` is routed: sent with its parameters
/// filled in and an empty JSON body, it meets neither the router's fallback 404 nor a 405.
pub async fn assert_routed(http: &Http, method: &str, path: &str) {
    let concrete = ["id", "key", "link", "name"]
        .iter()
        .fold(path.to_owned(), |p, name| p.replace(&format!("{{{name}}}"), "x"));
    let (s, b) = http.send(&method.to_uppercase(), &concrete, b"{}".to_vec()).await;
    let fallback = s == 404 && b["error"]["message"] == "no such endpoint";
    assert!(!fallback, "{method} {path} is documented but not routed: {b}");
    assert_ne!(
        s, 405,
        "{method} {path} is documented but its method is not routed"
    );
}

/// The workspace's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every portal folder of the workspace, as relative paths: `policies` and each example with
/// a `roles.toml`, in name order.
pub fn portal_folders() -> Vec<String> {
    let mut examples: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("roles.toml").is_file())
        .map(|p| format!("examples/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    examples.sort();
    let mut out = vec!["policies".to_owned()];
    out.extend(examples);
    assert!(out.len() >= 6, "{out:?}");
    out
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A tiny JSON-over-HTTP client.
#[derive(Clone)]
pub struct Http {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    key: Option<String>,
}

impl Http {
    pub fn new(server: &Server) -> Self {
        Self {
            base: server.url(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            key: None,
        }
    }

    /// A client of a server known by its base URL (e.g. a `portcullis serve` process).
    pub fn at(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            key: None,
        }
    }

    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    pub async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let (status, text) = self.send_text(method, path, body).await;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn send_text(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, String) {
        self.try_send_text(method, path, body).await.unwrap()
    }

    /// Like `send`, but a failed connection or a timeout is an `Err` (for servers that die).
    pub async fn try_send(&self, method: &str, path: &str, body: Vec<u8>) -> Result<(u16, Value), String> {
        let (status, text) = self.try_send_text(method, path, body).await?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    pub async fn try_send_text(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        let req = self.request(method, path, body, &[]);
        let res = tokio::time::timeout(DEADLINE, self.client.request(req))
            .await
            .map_err(|_| format!("{method} {path}: request timed out"))?
            .map_err(|e| format!("{method} {path}: request failed: {e}"))?;
        let status = res.status().as_u16();
        let bytes = tokio::time::timeout(DEADLINE, res.into_body().collect())
            .await
            .map_err(|_| format!("{method} {path}: response timed out"))?
            .map_err(|e| format!("{method} {path}: response failed: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> hyper::Request<Full<Bytes>> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Full::new(Bytes::from(body))).unwrap()
    }

    /// A request with extra headers, answering the status, the response headers and the body.
    pub async fn with_headers(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, hyper::HeaderMap, String) {
        let req = self.request(method, path, body, headers);
        let res = tokio::time::timeout(DEADLINE, self.client.request(req))
            .await
            .unwrap()
            .unwrap();
        let (parts, body) = res.into_parts();
        let bytes = tokio::time::timeout(DEADLINE, body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        (
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, serde_json::to_vec(body).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, Vec::new()).await
    }
}

/// Olivia (owner at acme) creating shipment s1: allowed by the default policies.
pub fn olivia_creates() -> Value {
    json!({ "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"" })
}

/// Waits until an install with a generation above `after` is announced.
pub async fn await_install(server: &Server, after: u64) -> Installed {
    let mut rx = server.state.subscribe();
    let r = tokio::time::timeout(DEADLINE, rx.wait_for(|i| i.generation > after))
        .await
        .expect("no install within the deadline")
        .expect("watch closed");
    r.clone()
}

/// Polls `GET /v1/policy` (bounded) until `f` holds, returning the body.
pub async fn poll_policy(http: &Http, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, v) = http.get("/v1/policy").await;
        if f(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "policy never matched: {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts a server for a fixture.
pub async fn start(config: Config) -> Server {
    Server::start(config).await.unwrap()
}
