//! Every example folder runs as a complete portal: the story of its README's "Run it"
//! section, call by call, against a real `portcullis serve` process with the store on SQLite
//! and on PostgreSQL (skipped when no server is reachable).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::Http;
use crate::manage::{drop_postgres, fresh_postgres};
use crate::procs::{bootstrap, run, Proc};

fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(name)
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("portal.db").display())
}

/// A call of the management API: `(status, body)`.
async fn call(http: &Http, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    http.send(method, path, bytes).await
}

/// Asserts a 403 whose message names `reason` (the policy, or the unmapped operation).
fn forbidden(answer: (u16, Value), reason: &str) {
    let (s, b) = answer;
    assert_eq!(s, 403, "expected 403 naming {reason}: {b}");
    assert_eq!(b["error"]["code"], "forbidden", "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap_or("").contains(reason),
        "expected {reason}: {b}"
    );
}

/// `POST /v1/authorize`: the decision and the ids of its reasons.
async fn decide(http: &Http, request: Value) -> (String, Vec<String>) {
    let (s, b) = http.post("/v1/authorize", &request).await;
    assert_eq!(s, 200, "{request}: {b}");
    let reasons = b["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| r["id"].as_str().unwrap().to_owned())
        })
        .collect();
    (b["decision"].as_str().unwrap().to_owned(), reasons)
}

fn user(id: &str) -> String {
    format!("Portal::User::\"{id}\"")
}

// ---- load-planner ---------------------------------------------------------------------------

fn load_list(id: &str, owner: &str) -> Value {
    json!({
        "uid": { "type": "Portal::LoadList", "id": id },
        "parents": [{ "type": "Portal::Company", "id": "haulco" }],
        "attrs": { "owner": { "__entity": { "type": "Portal::User", "id": owner } } }
    })
}

