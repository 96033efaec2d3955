//! Every example folder runs as a complete portal: the story of its README's "Run it"
//! section, call by call, against a real `portcullis serve` process with the store on SQLite
//! and on PostgreSQL (skipped when no server is reachable).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::Http;
use crate::manage::{drop_postgres, fresh_postgres};
use crate::procs::{bootstrap, run, Proc};

pub(crate) fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(name)
}

pub(crate) fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("portal.db").display())
}

/// A call of the management API: `(status, body)`.
pub(crate) async fn call(http: &Http, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
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

/// The load planner's enterprise account, as its Administrator runs it from the page: a user
/// moved to another company of the enterprise, a leaving user deleted with or without a
/// transfer of its load lists, and the month's access log downloaded as CSV under the
/// folder's own action (`access_log.download`).
async fn load_planner_enterprise_story(db: &str) {
    run(&["migrate", "--database-url", db]);
    let users = |args: &[&str]| {
        let mut all = vec!["users", "--database-url", db];
        all.extend_from_slice(args);
        run(&all)
    };
    users(&["company", "globex", "--account-type", "enterprise"]);
    users(&[
        "company",
        "globex-nl",
        "--account-type",
        "enterprise",
        "--parent",
        "globex",
    ]);
    users(&["company", "solo", "--account-type", "standard"]);
    // The first Administrator of both companies of the enterprise.
    let gia: Value = serde_json::from_str(&users(&[
        "create",
        "--company",
        "globex",
        "--id",
        "gia",
        "--login",
        "gia",
        "--role",
        "administrator",
        "--access",
        "globex-nl",
    ]))
    .unwrap();
    assert_eq!(
        gia["user"]["accessible"],
        json!([{ "company": "globex-nl", "role": null }]),
        "{gia}"
    );
    let key = gia["api_key"].as_str().unwrap().to_owned();
    for (id, company) in [("pia", "globex"), ("lou", "globex"), ("sam", "solo")] {
        users(&[
            "create",
            "--company",
            company,
            "--id",
            id,
            "--login",
            id,
            "--role",
            "planner",
            "--no-key",
        ]);
    }
    let (server, _) = Proc::serve(&folder("load-planner"), Some(db), &[]);
    let gia = Http::at(server.url.clone()).with_key(&key);

    // Move Pia to the Dutch company: she is there, and no longer in the first one.
    let (s, b) = gia
        .post("/v1/users/pia/move", &json!({ "company": "globex-nl" }))
        .await;
    assert_eq!((s, b["company"].clone()), (200, json!("globex-nl")), "{b}");
    // Not oneself, and only to a company the Administrator can access.
    forbidden(
        gia.post("/v1/users/gia/move", &json!({ "company": "globex-nl" }))
            .await,
        "enterprise.move-self",
    );
    forbidden(
        gia.post("/v1/users/lou/move", &json!({ "company": "solo" }))
            .await,
        "enterprise.move-to-accessible",
    );

    // A leaving user: deleted with the load lists handed to Gia, or without a transfer (the
    // application then deletes the lists); the answer says which.
    let (s, b) = call(&gia, "DELETE", "/v1/users/lou?transfer_to=gia", None).await;
    assert_eq!(
        (s, b["deleted"]["id"].clone(), b["transfer_to"].clone()),
        (200, json!("lou"), json!("gia")),
        "{b}"
    );
    let (s, b) = call(&gia, "DELETE", "/v1/users/pia", None).await;
    assert_eq!(
        (s, b["deleted"]["id"].clone(), b["transfer_to"].clone()),
        (200, json!("pia"), Value::Null),
        "{b}"
    );

    // The monthly access log: this month's rows of the company, as CSV.
    let now = time::OffsetDateTime::now_utc();
    let month = now.replace_day(1).unwrap().replace_time(time::Time::MIDNIGHT);
    let since = month
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (s, csv) = gia
        .send_text("GET", &format!("/v1/audit?format=csv&since={since}"), Vec::new())
        .await;
    assert_eq!(s, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,actor,company,action,target,outcome,version,details"
    );
    for row in [
        ",gia,globex,user.move,user:pia,success,",
        ",gia,globex,user.delete,user:lou,success,",
        ",gia,globex,user.move,user:gia,denied,",
    ] {
        assert!(lines.iter().any(|l| l.contains(row)), "{row}: {csv}");
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_planner_enterprise_runs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    load_planner_enterprise_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_planner_enterprise_runs_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    load_planner_enterprise_story(&url).await;
    drop_postgres(&url).await;
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

// ---- customs-portal -------------------------------------------------------------------------

fn profile(id: &str) -> Value {
    json!({ "customer": { "__entity": { "type": "Portal::CustomerProfile", "id": id } } })
}

/// Lena's `action` on a declaration filed for `filed_for`, with `context`.
fn declaration(action: &str, filed_for: &str, context: Value) -> Value {
    json!({
        "principal": user("lena"), "action": action, "resource": "Portal::Declaration::\"d1\"",
        "context": context,
        "entities": [{
            "uid": { "type": "Portal::Declaration", "id": "d1" },
            "parents": [{ "type": "Portal::CustomerProfile", "id": filed_for },
                        { "type": "Portal::Company", "id": "freightco" }],
            "attrs": { "owner": { "__entity": { "type": "Portal::User", "id": "fay" } } }
        }]
    })
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) async fn login(anon: &Http, login: &str, password: &str) -> (u16, Value) {
    anon.post("/v1/auth/login", &json!({ "login": login, "password": password }))
        .await
}

pub(crate) fn set_password(db: &str, folder: &std::path::Path, user: &str, password: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(crate::procs::BIN)
        .args([
            "users",
            "--database-url",
            db,
            "password",
            "--user",
            user,
            "--folder",
        ])
        .arg(folder)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The environment that gives a server a key to seal TOTP secrets with: a SQLite store makes
/// `<database>.key` on first start; a PostgreSQL deployment names its key file (in `keys`).
fn sealing_key(db: &str, keys: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    if !db.starts_with("postgres") {
        return Vec::new();
    }
    let key_file = keys.path().join("totp.key");
    std::fs::write(&key_file, "42".repeat(32)).unwrap();
    vec![(
        "PORTCULLIS_SECRET_KEY_FILE",
        key_file.to_str().unwrap().to_owned(),
    )]
}

async fn customs_portal_story(db: &str) {
    let key = bootstrap(
        db,
        "freightco",
        "forwarder",
        "fay",
        "admin",
        &["all_customers=true"],
    );
    let dir = folder("customs-portal");
    let profiles = dir.join("profiles.json");
    let keys = tempfile::tempdir().unwrap();
    let mut env = sealing_key(db, &keys);
    // The application's mailer: each link it is handed lands in `outbox` as one JSON file.
    let outbox = keys.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let mailer = keys.path().join("mailer.sh");
    std::fs::write(
        &mailer,
        format!(
            "#!/bin/sh\ncat > \"{0}/mail-$$.tmp\" && mv \"{0}/mail-$$.tmp\" \"{0}/mail-$$.json\"\n",
            outbox.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&mailer, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.push((
        "PORTCULLIS_PASSWORD_RESET_COMMAND",
        mailer.to_str().unwrap().to_owned(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (server, _) = Proc::serve_with_env(&dir, Some(db), &["--entities", profiles.to_str().unwrap()], &env);
    let anon = Http::at(server.url.clone());
    let fay = Http::at(server.url.clone()).with_key(&key);

    // Lena, an Operator with Limited Customer Access; a forwarder has no User role.
    let acme_only =
        json!({ "customers": [{ "__entity": { "type": "Portal::CustomerProfile", "id": "fc-acme" } }] });
    let (s, b) = fay
        .post(
            "/v1/users",
            &json!({ "id": "lena", "login": "lena", "role": "operator", "attrs": acme_only }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["role"].clone(), b["attrs"].clone()),
        (json!("operator"), acme_only),
        "{b}"
    );
    forbidden(
        fay.post(
            "/v1/users",
            &json!({ "id": "ulf", "login": "ulf", "role": "user" }),
        )
        .await,
        "account_type.forwarder.assign",
    );

    // Her declarations, the active customer in the context.
    let d = decide(
        &anon,
        declaration("declaration.read", "fc-acme", profile("fc-acme")),
    )
    .await;
    assert_eq!(d, ("allow".to_owned(), ids(&["feature.declarations_read"])));
    let d = decide(
        &anon,
        declaration("declaration.read", "fc-beta", profile("fc-acme")),
    )
    .await;
    assert_eq!(
        d,
        (
            "deny".to_owned(),
            ids(&["customers.active-context", "customers.limited-access"])
        )
    );
    let d = decide(
        &anon,
        declaration("declaration.read", "fc-beta", profile("fc-beta")),
    )
    .await;
    assert_eq!(
        d,
        (
            "deny".to_owned(),
            ids(&["customers.limited-access", "customers.session-customer"])
        )
    );
    let d = decide(&anon, declaration("declaration.read", "fc-acme", json!({}))).await;
    assert_eq!(d, ("deny".to_owned(), ids(&["customers.context-required"])));
    let d = decide(
        &anon,
        declaration("declaration.delete", "fc-acme", profile("fc-acme")),
    )
    .await;
    assert_eq!(d, ("deny".to_owned(), ids(&[])));

    // Customer Access changed.
    let beta_only =
        json!({ "customers": [{ "__entity": { "type": "Portal::CustomerProfile", "id": "fc-beta" } }] });
    let (s, b) = call(
        &fay,
        "PATCH",
        "/v1/users/lena",
        Some(json!({ "attrs": beta_only })),
    )
    .await;
    assert_eq!((s, b["attrs"].clone()), (200, beta_only.clone()), "{b}");

    // Her language: EN, NL, DE or PL, nothing else; a refused change changes nothing.
    let with_language = |language: &str| {
        let mut attrs = beta_only.clone();
        attrs["language"] = json!(language);
        json!({ "attrs": attrs })
    };
    let (s, b) = call(&fay, "PATCH", "/v1/users/lena", Some(with_language("fr"))).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["code"], "unfit_attributes", "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"`language` must be one of "en", "nl", "de", "pl", not "fr""#),
        "{message}"
    );
    // Nor a value of the wrong type, or an attribute the schema does not declare.
    for attrs in [
        json!({ "customers": "fc-beta" }),
        json!({ "customers": [], "shoe_size": 44 }),
    ] {
        let (s, b) = call(&fay, "PATCH", "/v1/users/lena", Some(json!({ "attrs": attrs }))).await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (422, json!("unfit_attributes")),
            "{b}"
        );
    }
    assert_eq!(fay.get("/v1/users/lena").await.1["attrs"], beta_only);
    let (s, b) = call(&fay, "PATCH", "/v1/users/lena", Some(with_language("nl"))).await;
    assert_eq!((s, b["attrs"]["language"].clone()), (200, json!("nl")), "{b}");

    // "Changing a user's email requires them to verify the new email address": the link goes
    // to the new address through the mailer; until it is used the address stays as it was.
    let new_email = json!({ "email": "lena@freightco.example" });
    let (s, b) = call(&fay, "PATCH", "/v1/users/lena", Some(new_email)).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(
        (&b["pending_email"], &b["user"]["email"]),
        (&json!("lena@freightco.example"), &Value::Null),
        "{b}"
    );
    assert_eq!(fay.get("/v1/users/lena").await.1["email"], Value::Null);
    let mails: Vec<Value> = std::fs::read_dir(&outbox)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension().is_some_and(|x| x == "json"))
                .then(|| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        })
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(
        (&mail["purpose"], &mail["user"], &mail["email"]),
        (
            &json!("email_change"),
            &json!("lena"),
            &json!("lena@freightco.example")
        ),
        "{mail}"
    );
    let confirm = json!({ "token": mail["token"] });
    let (s, b) = anon.post("/v1/auth/email/confirm", &confirm).await;
    assert_eq!(
        (s, b["email"].clone()),
        (200, json!("lena@freightco.example")),
        "{b}"
    );
    assert_eq!(
        fay.get("/v1/users/lena").await.1["email"],
        "lena@freightco.example"
    );
    let (s, b) = anon.post("/v1/auth/email/confirm", &confirm).await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (400, json!("invalid_token")),
        "{b}"
    );
    let beta = || declaration("declaration.read", "fc-beta", profile("fc-beta"));
    assert_eq!(
        decide(&anon, beta()).await,
        ("allow".to_owned(), ids(&["feature.declarations_read"]))
    );

    // An external user: a Viewer for 7 days of invitation, never more.
    forbidden(
        fay.post(
            "/v1/invitations",
            &json!({ "email": "eddie@partner.example", "role": "operator", "flags": ["external"] }),
        )
        .await,
        "flag.external.max-rank.assign",
    );
    let (s, inv) = fay
        .post(
            "/v1/invitations",
            &json!({ "email": "eddie@partner.example", "role": "viewer", "flags": ["external"] }),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    let days = |field: &str| {
        let t = inv["invitation"][field].as_str().unwrap();
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(
        days("expires_at") - days("created_at"),
        time::Duration::days(7),
        "{inv}"
    );
    let accept = |password: &str| json!({ "token": inv["token"], "user_id": "eddie", "password": password });
    let (s, b) = anon.post("/v1/invitations/accept", &accept("weakpass")).await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (400, json!("weak_password")),
        "{b}"
    );
    let (s, b) = anon
        .post("/v1/invitations/accept", &accept("Partner-Audit-7"))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["role"].clone(), b["flags"].clone()),
        (json!("viewer"), json!(["external"])),
        "{b}"
    );
    forbidden(
        call(
            &fay,
            "PUT",
            "/v1/users/eddie/role",
            Some(json!({ "role": "operator" })),
        )
        .await,
        "flag.external.max-rank.assign",
    );

    // Sign-in: locked after 5 failures, unlocked by the Admin.
    set_password(db, &dir, "lena", "Lena-Pass-2026!");
    for _ in 0..5 {
        let (s, b) = login(&anon, "lena", "wrong").await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (401, json!("invalid_credentials")),
            "{b}"
        );
    }
    let (s, b) = login(&anon, "lena", "Lena-Pass-2026!").await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("invalid_credentials")),
        "locked: {b}"
    );
    // Five wrong passwords and the refused right one; the fifth locked the account.
    let (_, metrics) = anon.send_text("GET", "/metrics", Vec::new()).await;
    assert!(
        metrics.contains("\nportcullis_sign_in_failures_total 6\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nportcullis_lockouts_total 1\n"), "{metrics}");
    let (s, b) = call(&fay, "POST", "/v1/users/lena/unlock", None).await;
    assert_eq!((s, b["locked_until"].clone()), (200, Value::Null), "{b}");
    let (s, b) = login(&anon, "lena", "Lena-Pass-2026!").await;
    assert_eq!((s, b["session"]["user"].clone()), (200, json!("lena")), "{b}");
    assert_eq!(b["mfa_setup_required"], false, "an operator need not enrol: {b}");
    let lena_session = b["token"].as_str().unwrap().to_owned();

    // Admins must enrol a second factor: until Fay has, her session can only enrol.
    set_password(db, &dir, "fay", "Fay-Admin-Pass-9");
    let (s, b) = login(&anon, "fay", "Fay-Admin-Pass-9").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(true)), "{b}");
    let fay_session = Http::at(server.url.clone()).with_key(b["token"].as_str().unwrap());
    for (method, path) in [
        ("GET", "/v1/users"),
        ("GET", "/v1/users/lena"),
        ("GET", "/v1/auth/sessions"),
        ("POST", "/v1/users/lena/deactivate"),
    ] {
        let (s, b) = call(&fay_session, method, path, None).await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (403, json!("mfa_enrollment_required")),
            "{method} {path}: {b}"
        );
    }
    let (s, b) = fay_session.get("/v1/auth/session").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(true)), "{b}");
    // Her API key (an integration's credential, not a sign-in) is not held back.
    assert_eq!(fay.get("/v1/users/lena").await.0, 200);
    let (s, e) = fay_session.post("/v1/auth/totp/enrol", &json!({})).await;
    assert_eq!(s, 200, "{e}");
    let secret = portcullis_server::auth::totp::base32_decode(e["secret"].as_str().unwrap()).unwrap();
    let (s, b) = fay_session
        .post("/v1/auth/totp/confirm", &json!({ "code": totp_now(&secret, 0) }))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = fay_session.get("/v1/users/lena").await;
    assert_eq!((s, b["id"].clone()), (200, json!("lena")), "enrolled: {b}");
    let (s, b) = fay_session.get("/v1/auth/session").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(false)), "{b}");
    // A role that must use a second factor cannot turn it off.
    let (s, b) = fay_session
        .post(
            "/v1/auth/totp/disable",
            &json!({ "password": "Fay-Admin-Pass-9", "code": totp_now(&secret, 1) }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (409, json!("mfa_required_by_policy")),
        "{b}"
    );
    // Made an admin, Lena's session (no second factor) is held back at once.
    let (s, b) = call(
        &fay,
        "PUT",
        "/v1/users/lena/role",
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let lena_now = Http::at(server.url.clone()).with_key(&lena_session);
    let (s, b) = lena_now.get("/v1/auth/sessions").await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (403, json!("mfa_enrollment_required")),
        "{b}"
    );
    let (s, b) = call(
        &fay,
        "PUT",
        "/v1/users/lena/role",
        Some(json!({ "role": "operator" })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = lena_now.get("/v1/auth/sessions").await;
    assert_eq!(s, 200, "an operator again: {b}");

    // The Customer Selector: the session switches to a profile it may reach (Lena's access is
    // Beta's only now); its decisions then carry it as `context.customer`, which the request
    // no longer sends and cannot override.
    let session = lena_session.clone();
    let lena = anon.clone().with_key(&session);
    let (s, b) = lena
        .post("/v1/auth/switch", &json!({ "customer": "fc-acme" }))
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = lena
        .post("/v1/auth/switch", &json!({ "customer": "fc-beta" }))
        .await;
    assert_eq!((s, b["switched_to"].clone()), (200, json!("fc-beta")), "{b}");
    let in_session = |filed_for: &str, context: Value| {
        let mut r = declaration("declaration.read", filed_for, context);
        let o = r.as_object_mut().unwrap();
        o.remove("principal");
        o.insert("session".to_owned(), json!(session));
        r
    };
    assert_eq!(
        decide(&anon, in_session("fc-beta", json!({}))).await,
        ("allow".to_owned(), ids(&["feature.declarations_read"]))
    );
    let d = decide(&anon, in_session("fc-acme", profile("fc-acme"))).await;
    assert_eq!(d.0, "deny", "the session's customer, not the request's: {d:?}");
    assert!(d.1.contains(&"customers.active-context".to_owned()), "{d:?}");

    // Audited decisions (`[audit] decisions`): a row each, allowed or denied, with the user,
    // the session's customer profile and the declaration, under the answer's decision id.
    let audited = |action: &str| {
        let mut r = declaration(action, "fc-beta", json!({}));
        let o = r.as_object_mut().unwrap();
        o.remove("principal");
        o.insert("session".to_owned(), json!(session));
        r
    };
    let (s, submitted) = anon.post("/v1/authorize", &audited("declaration.submit")).await;
    assert_eq!(
        (s, submitted["decision"].clone()),
        (200, json!("allow")),
        "{submitted}"
    );
    let (s, deleted) = anon.post("/v1/authorize", &audited("declaration.delete")).await;
    assert_eq!(
        (s, deleted["decision"].clone()),
        (200, json!("deny")),
        "{deleted}"
    );
    // The delete asked earlier by principal, with ACME in the request's context, was audited
    // too: newest first.
    for (action, answer, outcome, rows) in [
        ("declaration.submit", &submitted, "success", 1),
        ("declaration.delete", &deleted, "denied", 2),
    ] {
        let (s, b) = fay.get(&format!("/v1/audit?action={action}")).await;
        assert_eq!(s, 200, "{b}");
        let entries = b["entries"].as_array().unwrap();
        assert_eq!(entries.len(), rows, "{b}");
        if rows == 2 {
            let earlier = &entries[1];
            assert_eq!(
                (&earlier["actor"], &earlier["details"]["customer"]),
                (&json!("lena"), &json!("fc-acme")),
                "{earlier}"
            );
            assert!(earlier["details"].get("session").is_none(), "{earlier}");
        }
        let row = &entries[0];
        assert!(row["details"]["session"].is_string(), "{row}");
        assert_eq!(
            (&row["actor"], &row["company"], &row["target"], &row["outcome"]),
            (
                &json!("lena"),
                &json!("freightco"),
                &json!("Declaration:d1"),
                &json!(outcome)
            ),
            "{row}"
        );
        assert_eq!(row["details"]["customer"], "fc-beta", "{row}");
        assert_eq!(row["details"]["decision_id"], answer["decision_id"], "{row}");
    }
    // The Activity Logs' "Filter by Customer".
    let (s, b) = fay.get("/v1/audit?customer=fc-acme").await;
    assert_eq!(s, 200, "{b}");
    let rows = b["entries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{b}");
    assert_eq!(rows[0]["action"], "declaration.delete", "{b}");
    let (s, b) = fay
        .get("/v1/audit?customer=fc-beta&action=declaration.submit")
        .await;
    assert_eq!((s, b["entries"].as_array().map(Vec::len)), (200, Some(1)), "{b}");
    // Reading is not among them: no rows, however often it was decided.
    let (s, b) = fay.get("/v1/audit?action=declaration.read").await;
    assert_eq!((s, b["entries"].clone()), (200, json!([])), "{b}");

    // Deactivate, reactivate, delete; the audit log keeps the history.
    let (s, b) = call(&fay, "POST", "/v1/users/lena/deactivate", None).await;
    assert_eq!((s, b["active"].clone()), (200, json!(false)), "{b}");
    assert_eq!(
        decide(&anon, beta()).await,
        ("deny".to_owned(), ids(&["core.deactivated"]))
    );
    let (s, _) = login(&anon, "lena", "Lena-Pass-2026!").await;
    assert_eq!(s, 401);
    let (s, b) = call(&fay, "POST", "/v1/users/lena/reactivate", None).await;
    assert_eq!((s, b["active"].clone()), (200, json!(true)), "{b}");
    assert_eq!(
        decide(&anon, beta()).await,
        ("allow".to_owned(), ids(&["feature.declarations_read"]))
    );
    let (s, b) = call(&fay, "DELETE", "/v1/users/lena", None).await;
    assert_eq!((s, b["deleted"]["id"].clone()), (200, json!("lena")), "{b}");
    assert_eq!(fay.get("/v1/users/lena").await.0, 404);
    let (s, csv) = fay.send_text("GET", "/v1/audit?format=csv", Vec::new()).await;
    assert_eq!(s, 200, "{csv}");
    assert!(
        csv.starts_with("id,at,actor,company,action,target,outcome,version,details\n"),
        "{csv}"
    );
    for action in [
        "user.delete",
        "user.reactivate",
        "user.deactivate",
        "auth.unlock",
        "auth.lock",
    ] {
        assert!(
            csv.lines()
                .any(|l| l.contains(&format!(",{action},user:lena,success,"))),
            "{action}: {csv}"
        );
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customs_portal_runs_as_a_portal_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    customs_portal_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customs_portal_runs_as_a_portal_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    customs_portal_story(&url).await;
    drop_postgres(&url).await;
}

// ---- shipping-platform ----------------------------------------------------------------------

fn entity(ty: &str, id: &str) -> Value {
    json!({ "__entity": { "type": format!("Portal::{ty}"), "id": id } })
}

async fn may(anon: &Http, who: &str, action: &str, resource: &str) -> (String, Vec<String>) {
    decide(
        anon,
        json!({ "principal": user(who), "action": action, "resource": resource }),
    )
    .await
}

/// `portcullis users create` of a company's Owner with every scope, and the company's
/// attributes; returns its API key.
fn owner_of(db: &str, company: &str, id: &str, company_attrs: &[&str]) -> String {
    let mut flags = vec!["--attr", "scope_all=true"];
    flags.extend(company_attrs.iter().flat_map(|a| ["--company-attr", a]));
    crate::procs::bootstrap_with(db, (company, "customer"), id, "owner", &flags)
}

/// `POST /v1/users/{id}/api-keys` by `by`: the new key.
async fn key_of(by: &Http, id: &str, server: &Proc) -> Http {
    let (s, b) = by
        .post(&format!("/v1/users/{id}/api-keys"), &json!({ "name": id }))
        .await;
    assert_eq!((s, b["api_key"]["user"].clone()), (201, json!(id)), "{b}");
    Http::at(server.url.clone()).with_key(b["key"].as_str().unwrap())
}

async fn shipping_platform_story(db: &str) {
    let olga_key = owner_of(db, "acme", "olga", &[r#"subscription=["insights"]"#]);
    let gus_key = owner_of(db, "globex", "gus", &[]);
    let dir = folder("shipping-platform");
    let installation = dir.join("installation.json");
    let (server, _) = Proc::serve(&dir, Some(db), &["--entities", installation.to_str().unwrap()]);
    let anon = Http::at(server.url.clone());
    let olga = Http::at(server.url.clone()).with_key(&olga_key);
    let gus = Http::at(server.url.clone()).with_key(&gus_key);
    let oslo = entity("Location", "acme-oslo");
    let a1 = entity("Actor", "acme-oslo-a1");
    let s1 = "Portal::Shipment::\"acme-s1\"";
    let allow = |r: &str| ("allow".to_owned(), ids(&[r]));
    let deny = |r: &[&str]| ("deny".to_owned(), ids(r));

    // The Owner creates Adam, an Admin for Oslo.
    let (s, b) = olga
        .post(
            "/v1/users",
            &json!({ "id": "adam", "login": "adam", "role": "admin", "attrs": { "locations": [oslo] } }),
        )
        .await;
    assert_eq!((s, b["role"].clone()), (201, json!("admin")), "{b}");
    let adam = key_of(&olga, "adam", &server).await;

    // Adam creates Regular users inside his scope only, and no Admins.
    forbidden(
        adam.post(
            "/v1/users",
            &json!({ "id": "rita", "login": "rita", "role": "regular",
                     "attrs": { "locations": [entity("Location", "acme-bergen")] } }),
        )
        .await,
        "scope.assign-within",
    );
    let (s, b) = adam
        .post(
            "/v1/users",
            &json!({ "id": "rita", "login": "rita", "role": "regular", "attrs": { "actors": [a1] } }),
        )
        .await;
    assert_eq!((s, b["attrs"]["actors"].clone()), (201, json!([a1])), "{b}");
    forbidden(
        adam.post(
            "/v1/users",
            &json!({ "id": "al", "login": "al", "role": "admin", "attrs": { "actors": [a1] } }),
        )
        .await,
        "no policy permits it",
    );
    forbidden(
        adam.post(
            "/v1/invitations",
            &json!({ "email": "rob@acme.example", "role": "regular", "attrs": { "scope_all": true } }),
        )
        .await,
        "scope.assign-within",
    );
    let (s, b) = adam
        .post(
            "/v1/invitations",
            &json!({ "email": "rob@acme.example", "role": "regular",
                     "attrs": { "actors": [entity("Actor", "acme-oslo-a2")] } }),
        )
        .await;
    assert_eq!(
        (s, b["invitation"]["invited_by"].clone()),
        (201, json!("adam")),
        "{b}"
    );

    // Rita's scope and the subscription.
    assert_eq!(
        may(&anon, "rita", "shipment.read", s1).await,
        allow("feature.read_shipments")
    );
    assert_eq!(
        may(&anon, "rita", "shipment.read", "Portal::Shipment::\"acme-s2\"").await,
        deny(&["scope.records"])
    );
    let create = "Portal::Actor::\"acme-oslo-a1\"";
    assert_eq!(
        may(&anon, "rita", "shipment.create", create).await,
        allow("feature.create_shipments")
    );
    assert_eq!(
        may(
            &anon,
            "rita",
            "report.insights.create",
            "Portal::Company::\"acme\""
        )
        .await,
        allow("feature.insights_reports")
    );

    // Usage Profiles.
    let (s, b) = call(
        &olga,
        "PATCH",
        "/v1/users/adam",
        Some(json!({ "attrs": { "locations": [oslo], "withheld": ["shipping_rules"] } })),
    )
    .await;
    assert_eq!(
        (s, b["attrs"]["withheld"].clone()),
        (200, json!(["shipping_rules"])),
        "{b}"
    );
    forbidden(
        call(
            &adam,
            "PATCH",
            "/v1/users/rita",
            Some(json!({ "attrs": { "actors": [a1], "withheld": ["create_shipments"] } })),
        )
        .await,
        "users.usage-profile-within",
    );
    let withheld = json!(["shipping_rules", "create_shipments"]);
    let (s, b) = call(
        &adam,
        "PATCH",
        "/v1/users/rita",
        Some(json!({ "attrs": { "actors": [a1], "withheld": withheld } })),
    )
    .await;
    assert_eq!((s, b["attrs"]["withheld"].clone()), (200, withheld), "{b}");
    assert_eq!(
        may(&anon, "rita", "shipment.create", create).await,
        deny(&["usage.create_shipments"])
    );

    // Add-ons are the Owner's.
    forbidden(
        call(
            &adam,
            "PATCH",
            "/v1/users/rita",
            Some(json!({ "addons": ["all_action_centers"] })),
        )
        .await,
        "users.addons-by-owner",
    );
    let (s, b) = call(
        &olga,
        "PATCH",
        "/v1/users/adam",
        Some(json!({ "addons": ["all_action_centers"] })),
    )
    .await;
    assert_eq!(
        (s, b["addons"].clone()),
        (200, json!(["all_action_centers"])),
        "{b}"
    );

    // A visitor grant, approved and revoked by the data's Owner.
    let (s, b) = gus
        .post(
            "/v1/users",
            &json!({ "id": "vera", "login": "vera", "role": "visitor" }),
        )
        .await;
    assert_eq!((s, b["company"].clone()), (201, json!("globex")), "{b}");
    let vera = key_of(&gus, "vera", &server).await;
    let (s, g) = vera
        .post(
            "/v1/grants",
            &json!({ "company": "acme", "locations": [{ "type": "Portal::Location", "id": "acme-oslo" }] }),
        )
        .await;
    assert_eq!(
        (s, g["status"].clone(), g["from_company"].clone()),
        (201, json!("requested"), json!("globex")),
        "{g}"
    );
    let grant = g["id"].as_str().unwrap().to_owned();
    assert_eq!(may(&anon, "vera", "shipment.read", s1).await, deny(&[]));
    let (s, b) = adam
        .post(&format!("/v1/grants/{grant}/approve"), &json!({}))
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = call(&olga, "POST", &format!("/v1/grants/{grant}/approve"), None).await;
    assert_eq!(
        (s, b["status"].clone(), b["decided_by"].clone()),
        (200, json!("approved"), json!("olga")),
        "{b}"
    );
    assert_eq!(
        may(&anon, "vera", "shipment.read", s1).await,
        allow(&format!("grant:{grant}:0"))
    );
    assert_eq!(
        may(&anon, "vera", "shipment.read", "Portal::Shipment::\"acme-s2\"").await,
        deny(&[])
    );
    assert_eq!(may(&anon, "vera", "shipment.create", create).await, deny(&[]));
    let (s, b) = call(&olga, "POST", &format!("/v1/grants/{grant}/revoke"), None).await;
    assert_eq!((s, b["status"].clone()), (200, json!("revoked")), "{b}");
    assert_eq!(may(&anon, "vera", "shipment.read", s1).await, deny(&[]));

    // Deactivate, reactivate, delete.
    let (s, b) = call(&adam, "POST", "/v1/users/rita/deactivate", None).await;
    assert_eq!((s, b["active"].clone()), (200, json!(false)), "{b}");
    assert_eq!(
        may(&anon, "rita", "shipment.read", s1).await,
        deny(&["core.deactivated"])
    );
    let (s, b) = call(&adam, "POST", "/v1/users/rita/reactivate", None).await;
    assert_eq!((s, b["active"].clone()), (200, json!(true)), "{b}");
    assert_eq!(call(&adam, "DELETE", "/v1/users/adam", None).await.0, 404);
    let (s, b) = call(&adam, "DELETE", "/v1/users/rita", None).await;
    assert_eq!((s, b["deleted"]["id"].clone()), (200, json!("rita")), "{b}");
    assert_eq!(olga.get("/v1/users/rita").await.0, 404);
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_platform_runs_as_a_portal_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    shipping_platform_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_platform_runs_as_a_portal_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    shipping_platform_story(&url).await;
    drop_postgres(&url).await;
}

// ---- service-portal -------------------------------------------------------------------------

/// `session`'s `action` on record `x1` of Acme of type `ty` with `attrs`.
fn acme_record(session: &str, action: &str, ty: &str, attrs: Value) -> Value {
    json!({
        "session": session, "action": action, "resource": format!("Portal::{ty}::\"x1\""),
        "entities": [{ "uid": { "type": format!("Portal::{ty}"), "id": "x1" },
                       "parents": [{ "type": "Portal::Company", "id": "acme" }], "attrs": attrs }]
    })
}

fn totp_now(secret: &[u8], ahead: i64) -> String {
    use portcullis_server::auth::totp::{code_at, step_of};
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("{:06}", code_at(secret, step_of(now) + ahead))
}

async fn service_portal_story(db: &str) {
    let dir = folder("service-portal");
    let users = |args: &[&str]| {
        let mut all = vec!["users", "--database-url", db];
        all.extend_from_slice(args);
        run(&all)
    };
    run(&["migrate", "--database-url", db]);
    users(&["group", "standard", "--default"]);
    let mia: Value = serde_json::from_str(&users(&[
        "create",
        "--company",
        "acme",
        "--account-type",
        "customer",
        "--id",
        "mia",
        "--login",
        "mia@acme.example",
        "--role",
        "portal_user",
        "--no-key",
    ]))
    .unwrap();
    assert_eq!(mia["user"]["group"], "standard", "{mia}");
    users(&["group", "billing"]);
    users(&["default-group", "billing"]);
    let bob: Value = serde_json::from_str(&users(&[
        "create",
        "--company",
        "acme",
        "--account-type",
        "customer",
        "--id",
        "bob",
        "--login",
        "bob",
        "--role",
        "portal_user",
        "--attr",
        "require_mfa=true",
        "--no-key",
    ]))
    .unwrap();
    assert_eq!(bob["user"]["group"], "billing", "{bob}");
    assert_eq!(bob["user"]["attrs"]["require_mfa"], true, "{bob}");
    // Zeta has no portal user: its contacts sign in by the secure token link, as the
    // token-link user in the Non-Portal Users group.
    users(&["group", "non_portal", "--description", "Non-Portal Users"]);
    let link_user: Value = serde_json::from_str(&users(&[
        "create",
        "--company",
        "zeta",
        "--account-type",
        "customer",
        "--id",
        "link.zeta",
        "--login",
        "link.zeta",
        "--role",
        "token_link",
        "--group",
        "non_portal",
        "--no-key",
    ]))
    .unwrap();
    assert_eq!(link_user["user"]["group"], "non_portal", "{link_user}");
    let link: Value = serde_json::from_str(&users(&["link", "--company", "zeta"])).unwrap();
    let link_token = link["token"].as_str().unwrap().to_owned();
    assert_eq!(link["link"]["company"], "zeta", "{link}");
    set_password(db, &dir, "mia", "correct horse battery");
    set_password(db, &dir, "bob", "correct horse battery");

    let keys = tempfile::tempdir().unwrap();
    let env = sealing_key(db, &keys);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (server, _) = Proc::serve_with_env(&dir, Some(db), &[], &env);
    let anon = Http::at(server.url.clone());
    let allow = |r: &str| ("allow".to_owned(), ids(&[r]));
    let deny = |r: &[&str]| ("deny".to_owned(), ids(r));

    // Zeta's token link: a session as its token-link user; its group views invoices and
    // does not pay them.
    let (s, b) = anon.post("/v1/auth/link", &json!({ "token": link_token })).await;
    assert_eq!((s, b["user"]["id"].clone()), (200, json!("link.zeta")), "{b}");
    let z = b["token"].as_str().unwrap().to_owned();
    let zeta_invoice = |action: &str| {
        json!({ "session": z, "action": action, "resource": "Portal::Invoice::\"z1\"",
                "entities": [{ "uid": { "type": "Portal::Invoice", "id": "z1" }, "attrs": {},
                               "parents": [{ "type": "Portal::Company", "id": "zeta" }] }] })
    };
    assert_eq!(
        decide(&anon, zeta_invoice("invoice.read")).await,
        allow("feature.view_invoices.group")
    );
    assert_eq!(decide(&anon, zeta_invoice("invoice.pay")).await, deny(&[]));

    // Mia: the Standard group.
    let (s, b) = login(&anon, "mia@acme.example", "correct horse battery").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(false)), "{b}");
    let m = b["token"].as_str().unwrap().to_owned();
    assert_eq!(
        decide(&anon, acme_record(&m, "invoice.read", "Invoice", json!({}))).await,
        allow("feature.view_invoices.group")
    );
    assert_eq!(
        decide(&anon, acme_record(&m, "invoice.pay", "Invoice", json!({}))).await,
        deny(&[])
    );
    assert_eq!(
        decide(
            &anon,
            acme_record(&m, "document.read", "Document", json!({ "public": true }))
        )
        .await,
        allow("feature.documentation_public.group")
    );
    assert_eq!(
        decide(
            &anon,
            acme_record(&m, "document.read", "Document", json!({ "public": false }))
        )
        .await,
        deny(&[])
    );

    // Bob: the Billing group, MFA required.
    let (s, b) = login(&anon, "bob", "correct horse battery").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(true)), "{b}");
    let bo = b["token"].as_str().unwrap().to_owned();
    let pay = || acme_record(&bo, "invoice.pay", "Invoice", json!({}));
    assert_eq!(decide(&anon, pay()).await, deny(&["portal.mfa-required"]));
    let me = Http::at(server.url.clone()).with_key(&bo);
    let (s, e) = me.post("/v1/auth/totp/enrol", &json!({})).await;
    assert_eq!(s, 200, "{e}");
    let secret = portcullis_server::auth::totp::base32_decode(e["secret"].as_str().unwrap()).unwrap();
    let (s, b) = me
        .post("/v1/auth/totp/confirm", &json!({ "code": totp_now(&secret, 0) }))
        .await;
    assert_eq!(s, 200, "{b}");
    let recovery = b["recovery_codes"].as_array().unwrap();
    assert_eq!(recovery.len(), 10, "{b}");
    assert_eq!(decide(&anon, pay()).await, allow("feature.pay_invoices.group"));
    assert_eq!(
        decide(&anon, acme_record(&bo, "quote.read", "Quote", json!({}))).await,
        deny(&[])
    );
    let (s, b) = login(&anon, "bob", "correct horse battery").await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("mfa_required")),
        "{b}"
    );
    let (s, b) = anon
        .post(
            "/v1/auth/login",
            &json!({ "login": "bob", "password": "correct horse battery", "code": recovery[0] }),
        )
        .await;
    assert_eq!((s, b["session"]["mfa"].clone()), (200, json!(true)), "{b}");
    // The next step's code works too (each code once).
    let (s, b) = anon
        .post(
            "/v1/auth/login",
            &json!({ "login": "bob", "password": "correct horse battery", "code": totp_now(&secret, 1) }),
        )
        .await;
    assert_eq!((s, b["session"]["mfa"].clone()), (200, json!(true)), "{b}");

    // Password resets: email logins only.
    let reset = json!({ "session": m, "action": "user.password_reset", "resource": user("mia") });
    assert_eq!(decide(&anon, reset).await, allow("portal.self-password-reset"));
    let reset = json!({ "principal": user("bob"), "action": "user.password_reset", "resource": user("bob"),
                        "context": { "mfa_verified": false } });
    assert_eq!(
        decide(&anon, reset).await,
        deny(&["portal.password-reset-email-login"])
    );
    let (s, b) = anon
        .post("/v1/auth/password-reset", &json!({ "login": "bob" }))
        .await;
    assert_eq!((s, b["status"].clone()), (202, json!("accepted")), "{b}");

    // A portal user manages nobody: it sees no user and creates none.
    let mia_http = Http::at(server.url.clone()).with_key(&m);
    let (s, b) = mia_http.get("/v1/users").await;
    assert_eq!((s, b), (200, json!({ "users": [], "next": null })));
    forbidden(
        mia_http
            .post("/v1/users", &json!({ "login": "x", "role": "portal_user" }))
            .await,
        "is not enabled by this policy folder",
    );

    // The field-service company's office: its admin invites a portal user into Zeta with the
    // Billing group and MFA; once she has accepted, Zeta's token link no longer signs in.
    let olive: Value = serde_json::from_str(&users(&[
        "create",
        "--company",
        "office",
        "--account-type",
        "provider",
        "--id",
        "olive",
        "--login",
        "olive@office.example",
        "--role",
        "admin",
    ]))
    .unwrap();
    let office = Http::at(server.url.clone()).with_key(olive["api_key"].as_str().unwrap());
    let invite = |email: &str, role: &str| json!({ "company": "zeta", "email": email, "role": role, "group": "billing" });
    let (s, inv) = office
        .post("/v1/invitations", &invite("zoe@zeta.example", "portal_user"))
        .await;
    assert_eq!(s, 201, "{inv}");
    assert_eq!(
        (&inv["invitation"]["company"], &inv["invitation"]["group"]),
        (&json!("zeta"), &json!("billing")),
        "{inv}"
    );
    // Only portal users, and only by the office.
    forbidden(
        office
            .post("/v1/invitations", &invite("zed@zeta.example", "token_link"))
            .await,
        "no policy permits it",
    );
    forbidden(
        mia_http
            .post("/v1/invitations", &invite("zed@zeta.example", "portal_user"))
            .await,
        "no policy permits it",
    );
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": inv["token"], "user_id": "zoe", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (&b["company"], &b["role"], &b["group"]),
        (&json!("zeta"), &json!("portal_user"), &json!("billing")),
        "{b}"
    );
    let (s, b) = anon.post("/v1/auth/link", &json!({ "token": link_token })).await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("link_superseded")),
        "{b}"
    );
    let (s, b) = login(&anon, "zoe@zeta.example", "correct horse battery").await;
    assert_eq!(s, 200, "{b}");
    let zoe = b["token"].as_str().unwrap().to_owned();
    let zoe_invoice = |action: &str| {
        json!({ "session": zoe, "action": action, "resource": "Portal::Invoice::\"z1\"",
                "entities": [{ "uid": { "type": "Portal::Invoice", "id": "z1" }, "attrs": {},
                               "parents": [{ "type": "Portal::Company", "id": "zeta" }] }] })
    };
    assert_eq!(
        decide(&anon, zoe_invoice("invoice.pay")).await,
        allow("feature.pay_invoices.group")
    );
    // Her group and her MFA, changed by the office.
    let (s, b) = call(
        &office,
        "PATCH",
        "/v1/users/zoe",
        Some(json!({ "group": "standard" })),
    )
    .await;
    assert_eq!((s, b["group"].clone()), (200, json!("standard")), "{b}");
    let (s, b) = call(
        &office,
        "PATCH",
        "/v1/users/zoe",
        Some(json!({ "attrs": { "require_mfa": true } })),
    )
    .await;
    assert_eq!((s, b["attrs"]["require_mfa"].clone()), (200, json!(true)), "{b}");
    assert_eq!(
        decide(&anon, zoe_invoice("invoice.read")).await,
        deny(&["portal.mfa-required"])
    );

    // The permission groups: roles.toml's are their first definition (the Non-Portal Users
    // group, made on the command line without features, was defined from the folder at
    // start); the office edits them and picks the default, and what the group holds is
    // what its stored features say.
    let (s, b) = office.get("/v1/groups").await;
    assert_eq!(s, 200, "{b}");
    let group = |b: &Value, name: &str| {
        b["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        group(&b, "non_portal")["features"],
        json!(["view_invoices", "view_jobs", "documentation_public"]),
        "{b}"
    );
    // Yard, a customer without portal users, signs in by its token link.
    users(&[
        "create",
        "--company",
        "yard",
        "--account-type",
        "customer",
        "--id",
        "link.yard",
        "--login",
        "link.yard",
        "--role",
        "token_link",
        "--group",
        "non_portal",
        "--no-key",
    ]);
    let public_doc = json!({ "principal": user("link.yard"), "action": "document.read",
                             "resource": "Portal::Document::\"yd\"", "context": { "mfa_verified": false },
                             "entities": [{ "uid": { "type": "Portal::Document", "id": "yd" }, "attrs": { "public": true },
                                            "parents": [{ "type": "Portal::Company", "id": "yard" }] }] });
    assert_eq!(
        decide(&anon, public_doc.clone()).await,
        allow("feature.documentation_public.group")
    );
    // A portal user edits no group; the office turns "Documentation - View Public" off for
    // Non-Portal Users (decided on its own company and on Zeta and Yard, whose token links are
    // in it).
    let off = json!({ "features": ["view_invoices", "view_jobs"] });
    forbidden(
        call(&mia_http, "PATCH", "/v1/groups/non_portal", Some(off.clone())).await,
        "no policy permits it",
    );
    let (s, b) = call(&office, "PATCH", "/v1/groups/non_portal", Some(off)).await;
    assert_eq!(
        (s, b["features"].clone()),
        (200, json!(["view_invoices", "view_jobs"])),
        "{b}"
    );
    assert_eq!(decide(&anon, public_doc).await, deny(&[]));
    let (s, b) = call(
        &office,
        "PUT",
        "/v1/groups/default",
        Some(json!({ "name": "standard" })),
    )
    .await;
    assert_eq!((s, b["default"].clone()), (200, json!("standard")), "{b}");
    let (_, b) = office.get("/v1/groups").await;
    assert_eq!(group(&b, "standard")["is_default"], true, "{b}");
    assert_eq!(group(&b, "billing")["is_default"], false, "{b}");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_portal_runs_as_a_portal_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    service_portal_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_portal_runs_as_a_portal_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    service_portal_story(&url).await;
    drop_postgres(&url).await;
}

