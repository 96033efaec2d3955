//! Tenancy over HTTP: no decision, no listing and no write crosses companies, except through an
//! approved visitor grant, and then only the reads it covers, only while it is live.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{send, Http};
use crate::manage::{company, decide, sqlite_env, user_with_key};

/// Beta's records: shipments at locations `bl1` and `bl2`, and its shipping rules.
fn beta_records() -> Value {
    json!([
        { "uid": { "type": "Portal::Shipment", "id": "bs1" },
          "attrs": { "owner": { "__entity": { "type": "Portal::User", "id": "rb" } } },
          "parents": [ { "type": "Portal::Location", "id": "bl1" }, { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::Shipment", "id": "bs2" },
          "attrs": { "owner": { "__entity": { "type": "Portal::User", "id": "rb" } } },
          "parents": [ { "type": "Portal::Location", "id": "bl2" }, { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::Location", "id": "bl1" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::Location", "id": "bl2" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::ShippingRule", "id": "br" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::Settings", "id": "bset" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] },
        { "uid": { "type": "Portal::AuditLog", "id": "beta" }, "attrs": {},
          "parents": [ { "type": "Portal::Company", "id": "beta" } ] }
    ])
}

const READ_BS1: (&str, &str) = ("shipment.read", "Portal::Shipment::\"bs1\"");
const READ_BS2: (&str, &str) = ("shipment.read", "Portal::Shipment::\"bs2\"");

/// Every decision of an acme user on beta's records.
const ON_BETA: &[(&str, &str)] = &[
    READ_BS1,
    READ_BS2,
    ("shipment.export", "Portal::Shipment::\"bs1\""),
    ("shipment.create", "Portal::Location::\"bl1\""),
    ("shipping_rule.edit", "Portal::ShippingRule::\"br\""),
    ("shipping_rule.edit", "Portal::Company::\"beta\""),
    ("report.shipment.create", "Portal::Company::\"beta\""),
    ("audit.read", "Portal::AuditLog::\"beta\""),
    ("settings.configure", "Portal::Settings::\"bset\""),
];

async fn decisions(anon: &Http, principal: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (action, resource) in ON_BETA {
        out.push(decide(anon, principal, action, resource, beta_records()).await);
    }
    out
}

#[tokio::test]
async fn nothing_crosses_companies_without_a_live_grant() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    company(store, "beta", "customer", None).await;
    let oa = Http::new(&env.server).with_key(&user_with_key(store, "oa", "acme", "owner", true).await);
    let ra_key = user_with_key(store, "ra", "acme", "regular", true).await;
    let ra = Http::new(&env.server).with_key(&ra_key);
    let ob = Http::new(&env.server).with_key(&user_with_key(store, "ob", "beta", "owner", true).await);
    let _ = user_with_key(store, "rb", "beta", "regular", true).await;
    let anon = Http::new(&env.server);

    // Beta's own users decide on beta's records (the records are right), acme's never do.
    assert_eq!(
        decide(&anon, "ob", READ_BS1.0, READ_BS1.1, beta_records()).await,
        "allow"
    );
    for p in ["oa", "ra"] {
        let d = decisions(&anon, p).await;
        assert!(d.iter().all(|d| d == "deny"), "{p}: {d:?}");
    }

    // Beta has an invitation, a grant request and audit rows of its own.
    let (s, b) = ob
        .post(
            "/v1/invitations",
            &json!({ "email": "n@beta.test", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let beta_inv = b["invitation"]["id"].as_str().unwrap().to_owned();

    // Listings: only acme's.
    let (s, b) = oa.get("/v1/users").await;
    assert_eq!(s, 200, "{b}");
    let ids: Vec<&str> = b["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["oa", "ra"], "{b}");
    // Another company's list: every row is decided, none is readable.
    let (s, b) = oa.get("/v1/users?company=beta").await;
    assert_eq!(s, 200, "{b}");
    assert!(b["users"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = oa.get("/v1/invitations").await;
    assert_eq!(s, 200, "{b}");
    assert!(b["invitations"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = oa.get("/v1/grants?company=beta").await;
    assert_eq!(s, 200, "{b}");
    assert!(b["grants"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = oa.get("/v1/audit?company=beta").await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = oa.get("/v1/audit").await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["company"] != "beta"),
        "{b}"
    );
    let (s, b) = oa.get("/v1/companies/beta").await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = oa.get("/v1/companies/acme").await;
    assert_eq!(s, 200);
    // Ids of another tenant are answered as missing ones.
    let (s, b) = oa.get("/v1/users/rb").await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = oa.get("/v1/users/rb/api-keys").await;
    assert_eq!(s, 404, "{b}");

    // Writes on beta's users and invitations (404: the caller may not read them), and into
    // beta (403).
    let writes: Vec<(&str, String, Value)> = vec![
        ("PATCH", "/v1/users/rb".into(), json!({ "name": "x" })),
        ("PATCH", "/v1/users/rb".into(), json!({ "flags": ["isolated"] })),
        ("PUT", "/v1/users/rb/role".into(), json!({ "role": "regular" })),
        ("POST", "/v1/users/rb/deactivate".into(), json!({})),
        ("POST", "/v1/users/rb/reactivate".into(), json!({})),
        ("POST", "/v1/users/rb/move".into(), json!({ "company": "acme" })),
        ("PUT", "/v1/users/rb/companies".into(), json!({ "companies": [] })),
        ("POST", "/v1/users/rb/api-keys".into(), json!({})),
        ("DELETE", "/v1/users/rb".into(), Value::Null),
        (
            "POST",
            "/v1/users".into(),
            json!({ "company": "beta", "login": "x1", "role": "regular" }),
        ),
        (
            "POST",
            "/v1/invitations".into(),
            json!({ "company": "beta", "email": "y@beta.test", "role": "regular" }),
        ),
        ("DELETE", format!("/v1/invitations/{beta_inv}"), Value::Null),
        (
            "PUT",
            "/v1/users/ra/companies".into(),
            json!({ "companies": [{ "company": "beta" }] }),
        ),
    ];
    let refusal = |path: &str| {
        if path.starts_with("/v1/users/rb") || path.starts_with("/v1/invitations/") {
            (404, "not_found")
        } else {
            (403, "forbidden")
        }
    };
    for (method, path, body) in &writes {
        let (s, b) = send(&oa, method, path, body.clone()).await;
        let (status, code) = refusal(path);
        assert_eq!(s, status, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], code, "{b}");
    }
    assert_eq!(store.get_user("rb").await.unwrap().company, "beta");

    // A grant on bl1 only, approved by beta's owner: ra reads bs1, nothing else.
    let bl1 = json!({ "company": "beta", "locations": [{ "type": "Portal::Location", "id": "bl1" }] });
    let (s, b) = ra.post("/v1/grants", &bl1).await;
    assert_eq!(s, 201, "{b}");
    let grant = b["id"].as_str().unwrap().to_owned();
    // Requested, not approved: nothing yet; acme's owner cannot approve it.
    assert!(decisions(&anon, "ra").await.iter().all(|d| d == "deny"));
    let (s, _) = oa.post(&format!("/v1/grants/{grant}/approve"), &json!({})).await;
    assert_eq!(s, 403);
    let (s, b) = ob.post(&format!("/v1/grants/{grant}/approve"), &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let d = decisions(&anon, "ra").await;
    let mut want = vec!["deny"; ON_BETA.len()];
    want[0] = "allow";
    assert_eq!(d, want, "only shipment.read of bs1 (at bl1)");
    // Acme's other users hold no grant.
    assert!(decisions(&anon, "oa").await.iter().all(|d| d == "deny"));
    // The grant opens no listing and no write.
    let (s, b) = ra.get("/v1/users?company=beta").await;
    assert_eq!(s, 200);
    assert!(b["users"].as_array().unwrap().is_empty(), "{b}");
    let (s, _) = ra.get("/v1/audit?company=beta").await;
    assert_eq!(s, 403);
    for (method, path, body) in &writes {
        let (s, b) = send(&ra, method, path, body.clone()).await;
        assert_eq!(s, refusal(path).0, "{method} {path} with a grant: {b}");
    }
    // Revoked: gone at once.
    let (s, b) = ob.post(&format!("/v1/grants/{grant}/revoke"), &json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert!(decisions(&anon, "ra").await.iter().all(|d| d == "deny"));

    // An expiring grant counts only until it expires, also beside one that does not (the
    // links of a visitor's grants are kept between decisions: they must not outlive one).
    let (s, b) = ra.post("/v1/grants", &bl1).await;
    assert_eq!(s, 201, "{b}");
    let lasting = b["id"].as_str().unwrap().to_owned();
    let (s, b) = ob
        .post(&format!("/v1/grants/{lasting}/approve"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let expires_at = expires_at.replace_millisecond(expires_at.millisecond()).unwrap();
    let expires = expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (s, b) = ra
        .post("/v1/grants", &json!({ "company": "beta", "expires_at": expires }))
        .await;
    assert_eq!(s, 201, "{b}");
    let grant = b["id"].as_str().unwrap().to_owned();
    let (s, b) = ob.post(&format!("/v1/grants/{grant}/approve"), &json!({})).await;
    assert_eq!(s, 200, "{b}");
    // Decided over and over until it runs out (so the links of the last allow are kept), then
    // denied from then on, within a bound.
    let read_bs2 = || decide(&anon, "ra", READ_BS2.0, READ_BS2.1, beta_records());
    let margin = time::Duration::milliseconds(5);
    let mut allowed = 0;
    while time::OffsetDateTime::now_utc() < expires_at {
        let d = read_bs2().await;
        if time::OffsetDateTime::now_utc() < expires_at - margin {
            assert_eq!(d, "allow", "before the grant runs out");
            allowed += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(allowed > 0, "no decision before the grant ran out");
    let deadline = std::time::Instant::now() + crate::common::DEADLINE;
    while read_bs2().await != "deny" {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired grant still allows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        decisions(&anon, "ra").await[0],
        "allow",
        "the lasting grant on bl1 holds"
    );
    let (s, b) = ob.post(&format!("/v1/grants/{lasting}/revoke"), &json!({})).await;
    assert_eq!(s, 200, "{b}");

    // A deactivated visitor loses its grant's reads too.
    let (s, b) = ra.post("/v1/grants", &json!({ "company": "beta" })).await;
    assert_eq!(s, 201, "{b}");
    let grant = b["id"].as_str().unwrap().to_owned();
    let (s, _) = ob.post(&format!("/v1/grants/{grant}/approve"), &json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        decide(&anon, "ra", READ_BS1.0, READ_BS1.1, beta_records()).await,
        "allow"
    );
    let (s, _) = oa.post("/v1/users/ra/deactivate", &json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        decide(&anon, "ra", READ_BS1.0, READ_BS1.1, beta_records()).await,
        "deny"
    );
}