async fn load_planner_story(db: &str) {
    let key = bootstrap(db, "haulco", "standard", "ada", "administrator", &[]);
    run(&[
        "users",
        "--database-url",
        db,
        "company",
        "haulco",
        "--user-limit",
        "2",
    ]);
    let (server, _) = Proc::serve(&folder("load-planner"), Some(db), &[]);
    let anon = Http::at(server.url.clone());
    let ada = Http::at(server.url.clone()).with_key(&key);

    // Invite Pia as an isolated Planner; an isolated Administrator is refused.
    let (s, inv) = ada
        .post(
            "/v1/invitations",
            &json!({ "email": "pia@haulco.example", "role": "planner", "flags": ["isolated"] }),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    assert_eq!(inv["invitation"]["status"], "pending", "{inv}");
    assert_eq!(inv["invitation"]["flags"], json!(["isolated"]), "{inv}");
    let token = inv["token"].as_str().unwrap().to_owned();
    forbidden(
        ada.post(
            "/v1/invitations",
            &json!({ "email": "ian@haulco.example", "role": "administrator", "flags": ["isolated"] }),
        )
        .await,
        "flag.isolated.max-rank.assign",
    );
    let (s, b) = ada.get("/v1/invitations").await;
    assert_eq!(s, 200, "{b}");
    let emails: Vec<&str> = b["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["pia@haulco.example"], "{b}");

    // Pia accepts with her token and first password.
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": token, "user_id": "pia", "login": "pia", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["role"].as_str(), b["flags"].clone()),
        (Some("planner"), json!(["isolated"])),
        "{b}"
    );

    // Isolated: only her own load lists.
    let read = |list: &str, owner: &str| {
        json!({ "principal": user("pia"), "action": "loadlist.read",
                "resource": format!("Portal::LoadList::\"{list}\""), "entities": [load_list(list, owner)] })
    };
    let d = decide(&anon, read("l1", "ada")).await;
    assert_eq!(
        d,
        ("deny".to_owned(), vec!["flag.isolated.owned-only".to_owned()])
    );
    let d = decide(&anon, read("l2", "pia")).await;
    assert_eq!(d, ("allow".to_owned(), vec!["feature.load_lists".to_owned()]));

    // The Cargo Editor feature permission.
    let cargo = json!({ "principal": user("pia"), "action": "cargo.edit", "resource": "Portal::Company::\"haulco\"" });
    assert_eq!(decide(&anon, cargo.clone()).await.0, "deny");
    let (s, b) = call(
        &ada,
        "PATCH",
        "/v1/users/pia",
        Some(json!({ "addons": ["cargo_editor"] })),
    )
    .await;
    assert_eq!((s, b["addons"].clone()), (200, json!(["cargo_editor"])), "{b}");
    let d = decide(&anon, cargo).await;
    assert_eq!(
        d,
        ("allow".to_owned(), vec!["feature.cargo_editor.addon".to_owned()])
    );

    // Roles.
    forbidden(
        call(
            &ada,
            "PUT",
            "/v1/users/pia/role",
            Some(json!({ "role": "administrator" })),
        )
        .await,
        "flag.isolated.max-rank.assign",
    );
    let (s, b) = call(&ada, "PATCH", "/v1/users/pia", Some(json!({ "flags": [] }))).await;
    assert_eq!((s, b["flags"].clone()), (200, json!([])), "{b}");
    let (s, b) = call(
        &ada,
        "PUT",
        "/v1/users/pia/role",
        Some(json!({ "role": "editor" })),
    )
    .await;
    assert_eq!((s, b["role"].clone()), (200, json!("editor")), "{b}");
    forbidden(
        call(
            &ada,
            "PATCH",
            "/v1/users/pia",
            Some(json!({ "addons": ["project_editor"] })),
        )
        .await,
        "users.addons-planners-only",
    );
    forbidden(
        call(
            &ada,
            "PUT",
            "/v1/users/ada/role",
            Some(json!({ "role": "planner" })),
        )
        .await,
        "role.administrator.own-role",
    );

    // The user limit: the invitation is issued, its acceptance refused; then it is revoked.
    let (s, inv) = ada
        .post(
            "/v1/invitations",
            &json!({ "email": "eve@haulco.example", "role": "editor" }),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": inv["token"], "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (409, json!("limit_reached")),
        "{b}"
    );
    let path = format!("/v1/invitations/{}", inv["invitation"]["id"].as_str().unwrap());
    let (s, b) = call(&ada, "DELETE", &path, None).await;
    assert_eq!((s, b["status"].clone()), (200, json!("revoked")), "{b}");

    // The access log holds the refused calls with their reasons.
    let (s, b) = ada.get("/v1/audit").await;
    assert_eq!(s, 200, "{b}");
    let entries = b["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "user.set_role"
            && e["target"] == "user:ada"
            && e["outcome"] == "denied"
            && e["details"]["reasons"] == json!(["role.administrator.own-role"])),
        "{b}"
    );
    assert!(entries.iter().any(|e| e["action"] == "invitation.revoke"), "{b}");

    // Delete with transfer, inside the company only.
    forbidden(
        call(&ada, "DELETE", "/v1/users/pia?transfer_to=nobody", None).await,
        "users.delete-transfer-in-company",
    );
    let (s, b) = call(&ada, "DELETE", "/v1/users/pia?transfer_to=ada", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["deleted"]["id"].clone(), b["transfer_to"].clone()),
        (json!("pia"), json!("ada")),
        "{b}"
    );
    let (s, b) = ada.get("/v1/users/pia").await;
    assert_eq!(s, 404, "{b}");

    // No deactivation and no direct creation in this portal.
    forbidden(
        call(&ada, "POST", "/v1/users/ada/deactivate", None).await,
        "operation `user.deactivate` is not enabled",
    );
    forbidden(
        ada.post("/v1/users", &json!({ "login": "x", "role": "planner" }))
            .await,
        "operation `user.create` is not enabled",
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_planner_runs_as_a_portal_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    load_planner_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_planner_runs_as_a_portal_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    load_planner_story(&url).await;
    drop_postgres(&url).await;
}