// ---- forwarding-portal ----------------------------------------------------------------------

/// `session`'s `action` on record `id` of type `ty` of `company`, with `attrs`.
fn record_of(session: &str, action: &str, ty: &str, id: &str, company: &str, attrs: Value) -> Value {
    json!({
        "session": session, "action": action, "resource": format!("Portal::{ty}::\"{id}\""),
        "entities": [{ "uid": { "type": format!("Portal::{ty}"), "id": id },
                       "parents": [{ "type": "Portal::Company", "id": company }], "attrs": attrs }]
    })
}

async fn forwarding_portal_story(db: &str) {
    let dir = folder("forwarding-portal");
    let users = |args: &[&str]| -> Value {
        let mut all = vec!["users", "--database-url", db];
        all.extend_from_slice(args);
        serde_json::from_str(&run(&all)).unwrap_or(Value::Null)
    };
    run(&["migrate", "--database-url", db]);
    users(&[
        "company",
        "consol",
        "--account-type",
        "consolidated",
        "--name",
        "Nordic Consolidation",
    ]);
    let beta = users(&[
        "company",
        "beta",
        "--account-type",
        "customer",
        "--parent",
        "consol",
    ]);
    assert_eq!(beta["parent"], "consol", "{beta}");
    let cody = users(&[
        "create",
        "--company",
        "acme",
        "--account-type",
        "customer",
        "--id",
        "cody",
        "--login",
        "cody",
        "--role",
        "portal_login",
        "--no-key",
    ]);
    assert_eq!(cody["user"]["group"], Value::Null, "{cody}");
    users(&["group", "customer_portal", "--default"]);
    let bob = users(&[
        "create",
        "--company",
        "acme",
        "--id",
        "bob",
        "--login",
        "bob",
        "--role",
        "portal_login",
        "--no-key",
    ]);
    assert_eq!(bob["user"]["group"], "customer_portal", "{bob}");
    users(&[
        "create",
        "--company",
        "consol",
        "--id",
        "carol",
        "--login",
        "carol",
        "--role",
        "portal_login",
        "--no-key",
    ]);
    for u in ["bob", "carol", "cody"] {
        set_password(db, &dir, u, "correct horse battery");
    }

    let (server, _) = Proc::serve(&dir, Some(db), &[]);
    let anon = Http::at(server.url.clone());
    let mut tokens = Vec::new();
    for u in ["bob", "carol", "cody"] {
        let (s, b) = login(&anon, u, "correct horse battery").await;
        assert_eq!((s, b["session"]["user"].clone()), (200, json!(u)), "{b}");
        tokens.push(b["token"].as_str().unwrap().to_owned());
    }
    let (bob, carol, cody) = (&tokens[0], &tokens[1], &tokens[2]);
    let allow = |r: &str| ("allow".to_owned(), ids(&[r]));
    let deny = |r: &[&str]| ("deny".to_owned(), ids(r));
    let order = |s: &str, company: &str| record_of(s, "order.read", "Order", "o1", company, json!({}));

    // Orders of one's own customer only, and only with the role group.
    assert_eq!(
        decide(&anon, order(bob, "acme")).await,
        allow("feature.orders.group")
    );
    assert_eq!(decide(&anon, order(bob, "beta")).await, deny(&[]));
    assert_eq!(decide(&anon, order(cody, "acme")).await, deny(&[]));
    assert_eq!(decide(&anon, order(carol, "acme")).await, deny(&[]));
    // A consolidated login reads the orders of the customers it consolidates: the order names
    // only `beta`; that `beta` is below `consol` comes from the store, not from the request.
    assert_eq!(
        decide(&anon, order(carol, "beta")).await,
        allow("feature.orders.group")
    );

    // Customer files and customer flags, never tasks.
    let file = |id: &str, customer_file: bool| {
        record_of(
            bob,
            "file.download",
            "File",
            id,
            "acme",
            json!({ "file_type": "x", "customer_file": customer_file }),
        )
    };
    assert_eq!(
        decide(&anon, file("f1", true)).await,
        allow("feature.files.group")
    );
    assert_eq!(
        decide(&anon, file("f2", false)).await,
        deny(&["portal.customer-files-only"])
    );
    let flag = |id: &str, customer_flag: bool| {
        record_of(
            bob,
            "flag.read",
            "Flag",
            id,
            "acme",
            json!({ "name": "x", "customer_flag": customer_flag }),
        )
    };
    assert_eq!(
        decide(&anon, flag("g1", true)).await,
        allow("feature.flags.group")
    );
    assert_eq!(
        decide(&anon, flag("g2", false)).await,
        deny(&["portal.customer-flags-only"])
    );
    assert_eq!(
        decide(
            &anon,
            record_of(bob, "task.read", "Task", "t1", "acme", json!({}))
        )
        .await,
        deny(&[])
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_portal_runs_as_a_portal_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    forwarding_portal_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_portal_runs_as_a_portal_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    forwarding_portal_story(&url).await;
    drop_postgres(&url).await;
}
