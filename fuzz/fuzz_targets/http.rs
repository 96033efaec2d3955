//! Fuzzes the HTTP API, management routes first: the real axum router of `portcullis_server`
//! over the default `policies/` folder and a real SQLite user store in a temp dir, driven with
//! `tower::ServiceExt::oneshot` (no socket).
//!
//! Input layout: byte 0 picks a route (method and path, see [`ROUTES`]), byte 1 picks the id
//! in the path and the caller's API key, the rest is the request body, or the query string of
//! a `GET` route. The store holds two companies with an owner each, a regular user and a
//! pending visitor grant. Every response must carry a status below 500 and, when it is an
//! error, the JSON envelope `{ "error": { "code", "message" } }`; a panic aborts (libFuzzer's
//! panic hook runs before the server's catch-panic layer could answer 500).
//!
//! Writes accumulate in the store, so the whole environment (store, state, router) is rebuilt
//! every [`RESET_EVERY`] inputs: the store cannot grow without bound, and a crash replays from
//! a fresh environment.

#![no_main]

use std::cell::RefCell;

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use portcullis_server::{AppState, Config};
use portcullis_store::{Audit, NewCompany, NewUser, UserStore};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Inputs served by one environment before it is rebuilt.
const RESET_EVERY: u32 = 2_000;

/// Method and path of each route; `{id}` takes an id from [`IDS`], `{key}` too.
const ROUTES: [(&str, &str); 30] = [
    ("POST", "/v1/users"),
    ("GET", "/v1/users"),
    ("GET", "/v1/users/{id}"),
    ("PATCH", "/v1/users/{id}"),
    ("DELETE", "/v1/users/{id}"),
    ("PUT", "/v1/users/{id}/role"),
    ("POST", "/v1/users/{id}/deactivate"),
    ("POST", "/v1/users/{id}/reactivate"),
    ("POST", "/v1/users/{id}/move"),
    ("PUT", "/v1/users/{id}/companies"),
    ("GET", "/v1/users/{id}/api-keys"),
    ("POST", "/v1/users/{id}/api-keys"),
    ("DELETE", "/v1/users/{id}/api-keys/{id}"),
    ("GET", "/v1/companies/{id}"),
    ("GET", "/v1/grants"),
    ("POST", "/v1/grants"),
    ("POST", "/v1/grants/{id}/approve"),
    ("POST", "/v1/grants/{id}/refuse"),
    ("POST", "/v1/grants/{id}/revoke"),
    ("GET", "/v1/invitations"),
    ("POST", "/v1/invitations"),
    ("DELETE", "/v1/invitations/{id}"),
    ("POST", "/v1/invitations/accept"),
    ("GET", "/v1/audit"),
    ("POST", "/v1/authorize"),
    ("POST", "/v1/authorize/batch"),
    ("POST", "/v1/permissions"),
    ("POST", "/access/v1/evaluation"),
    ("POST", "/access/v1/evaluations"),
    ("DELETE", "/v1/users"),
];

/// Path ids: the seeded users and companies, the pending grant (`{grant}`), an unknown id and
/// one that does not decode to UTF-8.
const IDS: [&str; 8] = [
    "own1",
    "reg1",
    "bown",
    "acme",
    "beta",
    "{grant}",
    "nobody",
    "%FF%2E%2E%2F%00",
];

/// The environment inputs run against.
struct Env {
    rt: tokio::runtime::Runtime,
    app: Router,
    /// API keys of `own1` (owner of acme), `reg1` (regular of acme), `bown` (owner of beta).
    keys: [String; 3],
    grant: String,
    served: u32,
    _dir: tempfile::TempDir,
}

