//! Example folders run as portals: served with a SQLite store, users bootstrapped with the CLI,
//! decisions for stored users that need the attributes the folder declares (defaults and
//! values the store derives), and writes that would not fit the folder's schema refused with
//! 422 before anything is written.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::Http;
use crate::procs::{bootstrap, Proc};

fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("portal.db").display())
}

async fn decide(http: &Http, principal: &str, action: &str, resource: &str, context: Value) -> Value {
    let (s, b) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": principal, "action": action, "resource": resource, "context": context }),
        )
        .await;
    assert_eq!(s, 200, "{action} by {principal} on {resource}: {b}");
    b
}

/// The load planner's `User.accessible` ("the user's primary company is always accessible")
/// is derived by the store: an Administrator's stored decision passes the acting-company rule,
/// where the store used to leave the schema's required attribute unset (400 on every
/// decision). Written by a manager, it is refused.
#[tokio::test]
async fn load_planner_users_hold_their_derived_accessible_companies() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    let key = bootstrap(&db, "acme", "standard", "ada", "administrator", &[]);
    let (server, _) = Proc::serve(&folder("examples/load-planner"), Some(&db), &[]);
    let http = Http::at(server.url.clone());
    let b = decide(
        &http,
        "Portal::User::\"ada\"",
        "user.read",
        "Portal::User::\"ada\"",
        json!({}),
    )
    .await;
    assert_eq!(b["decision"], "allow", "{b}");

    let admin = Http::at(server.url.clone()).with_key(&key);
    let (s, b) = admin
        .post(
            "/v1/users",
            &json!({ "login": "pia", "role": "planner", "attrs": { "accessible": [] } }),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`accessible` is derived"),
        "{b}"
    );
}

/// The service portal's `login_is_email` is derived from the login: a self-service password
/// reset is allowed for an email login and denied, with the folder's reason, for another.
#[tokio::test]
async fn service_portal_password_reset_follows_the_derived_login_is_email() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    bootstrap(
        &db,
        "acme",
        "customer",
        "mia@acme.example",
        "portal_user",
        &["require_mfa=false"],
    );
    bootstrap(&db, "acme", "customer", "bob", "portal_user", &[]);
    let (server, _) = Proc::serve(&folder("examples/service-portal"), Some(&db), &[]);
    let http = Http::at(server.url.clone());
    let ctx = json!({ "mfa_verified": false });
    let mia = "Portal::User::\"mia@acme.example\"";
    let b = decide(&http, mia, "user.password_reset", mia, ctx.clone()).await;
    assert_eq!(b["decision"], "allow", "{b}");
    let bob = "Portal::User::\"bob\"";
    let b = decide(&http, bob, "user.password_reset", bob, ctx).await;
    assert_eq!(b["decision"], "deny", "{b}");
    assert!(
        b["reasons"]
            .to_string()
            .contains("portal.password-reset-email-login"),
        "{b}"
    );
}

/// A user whose attributes would not fit the schema (a wrong type, an attribute the schema
/// does not declare) is refused with 422 naming it, and nothing is written.
#[tokio::test]
async fn writes_that_would_not_fit_the_schema_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    let key = bootstrap(&db, "acme", "customer", "olga", "owner", &["scope_all=true"]);
    let (server, _) = Proc::serve(&folder("policies"), Some(&db), &[]);
    let owner = Http::at(server.url.clone()).with_key(&key);
    let (s, before) = owner.get("/v1/users").await;
    assert_eq!(s, 200, "{before}");

    for (attrs, named) in [
        (json!({ "scope_all": "yes" }), "scope_all"),
        (json!({ "locations": [1, 2] }), "locations"),
        (json!({ "favourite_colour": "blue" }), "favourite_colour"),
    ] {
        let (s, b) = owner
            .post(
                "/v1/users",
                &json!({ "login": "rita", "role": "regular", "attrs": attrs }),
            )
            .await;
        assert_eq!(s, 422, "{attrs}: {b}");
        assert_eq!(b["error"]["code"], "unfit_attributes", "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(named),
            "{named}: {b}"
        );
    }
    let (_, after) = owner.get("/v1/users").await;
    assert_eq!(before, after, "a refused write changed the store");

    // The same user with attributes of the right types is created; what it does not give
    // (`all_customers`, `customers`...) comes from the folder's defaults.
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "login": "rita", "role": "regular", "attrs": { "scope_all": true } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let b = decide(
        &Http::at(server.url.clone()),
        &format!("Portal::User::\"{id}\""),
        "shipment.create",
        "Portal::Company::\"acme\"",
        json!({}),
    )
    .await;
    assert_eq!(b["decision"], "allow", "{b}");
}

/// The load planner's `[settings] default_user_limit = 10` is the limit of a company created
/// over the management API without one; a limit the call gives stays.
#[tokio::test]
async fn load_planner_companies_get_the_folders_default_user_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    let key = bootstrap(&db, "lp", "enterprise", "ada", "administrator", &[]);
    let (server, _) = Proc::serve(&folder("examples/load-planner"), Some(&db), &[]);
    let admin = Http::at(server.url.clone()).with_key(&key);
    let (s, b) = admin
        .post(
            "/v1/companies",
            &json!({ "id": "lp-b", "account_type": "enterprise" }),
        )
        .await;
    assert_eq!((s, b["user_limit"].clone()), (201, json!(10)), "{b}");
    let (s, b) = admin
        .post(
            "/v1/companies",
            &json!({ "id": "lp-c", "account_type": "enterprise", "user_limit": 3 }),
        )
        .await;
    assert_eq!((s, b["user_limit"].clone()), (201, json!(3)), "{b}");
}
