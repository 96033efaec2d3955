//! Permission groups (the service portal) from the store reach decisions, served from
//! `examples/service-portal` (where every feature is held through a group).

use std::time::Duration;

use portcullis_server::Server;
use portcullis_store::{Audit, GroupPatch, NewCompany, NewGroup, NewUser, UserStore};
use serde_json::json;

use crate::common::{copy_dir, send, start, Http, DEADLINE};
use crate::manage::decide;

struct Portal {
    _dir: tempfile::TempDir,
    server: Server,
    store: std::sync::Arc<dyn UserStore>,
}

async fn service_portal() -> Portal {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/service-portal");
    copy_dir(&src, &dir.path().join("policies"));
    let url = dir.path().join("portcullis.db").display().to_string();
    let mut config = portcullis_server::Config::new(dir.path().join("policies"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database_url = Some(url.clone());
    let server = start(config).await;
    let (store, _) = portcullis_server::manage::open_store(&url).await.unwrap();
    Portal {
        _dir: dir,
        server,
        store,
    }
}

async fn portal_user(store: &dyn UserStore, id: &str, group: &str) {
    let mut attrs = serde_json::Map::new();
    attrs.insert("login_is_email".into(), json!(true));
    attrs.insert("require_mfa".into(), json!(false));
    store
        .create_user(
            NewUser {
                id: Some(id.into()),
                company: "cust".into(),
                login: id.into(),
                role: "portal_user".into(),
                group: Some(group.into()),
                attrs,
                ..NewUser::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
}

fn invoice() -> serde_json::Value {
    json!([{ "uid": { "type": "Portal::Invoice", "id": "inv" }, "attrs": {},
             "parents": [{ "type": "Portal::Company", "id": "cust" }] }])
}

/// The decision on `action` of invoice `inv` of company `cust` for `user`.
async fn decision(http: &Http, user: &str, action: &str) -> String {
    let (s, b) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": user, "action": action, "resource": "Portal::Invoice::\"inv\"",
                     "context": { "mfa_verified": true }, "entities": invoice() }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["decision"].as_str().unwrap().to_owned()
}

async fn pays(http: &Http, user: &str) -> String {
    decision(http, user, "invoice.pay").await
}

/// Waits, within [`DEADLINE`], until `user` is denied `action`: a change written to the store
/// reaches decisions through the cache's invalidation.
async fn until_denied(http: &Http, user: &str, action: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while decision(http, user, action).await == "allow" {
        assert!(tokio::time::Instant::now() < deadline, "{what} never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A group created in the store with features `roles.toml` gives no group of that name
/// decides through the compiled `feature.<name>.group` policies; an edit of the group in the
/// store reaches the next decisions.
#[tokio::test]
async fn stored_group_features_reach_decisions() {
    let p = service_portal().await;
    let store = &*p.store;
    let mut attrs = serde_json::Map::new();
    attrs.insert("has_portal_users".into(), json!(true));
    store
        .create_company(
            NewCompany {
                id: "cust".into(),
                name: "cust".into(),
                account_type: "customer".into(),
                attrs,
                ..NewCompany::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    store
        .create_group(
            NewGroup {
                name: "payers".into(),
                features: vec!["pay_invoices".to_owned()],
                ..NewGroup::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    // The folder's own groups are in the store from the server's start, defined by the
    // folder's features, its default marked.
    let standard = store.get_group("standard").await.unwrap();
    assert!(
        standard.is_default && standard.defined && standard.features.contains(&"view_invoices".to_owned()),
        "{standard:?}"
    );
    portal_user(store, "payer", "payers").await;
    portal_user(store, "std", "standard").await;
    let http = Http::new(&p.server);
    assert_eq!(pays(&http, "payer").await, "allow");
    // `standard` of roles.toml holds no `pay_invoices`; its stored features count.
    assert_eq!(pays(&http, "std").await, "deny");
    assert_eq!(decision(&http, "std", "invoice.read").await, "allow");

    // The group loses the feature in the store (another instance, the CLI): the cache follows.
    store
        .update_group(
            "payers",
            GroupPatch {
                features: Some(vec![]),
                ..GroupPatch::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    until_denied(&http, "payer", "invoice.pay", "the group edit").await;

    // The stored features define a group entirely: a feature `roles.toml` gave `standard`,
    // taken away in the store, is gone.
    store
        .update_group(
            "standard",
            GroupPatch {
                features: Some(vec!["view_quotes".to_owned()]),
                ..GroupPatch::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    until_denied(&http, "std", "invoice.read", "the group's definition").await;

    // A group the store holds without a definition (made without features, as an operator's
    // command line does before a server has run) holds the folder's features for its name:
    // `billing` pays. Once its features are set, they alone count.
    store.delete_group("billing", &Audit::system()).await.unwrap();
    let bare = store
        .create_group(
            NewGroup {
                name: "billing".into(),
                ..NewGroup::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    assert!(!bare.defined, "{bare:?}");
    portal_user(store, "biller", "billing").await;
    assert_eq!(pays(&http, "biller").await, "allow");
    store
        .update_group(
            "billing",
            GroupPatch {
                features: Some(vec!["view_invoices".to_owned()]),
                ..GroupPatch::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    until_denied(&http, "biller", "invoice.pay", "the billing group's definition").await;
}

/// Free-form attributes never stand in for what the store's columns decide: a user whose
/// `attrs` name another company, a role, activity or group features is decided on its columns.
#[tokio::test]
async fn reserved_attributes_are_ignored() {
    let env = crate::manage::sqlite_env().await;
    let store = &*env.store;
    crate::manage::company(store, "acme", "customer", None).await;
    crate::manage::company(store, "beta", "customer", None).await;
    let owner = Http::new(&env.server)
        .with_key(&crate::manage::user_with_key(store, "oa", "acme", "owner", true).await);
    let _ = crate::manage::user_with_key(store, "ra", "acme", "regular", true).await;
    let anon = Http::new(&env.server);
    let beta = "Portal::Company::\"beta\"";
    // Beta as the application knows it, so a principal claiming to be in beta would pass.
    let beta_entity = json!([{ "uid": { "type": "Portal::Company", "id": "beta" },
        "attrs": { "account_type": "customer", "subscription": [] }, "parents": [] }]);
    let acme = "Portal::Company::\"acme\"";
    assert_eq!(
        decide(&anon, "ra", "report.shipment.create", beta, beta_entity.clone()).await,
        "deny"
    );
    let attrs = json!({ "scope_all": true,
        "company": { "__entity": { "type": "Portal::Company", "id": "beta" } },
        "role": { "__entity": { "type": "Portal::Role", "id": "owner" } },
        "active": true });
    let (s, b) = owner
        .send(
            "PATCH",
            "/v1/users/ra",
            serde_json::to_vec(&json!({ "attrs": attrs })).unwrap(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        decide(&anon, "ra", "report.shipment.create", beta, beta_entity.clone()).await,
        "deny"
    );
    assert_eq!(
        decide(&anon, "ra", "shipping_rule.edit", acme, json!([])).await,
        "deny"
    );
    let (s, _) = owner.post("/v1/users/ra/deactivate", &json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        decide(&anon, "ra", "report.shipment.create", acme, json!([])).await,
        "deny"
    );
}

fn assert_forbidden(s: u16, b: &serde_json::Value) {
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["code"], "forbidden", "{b}");
    assert!(
        b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{b}"
    );
}

/// `/v1/companies` and `/v1/groups` on the default folder: allowed and refused calls.
#[tokio::test]
async fn companies_and_groups_over_http() {
    let env = crate::manage::sqlite_env().await;
    let store = &*env.store;
    crate::manage::company(store, "acme", "customer", Some(5)).await;
    crate::manage::company(store, "beta", "customer", None).await;
    let owner = Http::new(&env.server)
        .with_key(&crate::manage::user_with_key(store, "oa", "acme", "owner", true).await);
    let admin = Http::new(&env.server)
        .with_key(&crate::manage::user_with_key(store, "aa", "acme", "admin", true).await);
    let beta = Http::new(&env.server)
        .with_key(&crate::manage::user_with_key(store, "ob", "beta", "owner", true).await);

    // Companies: an Owner creates a sub-company (parent: its own), renames it, sets its limit.
    let (s, b) = owner
        .post(
            "/v1/companies",
            &json!({ "id": "acme-north", "name": "North", "account_type": "customer" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["parent"], "acme", "{b}");
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/companies/acme-north",
        json!({ "name": "Nord", "user_limit": 3 }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], "Nord");
    assert_eq!(b["user_limit"], 3);
    let (s, b) = owner.get("/v1/companies").await;
    assert_eq!(s, 200, "{b}");
    let ids: Vec<&str> = b["companies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "acme-north"], "{b}");
    // Refused: another account type, a top-level company, another tenant, its own terms,
    // an Admin of a Customer account.
    for body in [
        json!({ "id": "acme-c", "account_type": "carrier" }),
        json!({ "id": "top", "account_type": "customer", "parent": null }),
        json!({ "id": "beta-x", "account_type": "customer", "parent": "beta" }),
    ] {
        let (s, b) = owner.post("/v1/companies", &body).await;
        assert_forbidden(s, &b);
    }
    // Another tenant's company is answered as a missing one.
    let (s, b) = send(&owner, "PATCH", "/v1/companies/beta", json!({ "name": "mine" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{b}");
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/companies/acme",
        json!({ "user_limit": 500 }),
    )
    .await;
    assert_forbidden(s, &b);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("companies.own-terms"),
        "{b}"
    );
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/companies/acme-north",
        json!({ "account_type": "carrier" }),
    )
    .await;
    assert_forbidden(s, &b);
    let (s, b) = admin
        .post(
            "/v1/companies",
            &json!({ "id": "acme-south", "account_type": "customer" }),
        )
        .await;
    assert_forbidden(s, &b);
    let (s, b) = beta.get("/v1/companies").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["companies"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(store.get_company("acme").await.unwrap().user_limit, Some(5));

    // Groups: an Owner creates, edits, makes default and deletes; features must be declared.
    let (s, b) = owner
        .post(
            "/v1/groups",
            &json!({ "name": "reporters", "features": ["read_reports"] }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = owner
        .post(
            "/v1/groups",
            &json!({ "name": "typo", "features": ["read_reportz"] }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "unknown_feature");
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/groups/reporters",
        json!({ "features": ["read_reports", "read_shipments"] }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["features"], json!(["read_reports", "read_shipments"]));
    let (s, b) = send(
        &owner,
        "PUT",
        "/v1/groups/default",
        json!({ "name": "reporters" }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = owner.get("/v1/groups").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["groups"][0]["is_default"], true, "{b}");
    // An Admin may not; nor may another tenant's Owner touch a group acme's users are in.
    let (s, b) = admin.post("/v1/groups", &json!({ "name": "x" })).await;
    assert_forbidden(s, &b);
    let (s, b) = send(&admin, "PUT", "/v1/groups/default", json!({ "name": null })).await;
    assert_forbidden(s, &b);
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "r1", "login": "r1", "role": "regular", "attrs": { "scope_all": true } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["group"], "reporters", "the default group: {b}");
    let (s, b) = send(&beta, "PATCH", "/v1/groups/reporters", json!({ "features": [] })).await;
    assert_forbidden(s, &b);
    let (s, b) = send(&beta, "DELETE", "/v1/groups/reporters", serde_json::Value::Null).await;
    assert_forbidden(s, &b);
    // Deleting a group users are in is a conflict; once empty it goes.
    let (s, b) = send(&owner, "PUT", "/v1/groups/default", json!({ "name": null })).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = send(&owner, "DELETE", "/v1/groups/reporters", serde_json::Value::Null).await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = send(&owner, "PATCH", "/v1/users/r1", json!({ "group": null })).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = send(&owner, "DELETE", "/v1/groups/reporters", serde_json::Value::Null).await;
    assert_eq!(s, 204, "{b}");
    // Every call above is in the audit trail, refusals as `denied`.
    let (s, b) = owner.get("/v1/audit?action=company.create").await;
    assert_eq!(s, 200, "{b}");
    let outcomes: Vec<&str> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"denied"), "{b}");
}
