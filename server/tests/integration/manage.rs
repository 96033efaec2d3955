//! The management API against a real server and a real store (a SQLite temp file; PostgreSQL
//! when reachable): the shipping platform's and the customs portal's user-management paragraphs walked through `/v1/`,
//! decisions by stored user id, cache invalidation, audit filters and CSV, authentication.

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_server::Server;
use portcullis_store::{Audit, NewCompany, NewUser, UserStore};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

use crate::common::{start, Fixture, Http};

pub struct Env {
    pub _fx: Fixture,
    pub server: Server,
    pub store: Arc<dyn UserStore>,
    pub _url: String,
}

pub fn sqlite_url(fx: &Fixture) -> String {
    fx.dir.path().join("portcullis.db").display().to_string()
}

pub async fn env_at(fx: Fixture, url: String) -> Env {
    let mut config = fx.config();
    config.database_url = Some(url.clone());
    let server = start(config).await;
    let (store, _) = portcullis_server::manage::open_store(&url).await.unwrap();
    Env {
        _fx: fx,
        server,
        store,
        _url: url,
    }
}

pub async fn sqlite_env() -> Env {
    let fx = Fixture::new();
    let url = sqlite_url(&fx);
    env_at(fx, url).await
}

fn postgres_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database, or `None` (and a loud SKIPPED line) when unreachable.
pub async fn fresh_postgres() -> Option<String> {
    let url = postgres_url();
    let admin = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url))
        .await
        .ok()
        .and_then(Result::ok);
    let Some(mut admin) = admin else {
        let line = format!("SKIPPED: PostgreSQL not reachable at {url} (set PORTCULLIS_TEST_POSTGRES_URL)\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "portcullis_srv_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

pub async fn drop_postgres(url: &str) {
    let (_, name) = url.rsplit_once('/').unwrap();
    if let Ok(mut admin) = PgConnection::connect(&postgres_url()).await {
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
    }
}

pub async fn company(store: &dyn UserStore, id: &str, account_type: &str, limit: Option<u32>) {
    store
        .create_company(
            NewCompany {
                id: id.to_owned(),
                name: id.to_owned(),
                account_type: account_type.to_owned(),
                user_limit: limit,
                ..NewCompany::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
}

/// A user created as the system (the bootstrap), and an API key for it.
pub async fn user_with_key(
    store: &dyn UserStore,
    id: &str,
    company: &str,
    role: &str,
    scope_all: bool,
) -> String {
    let mut attrs = serde_json::Map::new();
    attrs.insert("scope_all".to_owned(), json!(scope_all));
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
        .unwrap();
    key_for(store, id).await
}

pub async fn key_for(store: &dyn UserStore, id: &str) -> String {
    let k = store
        .create_api_key(id, "test", None, &Audit::system())
        .await
        .unwrap();
    k.secret.expose().to_owned()
}

pub fn loc(id: &str) -> Value {
    json!({ "__entity": { "type": "Portal::Location", "id": id } })
}

/// `POST /v1/authorize` with a stored principal; returns "allow" or "deny".
pub async fn decide(http: &Http, principal: &str, action: &str, resource: &str, entities: Value) -> String {
    let (status, body) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": principal, "action": action, "resource": resource, "entities": entities }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["decision"].as_str().unwrap().to_owned()
}

/// Asks until the decision is `want` (a store change reaching the server's cache), failing
/// after `within`.
async fn await_decision(
    http: &Http,
    principal: &str,
    action: &str,
    resource: &str,
    want: &str,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let d = decide(http, principal, action, resource, json!([])).await;
        if d == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{principal} {action} {resource}: still {d}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_error(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn send(http: &Http, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    http.send(method, path, bytes).await
}

/// A shipment of `beta`, for visitor decisions.
fn beta_shipment() -> Value {
    json!([
        { "uid": { "type": "Portal::Shipment", "id": "bs1" },
          "attrs": { "owner": { "__entity": { "type": "Portal::User", "id": "bown" } } },
          "parents": [ { "type": "Portal::Location", "id": "bl1" }, { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::Location", "id": "bl1" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] }
    ])
}

/// The shipping platform's user-management paragraphs, end to end.
async fn shipping_platform_paragraphs(env: &Env) {
    let store = &*env.store;
    company(store, "acme", "customer", Some(20)).await;
    company(store, "beta", "customer", None).await;
    let owner_key = user_with_key(store, "own1", "acme", "owner", true).await;
    let beta_key = user_with_key(store, "bown", "beta", "owner", true).await;
    let anon = Http::new(&env.server);
    let owner = Http::new(&env.server).with_key(&owner_key);
    let beta_owner = Http::new(&env.server).with_key(&beta_key);

    // No key, a wrong key: 401 with the JSON envelope.
    let (s, b) = anon
        .post("/v1/users", &json!({ "login": "x", "role": "regular" }))
        .await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = Http::new(&env.server)
        .with_key("pck_nope_nope")
        .get("/v1/users")
        .await;
    assert_error(s, &b, 401, "unauthorized");

    // "Admin - an admin user is created by the owner user, who defines which scope…"
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "adm1", "login": "adm1", "role": "admin",
                     "attrs": { "scope_all": false, "locations": [loc("l1")] } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["role"], "admin");
    let admin_key = key_for(store, "adm1").await;
    let admin = Http::new(&env.server).with_key(&admin_key);

    // "Regular - a regular user can be created by an owner or an admin user" (inside its scope).
    let (s, b) = admin
        .post(
            "/v1/users",
            &json!({ "id": "reg1", "login": "reg1", "role": "regular",
                     "attrs": { "scope_all": false, "locations": [loc("l1")] } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    // …never outside the admin's scope.
    let (s, b) = admin
        .post(
            "/v1/users",
            &json!({ "id": "reg-out", "login": "reg-out", "role": "regular",
                     "attrs": { "scope_all": false, "locations": [loc("l2")] } }),
        )
        .await;
    assert_error(s, &b, 403, "forbidden");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scope.assign-within"),
        "{b}"
    );

    // In a Customer account only the Owner creates Admins.
    let (s, b) = admin
        .post(
            "/v1/users",
            &json!({ "id": "adm2", "login": "adm2", "role": "admin",
                     "attrs": { "scope_all": false, "locations": [loc("l1")] } }),
        )
        .await;
    assert_error(s, &b, 403, "forbidden");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("users.customer-admins-by-owner"),
        "{b}"
    );
    // A regular user manages no one.
    let reg_key = key_for(store, "reg1").await;
    let regular = Http::new(&env.server).with_key(&reg_key);
    let (s, b) = regular
        .post(
            "/v1/users",
            &json!({ "id": "r2", "login": "r2", "role": "regular" }),
        )
        .await;
    assert_error(s, &b, 403, "forbidden");

    // Decisions by stored user id: the admin edits shipping rules, the regular user does not.
    let company = "Portal::Company::\"acme\"";
    assert_eq!(
        decide(&anon, "adm1", "shipping_rule.edit", company, json!([])).await,
        "allow"
    );
    assert_eq!(
        decide(&anon, "reg1", "shipping_rule.edit", company, json!([])).await,
        "deny"
    );

    // Change role: the next decision sees it (the write clears the cache).
    let (s, b) = send(&owner, "PUT", "/v1/users/adm1/role", json!({ "role": "regular" })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        decide(&anon, "adm1", "shipping_rule.edit", company, json!([])).await,
        "deny"
    );
    let (s, b) = send(&owner, "PUT", "/v1/users/adm1/role", json!({ "role": "admin" })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        decide(&anon, "adm1", "shipping_rule.edit", company, json!([])).await,
        "allow"
    );
    // An admin cannot make itself owner.
    let (s, b) = send(&admin, "PUT", "/v1/users/adm1/role", json!({ "role": "owner" })).await;
    assert_error(s, &b, 403, "forbidden");

    // Edit a profile, read it back.
    let (s, b) = send(&admin, "PATCH", "/v1/users/reg1", json!({ "name": "Regina" })).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = admin.get("/v1/users/reg1").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], "Regina");
    // Isolation is a flag: an assignment change.
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/reg1",
        json!({ "flags": ["isolated"] }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["flags"], json!(["isolated"]));
    let (s, b) = send(&admin, "PATCH", "/v1/users/reg1", json!({ "flags": [] })).await;
    assert_eq!(s, 200, "{b}");

    // Deactivate → denied everywhere; reactivate → allowed again.
    let report = "report.shipment.create";
    assert_eq!(decide(&anon, "reg1", report, company, json!([])).await, "allow");
    let (s, b) = admin.post("/v1/users/reg1/deactivate", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["active"], false);
    assert_eq!(decide(&anon, "reg1", report, company, json!([])).await, "deny");
    let (s, b) = admin.post("/v1/users/reg1/reactivate", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(decide(&anon, "reg1", report, company, json!([])).await, "allow");

    // Invite and accept (once); list; revoke another.
    let (s, b) = admin
        .post(
            "/v1/invitations",
            &json!({ "email": "new@acme.test", "role": "regular",
                     "attrs": { "scope_all": false, "locations": [loc("l1")] } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    let (s, b) = admin
        .post(
            "/v1/invitations",
            &json!({ "email": "boss@acme.test", "role": "admin" }),
        )
        .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = admin.get("/v1/invitations").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["invitations"].as_array().unwrap().len(), 1, "{b}");
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": token, "user_id": "inv1", "name": "Ivy" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["role"], "regular");
    assert_eq!(b["company"], "acme");
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": token, "user_id": "inv2" }),
        )
        .await;
    assert!((400..500).contains(&s), "{s} {b}");
    assert!(b["error"]["code"].is_string(), "{b}");
    let (s, b) = owner
        .post(
            "/v1/invitations",
            &json!({ "email": "late@acme.test", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let inv = b["invitation"]["id"].as_str().unwrap().to_owned();
    let (s, b) = send(&owner, "DELETE", &format!("/v1/invitations/{inv}"), Value::Null).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "revoked");

    // Delete keeps the audit history; records go to the named user.
    let (s, b) = send(&admin, "DELETE", "/v1/users/inv1?transfer_to=adm1", Value::Null).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["transfer_to"], "adm1");
    let (s, b) = admin.get("/v1/users/inv1").await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = owner.get("/v1/audit?user=inv1").await;
    assert_eq!(s, 200, "{b}");
    let actions: Vec<&str> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.delete"), "{actions:?}");
    assert!(actions.contains(&"invitation.accept"), "{actions:?}");

    // Visitor grant: requested, approved by the other company's owner, used, revoked.
    let shipment = "Portal::Shipment::\"bs1\"";
    assert_eq!(
        decide(&anon, "reg1", "shipment.read", shipment, beta_shipment()).await,
        "deny"
    );
    let (s, b) = regular.post("/v1/grants", &json!({ "company": "beta" })).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["status"], "requested");
    let grant = b["id"].as_str().unwrap().to_owned();
    let (s, b) = owner
        .post(&format!("/v1/grants/{grant}/approve"), &json!({}))
        .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = beta_owner.get("/v1/grants?company=beta").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["grants"].as_array().unwrap().len(), 1, "{b}");
    let (s, b) = beta_owner
        .post(&format!("/v1/grants/{grant}/approve"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "approved");
    assert_eq!(
        decide(&anon, "reg1", "shipment.read", shipment, beta_shipment()).await,
        "allow"
    );
    let (s, b) = anon
        .post(
            "/v1/authorize",
            &json!({ "principal": "reg1", "action": "shipment.read", "resource": shipment, "entities": beta_shipment() }),
        )
        .await;
    assert!(b["reasons"][0].as_str().unwrap().starts_with("grant:"), "{s} {b}");
    let (s, b) = beta_owner
        .post(&format!("/v1/grants/{grant}/revoke"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        decide(&anon, "reg1", "shipment.read", shipment, beta_shipment()).await,
        "deny"
    );

    // Denied calls are audited with outcome `denied`.
    let (s, b) = owner.get("/v1/audit?action=user.create").await;
    assert_eq!(s, 200, "{b}");
    let entries = b["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["action"] == "user.create"), "{b}");
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "adm1" && e["target"] == "user:adm2"),
        "{b}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "success" && e["target"] == "user:reg1"),
        "{b}"
    );
    // A regular user cannot read the audit trail.
    let (s, b) = regular.get("/v1/audit").await;
    assert_error(s, &b, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_platform_user_management_sqlite() {
    let env = sqlite_env().await;
    shipping_platform_paragraphs(&env).await;
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_platform_user_management_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let env = env_at(Fixture::new(), url.clone()).await;
    shipping_platform_paragraphs(&env).await;
    env.server.shutdown().await;
    drop_postgres(&url).await;
}

/// Seed the customs portal: a shipper's admin creates and manages every role, Admins included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customs_portal_admin_creates_admins() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "ship", "shipper", None).await;
    let key = user_with_key(store, "sadm", "ship", "admin", true).await;
    let admin = Http::new(&env.server).with_key(&key);
    for (id, role) in [("a2", "admin"), ("u1", "user"), ("v1", "viewer")] {
        let (s, b) = admin
            .post("/v1/users", &json!({ "id": id, "login": id, "role": role }))
            .await;
        assert_eq!(s, 201, "{role}: {b}");
    }
    // Roles the account type does not have cannot be given.
    let (s, b) = admin
        .post(
            "/v1/users",
            &json!({ "id": "o1", "login": "o1", "role": "owner" }),
        )
        .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = send(&admin, "PUT", "/v1/users/u1/role", json!({ "role": "viewer" })).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = admin.get("/v1/users").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["users"].as_array().unwrap().len(), 4, "{b}");
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_limit_is_enforced() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "small", "customer", Some(2)).await;
    let key = user_with_key(store, "sown", "small", "owner", true).await;
    let owner = Http::new(&env.server).with_key(&key);
    let new = |id: &str| json!({ "id": id, "login": id, "role": "regular", "attrs": { "scope_all": true } });
    let (s, b) = owner.post("/v1/users", &new("s1")).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = owner.post("/v1/users", &new("s2")).await;
    assert_error(s, &b, 409, "limit_reached");
    // The refused write is audited as failed.
    let (s, b) = owner.get("/v1/audit?action=user.create").await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "failed"
                && e["target"] == "user:s2"
                && e["details"]["error"]["code"] == "limit_reached"),
        "{b}"
    );
    // Deactivating frees a seat.
    let (s, b) = owner.post("/v1/users/s1/deactivate", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = owner.post("/v1/users", &new("s2")).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = owner.post("/v1/users/s2/deactivate", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    // A duplicate login is a conflict named by its constraint.
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "s3", "login": "s2", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("users_login_key"),
        "{b}"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_filters_and_csv() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    let key = user_with_key(store, "own1", "acme", "owner", true).await;
    let owner = Http::new(&env.server).with_key(&key);
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "=cmd", "login": "=HYPERLINK(\"x\")", "role": "regular", "attrs": { "scope_all": true } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = owner.post("/v1/users/=cmd/deactivate", &json!({})).await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = owner.get("/v1/audit?user=%3Dcmd").await;
    assert_eq!(s, 200, "{b}");
    let actions: Vec<&str> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.deactivate", "user.create"], "{b}");
    let (s, b) = owner.get("/v1/audit?action=user.deactivate").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["entries"].as_array().unwrap().len(), 1, "{b}");
    let (s, b) = owner.get("/v1/audit?since=2999-01-01").await;
    assert_eq!(s, 200, "{b}");
    assert!(b["entries"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = owner
        .get("/v1/audit?until=2999-01-01T00:00:00Z&since=2000-01-01")
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["entries"].as_array().unwrap().len() >= 2, "{b}");
    let (s, b) = owner.get("/v1/audit?since=yesterday").await;
    assert_error(s, &b, 400, "invalid_query");
    // Another company's trail is not the caller's to read.
    company(store, "beta", "customer", None).await;
    let (s, b) = owner.get("/v1/audit?company=beta").await;
    assert_error(s, &b, 403, "forbidden");

    let (s, csv) = owner
        .send_text("GET", "/v1/audit?user=%3Dcmd&format=csv", Vec::new())
        .await;
    assert_eq!(s, 200, "{csv}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,at,actor,company,action,target,outcome,version,details"
    );
    assert!(csv.contains(",user:=cmd,"), "{csv}");
    // A user whose id starts with `=` acting: its actor cell is neutralised.
    let evil_key = key_for(store, "=cmd").await;
    let (s, _) = owner.post("/v1/users/=cmd/reactivate", &json!({})).await;
    assert_eq!(s, 200);
    let evil = Http::new(&env.server).with_key(&evil_key);
    let (s, _) = evil
        .post(
            "/v1/users",
            &json!({ "id": "z", "login": "z", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 403);
    let (_, csv) = owner
        .send_text("GET", "/v1/audit?user=%3Dcmd&format=csv", Vec::new())
        .await;
    assert!(csv.contains(",'=cmd,acme,user.create,user:z,denied,"), "{csv}");
    assert!(
        !csv.lines().any(|l| l.split(',').any(|c| c.starts_with('='))),
        "{csv}"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_by_stored_id_and_revoked_keys() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    let key = user_with_key(store, "own1", "acme", "owner", true).await;
    let anon = Http::new(&env.server);
    let company = "Portal::Company::\"acme\"";
    assert_eq!(decide(&anon, "own1", "theme.configure", "Portal::Theme::\"t\"", json!([
        { "uid": { "type": "Portal::Theme", "id": "t" }, "attrs": {}, "parents": [ { "type": "Portal::Company", "id": "acme" } ] }
    ])).await, "allow");
    assert_eq!(decide(&anon, "own1", "data.delete", "Portal::DataStore::\"d\"", json!([
        { "uid": { "type": "Portal::DataStore", "id": "d" }, "attrs": {}, "parents": [ { "type": "Portal::Company", "id": "acme" } ] }
    ])).await, "allow");
    // A principal the store does not know is decided from the request alone.
    assert_eq!(
        decide(&anon, "nobody", "shipping_rule.edit", company, json!([])).await,
        "deny"
    );
    // A write made behind the server's back (another instance) reaches it within a second.
    store
        .update_user(
            "own1",
            portcullis_store::UserPatch {
                role: Some("regular".to_owned()),
                ..Default::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    await_decision(
        &anon,
        "own1",
        "shipping_rule.edit",
        company,
        "deny",
        Duration::from_secs(1),
    )
    .await;
    // Keys over the API: a user issues one for itself (users.self), lists and revokes it.
    let owner = Http::new(&env.server).with_key(&key);
    let (s, b) = owner
        .post("/v1/users/own1/api-keys", &json!({ "name": "ci" }))
        .await;
    assert_eq!(s, 201, "{b}");
    let second = b["key"].as_str().unwrap().to_owned();
    let kid = b["api_key"]["id"].as_str().unwrap().to_owned();
    let (s, b) = owner.get("/v1/users/own1/api-keys").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["api_keys"].as_array().unwrap().len(), 2, "{b}");
    assert!(!b.to_string().contains(&second), "a listed key shows its secret");
    let (s, _) = Http::new(&env.server).with_key(&second).get("/v1/users").await;
    assert_eq!(s, 200);
    let (s, b) = send(
        &owner,
        "DELETE",
        &format!("/v1/users/own1/api-keys/{kid}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = Http::new(&env.server).with_key(&second).get("/v1/users").await;
    assert_error(s, &b, 401, "unauthorized");
    // A revoked key is refused.
    let (s, _) = owner.get("/v1/users").await;
    assert_eq!(s, 200);
    let keys = store.list_api_keys("own1").await.unwrap();
    let id = keys.iter().find(|k| k.revoked_at.is_none()).unwrap().id.clone();
    store.revoke_api_key(&id, &Audit::system()).await.unwrap();
    let (s, b) = owner.get("/v1/users").await;
    assert_error(s, &b, 401, "unauthorized");
    env.server.shutdown().await;
}

/// Two instances on one PostgreSQL database: a change through one reaches the other's cache
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_changes_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let a = env_at(Fixture::new(), url.clone()).await;
    let b = env_at(Fixture::new(), url.clone()).await;
    let store = &*a.store;
    company(store, "acme", "customer", None).await;
    let key = user_with_key(store, "own1", "acme", "owner", true).await;
    user_with_key(store, "adm1", "acme", "admin", true).await;
    let on_a = Http::new(&a.server).with_key(&key);
    let on_b = Http::new(&b.server);
    let company = "Portal::Company::\"acme\"";
    assert_eq!(
        decide(&on_b, "adm1", "shipping_rule.edit", company, json!([])).await,
        "allow"
    );
    let (s, body) = send(&on_a, "PUT", "/v1/users/adm1/role", json!({ "role": "regular" })).await;
    assert_eq!(s, 200, "{body}");
    let started = tokio::time::Instant::now();
    loop {
        if decide(&on_b, "adm1", "shipping_rule.edit", company, json!([])).await == "deny" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "instance b never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.server.shutdown().await;
    b.server.shutdown().await;
    drop_postgres(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_migrates_and_bootstraps_an_owner() {
    let fx = Fixture::new();
    let db = sqlite_url(&fx);
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let out = std::process::Command::new(bin)
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(bin)
        .args([
            "users",
            "--database-url",
            &db,
            "create",
            "--company",
            "acme",
            "--account-type",
            "customer",
            "--id",
            "own1",
            "--login",
            "olga",
            "--role",
            "owner",
            "--attr",
            "scope_all=true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = v["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pck_"), "{v}");
    for args in [
        vec!["company", "acme", "--user-limit", "5"],
        vec!["company", "beta", "--account-type", "customer"],
        vec!["group", "basic", "--feature", "read_reports", "--default"],
        vec!["key", "--user", "own1", "--name", "second"],
        vec!["list", "--company", "acme"],
    ] {
        let out = std::process::Command::new(bin)
            .args(["users", "--database-url", &db])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new(bin)
        .args(["users", "--database-url", &db, "company", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--account-type"));
    let env = env_at(fx, db).await;
    assert_eq!(env.store.get_company("acme").await.unwrap().user_limit, Some(5));
    let owner = Http::new(&env.server).with_key(&key);
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "adm1", "login": "adm1", "role": "admin", "attrs": { "scope_all": true } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["group"], "basic", "the default group: {b}");
    env.server.shutdown().await;
}

/// Every management route, with its methods.
const MANAGEMENT_ROUTES: [(&str, &[&str]); 22] = [
    ("/v1/users", &["get", "post"]),
    ("/v1/users/{id}", &["get", "patch", "delete"]),
    ("/v1/users/{id}/role", &["put"]),
    ("/v1/users/{id}/deactivate", &["post"]),
    ("/v1/users/{id}/reactivate", &["post"]),
    ("/v1/users/{id}/move", &["post"]),
    ("/v1/users/{id}/companies", &["put"]),
    ("/v1/users/{id}/api-keys", &["get", "post"]),
    ("/v1/users/{id}/api-keys/{key}", &["delete"]),
    ("/v1/companies", &["get", "post"]),
    ("/v1/companies/{id}", &["get", "patch"]),
    ("/v1/grants", &["get", "post"]),
    ("/v1/grants/{id}/approve", &["post"]),
    ("/v1/grants/{id}/refuse", &["post"]),
    ("/v1/grants/{id}/revoke", &["post"]),
    ("/v1/invitations", &["get", "post"]),
    ("/v1/invitations/{id}", &["delete"]),
    ("/v1/invitations/accept", &["post"]),
    ("/v1/audit", &["get"]),
    ("/v1/groups", &["get", "post"]),
    ("/v1/groups/default", &["put"]),
    ("/v1/groups/{name}", &["patch", "delete"]),
];

/// The methods of a path item of the document.
fn methods(item: &Value) -> Vec<String> {
    let mut m: Vec<String> = item
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
        .cloned()
        .collect();
    m.sort();
    m
}

/// The management API's part of `GET /openapi.json` is made from its router
/// (`#[utoipa::path]` on each handler): every route is described with its methods, nothing
/// else, and every described operation is routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_the_management_api() {
    let env = sqlite_env().await;
    let http = Http::new(&env.server);
    let (s, doc) = http.get("/openapi.json").await;
    assert_eq!(s, 200);
    let mut expected: Vec<(String, Vec<String>)> = MANAGEMENT_ROUTES
        .iter()
        .map(|(path, ms)| {
            let mut ms: Vec<String> = ms.iter().map(|m| (*m).to_owned()).collect();
            ms.sort();
            ((*path).to_owned(), ms)
        })
        .collect();
    expected.sort();
    // The management router documents exactly these routes.
    let own = serde_json::to_value(portcullis_server::http::manage::router().into_openapi()).unwrap();
    let mut documented: Vec<(String, Vec<String>)> = own["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| (path.clone(), methods(item)))
        .collect();
    documented.sort();
    assert_eq!(documented, expected);
    for (path, ms) in &expected {
        let item = &doc["paths"][path.as_str()];
        assert!(item.is_object(), "{path} is not described");
        assert_eq!(&methods(item), ms, "{path}");
        for m in ms {
            let op = &item[m.as_str()];
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{m} {path}"
            );
            for code in [
                "400", "401", "403", "404", "409", "413", "415", "421", "422", "503",
            ] {
                assert!(op["responses"][code].is_object(), "{m} {path} {code}");
            }
            // Accepting an invitation needs no key: its token is the credential.
            let keyed = path != "/v1/invitations/accept";
            let schemes = op["security"].as_array().map_or(0, Vec::len);
            assert_eq!(schemes > 0, keyed, "{m} {path}");
            crate::common::assert_routed(&http, m, path).await;
        }
    }
    let ops = |path: &str, m: &str| doc["paths"][path][m]["responses"].clone();
    assert!(ops("/v1/users", "post")["201"].is_object());
    assert!(ops("/v1/users/{id}", "patch")["202"].is_object());
    assert!(ops("/v1/invitations/accept", "post")["410"].is_object());
    assert!(ops("/v1/groups/{name}", "delete")["204"].is_object());
    assert!(ops("/v1/audit", "get")["200"]["content"]["text/csv"].is_object());
    // Request bodies are closed, with their required fields.
    let schemas = &doc["components"]["schemas"];
    for (name, required) in [
        ("NewUser", &["login", "role"][..]),
        ("UserPatch", &[]),
        ("RoleBody", &["role"]),
        ("MoveBody", &["company"]),
        ("CompaniesBody", &["companies"]),
        ("GrantRequest", &["company"]),
        ("NewInvitation", &["email", "role"]),
        ("KeyBody", &[]),
        ("NewCompany", &["id", "account_type"]),
        ("CompanyPatch", &[]),
        ("NewGroup", &["name"]),
        ("GroupPatch", &[]),
        ("DefaultGroupBody", &[]),
        ("Acceptance", &["token"]),
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        let mut got: Vec<&str> = schemas[name]["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        got.sort();
        let mut want = required.to_vec();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(schemas["NewUser"]["properties"]["login"]["minLength"], 1);
    assert_eq!(schemas["NewCompany"]["properties"]["user_limit"]["minimum"], 0);
    // Found by schemathesis: a u32 is not an int32 (whose maximum is 2^31 - 1), and a
    // company's display name may be blank.
    assert_eq!(
        schemas["NewCompany"]["properties"]["user_limit"]["maximum"],
        u64::from(u32::MAX)
    );
    let limit = doc["paths"]["/v1/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], u64::from(u32::MAX), "{limit}");
    assert!(schemas["CompanyPatch"]["properties"]["name"]["minLength"].is_null());
    for name in [
        "User",
        "UserPage",
        "Company",
        "CompanyList",
        "Grant",
        "GrantList",
        "Invitation",
        "InvitationList",
        "IssuedInvitation",
        "ApiKey",
        "ApiKeyList",
        "IssuedApiKey",
        "Group",
        "GroupList",
        "DefaultGroup",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
    assert!(doc["paths"]["/v1/authorize"].is_object());
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_management_answers_503() {
    let fx = Fixture::new();
    let server = start(fx.config()).await;
    let (s, b) = Http::new(&server).with_key("pck_x_y").get("/v1/users").await;
    assert_error(s, &b, 503, "no_store");
    server.shutdown().await;
}

/// Found by the `http` fuzz target: a query string or a path segment axum could not
/// deserialize was answered with axum's plain-text 400, not the JSON error envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_strings_and_paths_answer_the_error_envelope() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    let key = user_with_key(store, "own1", "acme", "owner", true).await;
    let owner = Http::new(&env.server).with_key(&key);
    for path in [
        "/v1/users?limit=x",
        "/v1/users?company=acme&limit=5%00",
        "/v1/grants?status=nonsense",
        "/v1/invitations?include_closed=maybe",
        "/v1/audit?limit=many",
    ] {
        let (s, b) = owner.get(path).await;
        assert_error(s, &b, 400, "invalid_query");
    }
    // `%FF` decodes to a byte that is not UTF-8.
    let (s, b) = owner.get("/v1/users/%FF").await;
    assert_error(s, &b, 400, "invalid_path");
    let (s, b) = owner.post("/v1/grants/%FF%FE/approve", &json!({})).await;
    assert_error(s, &b, 400, "invalid_path");
    // A well-formed query still works.
    let (s, b) = owner.get("/v1/users?limit=5").await;
    assert_eq!(s, 200, "{b}");
    env.server.shutdown().await;
}

/// Enterprise accounts: an owner of the parent moves a user between sub-companies and sets the
/// companies it may switch to; scopes are set through the assignment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_scopes_and_accessible_companies() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "ent", "customer", None).await;
    for c in ["ent-a", "ent-b"] {
        store
            .create_company(
                NewCompany {
                    id: c.to_owned(),
                    name: c.to_owned(),
                    account_type: "customer".to_owned(),
                    parent: Some("ent".to_owned()),
                    ..NewCompany::default()
                },
                &Audit::system(),
            )
            .await
            .unwrap();
    }
    let key = user_with_key(store, "eown", "ent", "owner", true).await;
    let owner = Http::new(&env.server).with_key(&key);
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "u1", "company": "ent-a", "login": "u1", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = owner
        .post("/v1/users/u1/move", &json!({ "company": "ent-b" }))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["company"], "ent-b");
    // A sibling company is read only once it is one the user may switch to (the folder's
    // `switchable_context` in `company.read`'s context).
    let u1 = Http::new(&env.server).with_key(&key_for(store, "u1").await);
    assert_eq!(u1.get("/v1/companies/ent-a").await.0, 404);
    let (s, b) = send(
        &owner,
        "PUT",
        "/v1/users/u1/companies",
        json!({ "companies": [ { "company": "ent-a", "role": "regular" } ] }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["accessible"][0]["company"], "ent-a");
    let (s, b) = u1.get("/v1/companies/ent-a").await;
    assert_eq!((s, b["id"].clone()), (200, json!("ent-a")), "{b}");
    // Scope: locations and actors in the user's attributes.
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/users/u1",
        json!({ "attrs": { "scope_all": false, "locations": [loc("b1")], "actors": [] } }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["attrs"]["locations"][0]["__entity"]["id"], "b1");
    // Mixing profile and assignment in one call is refused.
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/users/u1",
        json!({ "name": "x", "role": "admin" }),
    )
    .await;
    assert_error(s, &b, 400, "mixed_patch");
    // A user of a sub-company cannot move users of the enterprise: one it may not read is
    // answered as a missing one.
    let ukey = key_for(store, "u1").await;
    let u = Http::new(&env.server).with_key(&ukey);
    let (s, b) = u
        .post("/v1/users/eown/move", &json!({ "company": "ent-a" }))
        .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = owner.get("/v1/companies/ent").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = u.get("/v1/companies/ent-a").await;
    assert_eq!(s, 200, "{b}");
    env.server.shutdown().await;
}

/// While the store holds no user the server asks it about no principal; the first user
/// written (here behind the server's back, as another instance would) is decided as stored
/// once the change reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_stored_user_is_seen_after_an_empty_store() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    let anon = Http::new(&env.server);
    let company = "Portal::Company::\"acme\"";
    for _ in 0..3 {
        assert_eq!(
            decide(&anon, "late1", "shipping_rule.edit", company, json!([])).await,
            "deny"
        );
    }
    user_with_key(store, "late1", "acme", "owner", true).await;
    await_decision(
        &anon,
        "late1",
        "shipping_rule.edit",
        company,
        "allow",
        Duration::from_secs(2),
    )
    .await;
    env.server.shutdown().await;
}