thread_local! {
    static ENV: RefCell<Option<Env>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let [route, who, rest @ ..] = data else {
        return;
    };
    ENV.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|e| e.served >= RESET_EVERY) {
            *slot = None;
            *slot = Some(setup());
        }
        let Some(env) = slot.as_mut() else { return };
        env.served += 1;
        let (method, template) = ROUTES[usize::from(*route) % ROUTES.len()];
        let id = IDS[usize::from(*who) % IDS.len()].replace("{grant}", &env.grant);
        let mut uri = template.replace("{id}", &id);
        let mut body = rest.to_vec();
        if method == "GET" {
            uri.push('?');
            uri.push_str(&query_string(rest));
            body.clear();
        }
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST))
            .uri(uri)
            // A loopback name, as `allowed_hosts` wants by default (421 otherwise).
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json");
        match (usize::from(*who) / IDS.len()) % 5 {
            3 => {}
            4 => req = req.header(header::AUTHORIZATION, "Bearer not-a-key"),
            k => req = req.header(header::AUTHORIZATION, format!("Bearer {}", env.keys[k])),
        }
        let Ok(req) = req.body(Body::from(body)) else {
            return;
        };
        let app = env.app.clone();
        let (status, bytes) = env.rt.block_on(async move {
            let res = app.oneshot(req).await.unwrap_or_else(|e| match e {});
            let status = res.status();
            let bytes = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, bytes)
        });
        assert!(
            status.as_u16() < 500,
            "{method} {template}: status {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        if status.is_client_error() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{method} {template}: {status} without the error envelope: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    });
});

/// The bytes as a query string: kept where they are plain, percent-encoded otherwise.
fn query_string(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~=&+%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A fresh store with two companies, their owners, a regular user and a pending grant.
#[expect(
    clippy::expect_used,
    reason = "a broken setup is not a finding: stop the run loudly"
)]
fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(portcullis_fuzz::repo_root().join("policies"));
    config.database_url = Some(dir.path().join("portcullis.db").display().to_string());
    config.watch = false;
    let state = AppState::open(config).expect("the default policies build");
    let (app, keys, grant) = rt.block_on(async {
        portcullis_server::manage::attach(&state)
            .await
            .expect("store attaches");
        let url = state.config.database_url.clone().unwrap_or_default();
        let (store, _) = portcullis_server::manage::open_store(&url)
            .await
            .expect("store opens");
        for (id, limit) in [("acme", Some(50)), ("beta", None)] {
            store
                .create_company(
                    NewCompany {
                        id: id.to_owned(),
                        name: id.to_owned(),
                        account_type: "customer".to_owned(),
                        user_limit: limit,
                        ..NewCompany::default()
                    },
                    &Audit::system(),
                )
                .await
                .expect("company");
        }
        let mut keys = Vec::new();
        for (id, company, role) in [
            ("own1", "acme", "owner"),
            ("reg1", "acme", "regular"),
            ("bown", "beta", "owner"),
        ] {
            keys.push(user(&*store, id, company, role).await);
        }
        let app = portcullis_server::http::router(state.clone());
        let req = Request::post("/v1/grants")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", keys[1]))
            .body(Body::from(json!({ "company": "beta" }).to_string()))
            .expect("grant request");
        let res = app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let bytes = res.into_body().collect().await.expect("grant body").to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let grant = v["id"].as_str().expect("a pending grant").to_owned();
        let keys: [String; 3] = keys.try_into().expect("three keys");
        (app, keys, grant)
    });
    Env {
        rt,
        app,
        keys,
        grant,
        served: 0,
        _dir: dir,
    }
}

#[expect(
    clippy::expect_used,
    reason = "a broken setup is not a finding: stop the run loudly"
)]
async fn user(store: &dyn UserStore, id: &str, company: &str, role: &str) -> String {
    let mut attrs = serde_json::Map::new();
    attrs.insert("scope_all".to_owned(), json!(true));
    store
        .create_user(
            NewUser {
                id: Some(id.to_owned()),
                company: company.to_owned(),
                login: id.to_owned(),
                role: role.to_owned(),
                attrs,
                ..NewUser::default()
            },
            &Audit::system(),
        )
        .await
        .expect("user");
    let key = store
        .create_api_key(id, "fuzz", None, &Audit::system())
        .await
        .expect("api key");
    key.secret.expose().to_owned()
}
