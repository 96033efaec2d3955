//! Stored user ids as principals on every decision endpoint: `POST /v1/authorize/batch` and
//! AuthZEN's `POST /access/v1/evaluation(s)` answer exactly as `POST /v1/authorize` does,
//! visitor grants and cache invalidation included.

use serde_json::{json, Value};

use crate::common::Http;
use crate::manage::{company, decide, sqlite_env, user_with_key};

fn beta_shipment() -> Value {
    json!([
        { "uid": { "type": "Portal::Shipment", "id": "bs1" },
          "attrs": { "owner": { "__entity": { "type": "Portal::User", "id": "ob" } } },
          "parents": [ { "type": "Portal::Location", "id": "bl1" }, { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::Location", "id": "bl1" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] }
    ])
}

const CASES: &[(&str, &str, &str)] = &[
    ("oa", "shipping_rule.edit", "Portal::Company::\"acme\""),
    ("ra", "shipping_rule.edit", "Portal::Company::\"acme\""),
    ("ra", "report.shipment.create", "Portal::Company::\"acme\""),
    ("ra", "shipment.read", "Portal::Shipment::\"bs1\""),
    ("oa", "shipment.export", "Portal::Company::\"beta\""),
];

async fn batch(http: &Http) -> Vec<String> {
    let checks: Vec<Value> = CASES
        .iter()
        .enumerate()
        .map(|(i, (p, a, r))| {
            // Half as Cedar strings, half as objects.
            let principal = if i % 2 == 0 {
                json!(p)
            } else {
                json!({ "type": "Portal::User", "id": p })
            };
            json!({ "id": i, "principal": principal, "action": a, "resource": r })
        })
        .collect();
    let (s, b) = http
        .post(
            "/v1/authorize/batch",
            &json!({ "checks": checks, "entities": beta_shipment() }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap_or("error").to_owned())
        .collect()
}

fn thing(r: &str) -> Value {
    let (ty, id) = r.split_once("::\"").unwrap();
    json!({ "type": ty, "id": id.trim_end_matches('"') })
}

async fn authzen(http: &Http) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a, r) in CASES {
        let (s, b) = http
            .post(
                "/access/v1/evaluation",
                &json!({ "subject": { "type": "Portal::User", "id": p }, "action": { "name": a },
                         "resource": thing(r), "entities": beta_shipment() }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        out.push(if b["decision"] == true { "allow" } else { "deny" }.to_owned());
    }
    let evaluations: Vec<Value> = CASES
        .iter()
        .map(|(p, a, r)| {
            json!({ "subject": { "type": "Portal::User", "id": p }, "action": { "name": a }, "resource": thing(r) })
        })
        .collect();
    let (s, b) = http
        .post(
            "/access/v1/evaluations",
            &json!({ "evaluations": evaluations, "entities": beta_shipment() }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let many: Vec<String> = b["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| if e["decision"] == true { "allow" } else { "deny" }.to_owned())
        .collect();
    assert_eq!(out, many, "evaluation and evaluations agree: {b}");
    out
}

async fn single(http: &Http) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a, r) in CASES {
        out.push(decide(http, p, a, r, beta_shipment()).await);
    }
    out
}

#[tokio::test]
async fn batch_and_authzen_decide_stored_users_like_authorize() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    company(store, "beta", "customer", None).await;
    let oa = Http::new(&env.server).with_key(&user_with_key(store, "oa", "acme", "owner", true).await);
    let ra = Http::new(&env.server).with_key(&user_with_key(store, "ra", "acme", "regular", true).await);
    let ob = Http::new(&env.server).with_key(&user_with_key(store, "ob", "beta", "owner", true).await);
    let anon = Http::new(&env.server);

    let want = ["allow", "deny", "allow", "deny", "deny"];
    assert_eq!(single(&anon).await, want);
    assert_eq!(batch(&anon).await, want);
    assert_eq!(authzen(&anon).await, want);

    // A write through the API reaches every endpoint at once (the cache is shared).
    let (s, b) = oa
        .send(
            "PUT",
            "/v1/users/ra/role",
            serde_json::to_vec(&json!({ "role": "admin" })).unwrap(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let want = ["allow", "allow", "allow", "deny", "deny"];
    assert_eq!(single(&anon).await, want);
    assert_eq!(batch(&anon).await, want);
    assert_eq!(authzen(&anon).await, want);

    // A visitor grant is linked on every endpoint.
    let (s, b) = ra.post("/v1/grants", &json!({ "company": "beta" })).await;
    assert_eq!(s, 201, "{b}");
    let grant = b["id"].as_str().unwrap().to_owned();
    let (s, b) = ob.post(&format!("/v1/grants/{grant}/approve"), &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let want = ["allow", "allow", "allow", "allow", "deny"];
    assert_eq!(single(&anon).await, want);
    assert_eq!(batch(&anon).await, want);
    assert_eq!(authzen(&anon).await, want);
    let (s, b) = anon
        .post(
            "/v1/authorize/batch",
            &json!({ "checks": [{ "id": "g", "principal": "ra", "action": "shipment.read",
                                  "resource": "Portal::Shipment::\"bs1\"" }],
                     "entities": beta_shipment() }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["results"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("grant:"),
        "{b}"
    );

    // Deactivated: denied everywhere.
    let (s, _) = oa.post("/v1/users/ra/deactivate", &json!({})).await;
    assert_eq!(s, 200);
    let want = ["allow", "deny", "deny", "deny", "deny"];
    assert_eq!(single(&anon).await, want);
    assert_eq!(batch(&anon).await, want);
    assert_eq!(authzen(&anon).await, want);
}

/// The ids of one type in the fixture's entities file.
fn held_ids(ty: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/integration/entities.json"
    ))
    .unwrap();
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.iter()
        .filter(|e| e["uid"]["type"] == ty)
        .map(|e| e["uid"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Pages through one search (one result per page, so pages cross from the entities file to
/// the store), answering the result ids.
async fn search_ids(http: &Http, path: &str, mut body: Value) -> Vec<String> {
    let mut ids = Vec::new();
    body["page"] = json!({ "limit": 1 });
    for pages in 1.. {
        assert!(pages < 100, "pages never end");
        let (s, b) = http.post(path, &body).await;
        assert_eq!(s, 200, "{body} -> {b}");
        ids.extend(
            b["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match b["page"]["next_token"].as_str().unwrap() {
            "" => break,
            t => body["page"]["token"] = json!(t),
        }
    }
    ids
}

/// Search candidates are the entities file's and the store's: stored users as subjects and
/// stored companies as resources, each result exactly a candidate that
/// `/access/v1/evaluation` allows.
#[tokio::test]
async fn search_finds_held_and_stored_entities_as_evaluations_decide() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    company(store, "beta", "customer", None).await;
    for (id, c, role) in [
        ("oa", "acme", "owner"),
        ("ra", "acme", "regular"),
        ("ob", "beta", "owner"),
    ] {
        user_with_key(store, id, c, role, true).await;
    }
    let http = Http::new(&env.server);
    let mut some_stored_user = false;
    let allowed = |p: String, a: &'static str, r: Value| {
        let http = http.clone();
        async move {
            let body =
                json!({ "subject": { "type": "User", "id": p }, "action": { "name": a }, "resource": r });
            let (s, b) = http.post("/access/v1/evaluation", &body).await;
            assert_eq!(s, 200, "{b}");
            b["decision"] == true
        }
    };
    for (action, company) in [
        ("shipping_rule.edit", "acme"),
        ("shipment.export", "beta"),
        ("report.shipment.create", "acme"),
    ] {
        let mut candidates = held_ids("Portal::User");
        candidates.extend(["oa", "ra", "ob"].map(str::to_owned));
        let mut want = Vec::new();
        for c in candidates {
            if allowed(c.clone(), action, json!({ "type": "Company", "id": company })).await {
                want.push(c);
            }
        }
        some_stored_user |= want.iter().any(|c| ["oa", "ra", "ob"].contains(&c.as_str()));
        let body = json!({ "subject": { "type": "User" }, "action": { "name": action }, "resource": { "type": "Company", "id": company } });
        let mut got = search_ids(&http, "/access/v1/search/subject", body).await;
        got.sort();
        want.sort();
        assert_eq!(got, want, "{action} on {company}");
    }
    assert!(some_stored_user, "a stored user is found by some subject search");
    let mut some_stored = false;
    for user in ["oa", "ra", "ob"] {
        let mut candidates = held_ids("Portal::Company");
        candidates.extend(["acme", "beta"].map(str::to_owned));
        let mut want = Vec::new();
        for c in candidates {
            if allowed(
                user.to_owned(),
                "shipping_rule.edit",
                json!({ "type": "Company", "id": c }),
            )
            .await
            {
                want.push(c);
            }
        }
        some_stored |= want.iter().any(|c| c == "acme" || c == "beta");
        let body = json!({ "subject": { "type": "User", "id": user }, "action": { "name": "shipping_rule.edit" }, "resource": { "type": "Company" } });
        let mut got = search_ids(&http, "/access/v1/search/resource", body).await;
        got.sort();
        want.sort();
        assert_eq!(got, want, "{user}");
    }
    assert!(
        some_stored,
        "a stored company is found by some stored user's search"
    );
}
