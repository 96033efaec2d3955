//! Permission groups (seed 003) from the store reach decisions, served from
//! `examples/service-portal` (where every feature is held through a group).

use std::time::Duration;

use portcullis_server::Server;
use portcullis_store::{Audit, GroupPatch, NewCompany, NewGroup, NewUser, UserStore};
use serde_json::json;

use crate::common::{copy_dir, start, Http, DEADLINE};
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

async fn pays(http: &Http, user: &str) -> String {
    let (s, b) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": user, "action": "invoice.pay", "resource": "Portal::Invoice::\"inv\"",
                     "context": { "mfa_verified": true }, "entities": invoice() }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["decision"].as_str().unwrap().to_owned()
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
    for (name, features) in [("payers", vec!["pay_invoices"]), ("standard", vec![])] {
        store
            .create_group(
                NewGroup {
                    name: name.into(),
                    features: features.into_iter().map(str::to_owned).collect(),
                    ..NewGroup::default()
                },
                &Audit::system(),
            )
            .await
            .unwrap();
    }
    portal_user(store, "payer", "payers").await;
    portal_user(store, "std", "standard").await;
    let http = Http::new(&p.server);
    assert_eq!(pays(&http, "payer").await, "allow");
    // `standard` of roles.toml holds no `pay_invoices`; its declared features still count.
    assert_eq!(pays(&http, "std").await, "deny");
    let (s, b) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": "std", "action": "invoice.read", "resource": "Portal::Invoice::\"inv\"",
                     "context": { "mfa_verified": true }, "entities": invoice() }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["decision"], "allow", "{b}");

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
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pays(&http, "payer").await == "allow" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group edit never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
