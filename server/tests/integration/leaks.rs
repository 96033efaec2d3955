//! Regression tests of issue 13's escalation 3 and leaks 6 and 7, one per leak, over real
//! HTTP against `policies/` with a SQLite store: the customer switch takes an id only; a
//! deactivated caller is refused everywhere; every list is filtered by its read action; an
//! unreadable id answers as a missing one; request bodies are JSON only; `Host` is checked;
//! a conflicting invitation acceptance spends the token; one live reset link per login; a
//! reset revokes the keys its sessions made; wrong codes at `totp/disable` lock; the store
//! files are private.

use std::time::Duration;

use portcullis_store::{Audit, NewCompany, NewGroup, NewUser};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Http;
use crate::manage::{company, sqlite_env, user_with_key};
use crate::signin::{env, env_with, login, token, user_with_password, wait_for_links, PASSWORD};

/// One raw HTTP/1.1 request (`head` is the request line and headers), for what the JSON
/// client always sets: the content type and the host.
async fn raw(server: &portcullis_server::Server, head: &str, body: &[u8]) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn code(b: &Value) -> Option<&str> {
    b["error"]["code"].as_str()
}

/// Escalation 3: `POST /v1/auth/switch` took a customer profile (and the caller remade as
/// its admin) from the body. It now takes an id; the profile is the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_takes_an_id_never_a_profile() {
    let profile = json!({ "uid": { "type": "Portal::CustomerProfile", "id": "p1" }, "attrs": {},
                          "parents": [{ "type": "Portal::Company", "id": "freightco" }] });
    let (_fx, server, store) = env_with(false, vec![profile]).await;
    company(&*store, "freightco", "forwarder", None).await;
    let mut attrs = serde_json::Map::new();
    attrs.insert("all_customers".to_owned(), json!(true));
    store
        .create_user(
            NewUser {
                id: Some("lena".to_owned()),
                company: "freightco".to_owned(),
                login: "lena@freightco.example".to_owned(),
                email: Some("lena@freightco.example".to_owned()),
                role: "operator".to_owned(),
                attrs,
                ..NewUser::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    let phc = server
        .state
        .manage
        .get()
        .unwrap()
        .auth
        .hasher
        .hash(zeroize::Zeroizing::new(PASSWORD.to_owned()))
        .await
        .unwrap();
    store
        .set_password_hash("lena", Some(phc), &Audit::system())
        .await
        .unwrap();
    let anon = Http::new(&server);
    let (_, b) = login(&anon, "lena@freightco.example", PASSWORD, None).await;
    let me = Http::new(&server).with_key(&token(&b));

    // The attack: another tenant's profile, and the caller remade as that tenant's admin.
    let attack = json!({ "customer": "x", "entities": [
        { "uid": { "type": "Portal::CustomerProfile", "id": "x" }, "attrs": {},
          "parents": [{ "type": "Portal::Company", "id": "acme" }] },
        { "uid": { "type": "Portal::User", "id": "lena" }, "attrs": {},
          "parents": [{ "type": "Portal::Company", "id": "acme" }, { "type": "Portal::Role", "id": "admin" }] }
    ] });
    let (s, b) = me.post("/v1/auth/switch", &attack).await;
    assert_eq!((s, code(&b)), (400, Some("invalid_body")), "{b}");
    // A profile the server does not hold cannot be switched to.
    let (s, b) = me.post("/v1/auth/switch", &json!({ "customer": "x" })).await;
    assert_eq!((s, code(&b)), (404, Some("not_found")), "{b}");
    // One it holds, of the caller's own company, can.
    let (s, b) = me.post("/v1/auth/switch", &json!({ "customer": "p1" })).await;
    assert_eq!((s, b["switched_to"].as_str()), (200, Some("p1")), "{b}");
}

/// Leak 6: a deactivated user's API key answered 200 on every list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_caller_is_refused_everywhere() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    let owner = Http::new(&env.server).with_key(&user_with_key(store, "own1", "acme", "owner", true).await);
    let gone = Http::new(&env.server).with_key(&user_with_key(store, "reg1", "acme", "regular", true).await);
    assert_eq!(gone.get("/v1/users").await.0, 200);
    let (s, b) = owner.post("/v1/users/reg1/deactivate", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    for path in [
        "/v1/users",
        "/v1/users/reg1",
        "/v1/invitations",
        "/v1/companies",
        "/v1/companies/acme",
        "/v1/groups",
        "/v1/grants",
    ] {
        let (s, b) = gone.get(path).await;
        assert_eq!((s, code(&b)), (401, Some("unauthorized")), "{path}: {b}");
    }
}

/// Leak 6 and "What to build" 3: every list is filtered row by row by its read action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_is_filtered_by_its_read_action() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    company(store, "beta", "customer", None).await;
    company(store, "gamma", "customer", None).await;
    store
        .create_company(
            NewCompany {
                id: "acme-north".to_owned(),
                name: "acme-north".to_owned(),
                account_type: "customer".to_owned(),
                parent: Some("acme".to_owned()),
                ..NewCompany::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    store
        .create_group(
            NewGroup {
                name: "drivers".to_owned(),
                ..NewGroup::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    let http = |k: String| Http::new(&env.server).with_key(&k);
    let owner = http(user_with_key(store, "own1", "acme", "owner", true).await);
    let regular = http(user_with_key(store, "reg1", "acme", "regular", true).await);
    user_with_key(store, "reg2", "acme", "regular", true).await;
    let beta = http(user_with_key(store, "bown", "beta", "owner", true).await);
    let gamma = http(user_with_key(store, "gown", "gamma", "owner", true).await);
    let ids = |b: &Value, list: &str| -> Vec<String> {
        let mut v: Vec<String> = b[list]
            .as_array()
            .unwrap_or_else(|| panic!("no `{list}` in {b}"))
            .iter()
            .map(|r| r["id"].as_str().or(r["name"].as_str()).unwrap().to_owned())
            .collect();
        v.sort();
        v
    };

    // Users: a Regular user reads itself only (`user.read` on every other row is denied).
    let (_, b) = regular.get("/v1/users").await;
    assert_eq!(ids(&b, "users"), ["reg1"], "{b}");
    let (_, b) = owner.get("/v1/users").await;
    assert_eq!(ids(&b, "users"), ["own1", "reg1", "reg2"], "{b}");
    let (s, b) = owner.get("/v1/users?company=beta").await;
    assert_eq!((s, ids(&b, "users").len()), (200, 0), "{b}");

    // Invitations: read as the users they would make.
    let (s, b) = owner
        .post(
            "/v1/invitations",
            &json!({ "email": "new@acme.example", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (_, b) = owner.get("/v1/invitations").await;
    assert_eq!(b["invitations"].as_array().unwrap().len(), 1, "{b}");
    let (_, b) = regular.get("/v1/invitations").await;
    assert_eq!(b["invitations"].as_array().unwrap().len(), 0, "{b}");

    // Companies: everyone its own; the Owner also the sub-companies.
    let (_, b) = owner.get("/v1/companies").await;
    assert_eq!(ids(&b, "companies"), ["acme", "acme-north"], "{b}");
    let (_, b) = regular.get("/v1/companies").await;
    assert_eq!(ids(&b, "companies"), ["acme"], "{b}");

    // Groups: those who put users in them.
    let (_, b) = owner.get("/v1/groups").await;
    assert_eq!(ids(&b, "groups"), ["drivers"], "{b}");
    let (_, b) = regular.get("/v1/groups").await;
    assert_eq!(ids(&b, "groups").len(), 0, "{b}");

    // Grants: the data owner's Owner and the requesting company, nobody else.
    let (s, b) = regular.post("/v1/grants", &json!({ "company": "beta" })).await;
    assert_eq!(s, 201, "{b}");
    let (_, b) = beta.get("/v1/grants?company=beta").await;
    assert_eq!(b["grants"].as_array().unwrap().len(), 1, "{b}");
    let (_, b) = regular.get("/v1/grants").await;
    assert_eq!(b["grants"].as_array().unwrap().len(), 1, "{b}");
    let (s, b) = gamma.get("/v1/grants?company=beta").await;
    assert_eq!((s, b["grants"].as_array().unwrap().len()), (200, 0), "{b}");
}

/// Leak 7: 403 for an id of another tenant and 404 for a missing one told them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_id_answers_as_a_missing_one() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    company(store, "beta", "customer", None).await;
    let owner = Http::new(&env.server).with_key(&user_with_key(store, "own1", "acme", "owner", true).await);
    user_with_key(store, "bown", "beta", "owner", true).await;
    let same = |(s1, b1): (u16, Value), (s2, b2): (u16, Value), a: &str, b: &str| {
        assert_eq!(s1, 404, "{b1}");
        assert_eq!(s2, 404, "{b2}");
        // The bodies differ only by the id they name.
        assert_eq!(b1.to_string().replace(a, "ID"), b2.to_string().replace(b, "ID"));
    };
    same(
        owner.get("/v1/users/bown").await,
        owner.get("/v1/users/nobody").await,
        "bown",
        "nobody",
    );
    let patch = |id: &str| {
        let owner = owner.clone();
        let path = format!("/v1/users/{id}");
        async move {
            owner
                .send(
                    "PATCH",
                    &path,
                    serde_json::to_vec(&json!({ "name": "x" })).unwrap(),
                )
                .await
        }
    };
    same(patch("bown").await, patch("nobody").await, "bown", "nobody");
    same(
        owner.post("/v1/users/bown/deactivate", &json!({})).await,
        owner.post("/v1/users/nobody/deactivate", &json!({})).await,
        "bown",
        "nobody",
    );
    same(
        owner.get("/v1/companies/beta").await,
        owner.get("/v1/companies/nowhere").await,
        "beta",
        "nowhere",
    );
    let (s, b) = owner.get("/v1/users/own1").await;
    assert_eq!(s, 200, "{b}");
}

/// Leak 7: `text/plain` and form bodies were accepted, so a web page could post to a
/// server on loopback without asking first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_json_only() {
    let env = sqlite_env().await;
    let body = serde_json::to_vec(&crate::common::olivia_creates()).unwrap();
    let host = format!("Host: {}", env.server.addr);
    for ty in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (s, b) = raw(
            &env.server,
            &format!("POST /v1/authorize HTTP/1.1\r\n{host}\r\nContent-Type: {ty}"),
            &body,
        )
        .await;
        assert_eq!((s, code(&b)), (415, Some("unsupported_media_type")), "{ty}: {b}");
    }
    let (s, b) = raw(
        &env.server,
        &format!("POST /v1/authorize HTTP/1.1\r\n{host}"),
        &body,
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (415, Some("unsupported_media_type")),
        "untyped: {b}"
    );
    let (s, b) = raw(
        &env.server,
        &format!("POST /v1/authorize HTTP/1.1\r\n{host}\r\nContent-Type: application/json; charset=utf-8"),
        &body,
    )
    .await;
    assert_ne!(s, 415, "{b}");
}

/// Leak 7: any `Host` was answered, so DNS rebinding could read a server on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_hosts_are_answered() {
    let env = sqlite_env().await;
    let port = env.server.addr.port();
    for host in [format!("rebound.example:{port}"), "evil.example".to_owned()] {
        let (s, b) = raw(
            &env.server,
            &format!("GET /v1/policy HTTP/1.1\r\nHost: {host}"),
            b"",
        )
        .await;
        assert_eq!((s, code(&b)), (421, Some("host_not_allowed")), "{host}: {b}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (s, b) = raw(
            &env.server,
            &format!("GET /v1/policy HTTP/1.1\r\nHost: {host}"),
            b"",
        )
        .await;
        assert_eq!(s, 200, "{host}: {b}");
    }
}

/// Leak 7: an acceptance answering 409 kept the token usable: an oracle of existing logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_acceptance_spends_the_invitation() {
    let env = sqlite_env().await;
    let store = &*env.store;
    company(store, "acme", "customer", None).await;
    let owner = Http::new(&env.server).with_key(&user_with_key(store, "own1", "acme", "owner", true).await);
    user_with_key(store, "reg1", "acme", "regular", true).await;
    let (s, b) = owner
        .post(
            "/v1/invitations",
            &json!({ "email": "probe@acme.example", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let t = b["token"].as_str().unwrap().to_owned();
    let anon = Http::new(&env.server);
    let (s, b) = anon
        .post("/v1/invitations/accept", &json!({ "token": t, "login": "reg1" }))
        .await;
    assert_eq!((s, code(&b)), (409, Some("login_taken")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("closed"), "{b}");
    // The second probe learns nothing: the token is spent.
    for login in ["reg2", "reg1"] {
        let (s, b) = anon
            .post("/v1/invitations/accept", &json!({ "token": t, "login": login }))
            .await;
        assert_eq!((s, code(&b)), (400, Some("invalid")), "{login}: {b}");
    }
}

/// Leak 7: 30 reset requests sent 30 mails; a reset left the API keys a session made working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_live_reset_link_and_a_reset_revokes_session_keys() {
    let (fx, server, store) = env(false).await;
    user_with_password(&server, &*store, "olivia", "owner").await;
    user_with_password(&server, &*store, "sentinel", "regular").await;
    let anon = Http::new(&server);
    let (_, b) = login(&anon, "olivia@acme.example", PASSWORD, None).await;
    let session = Http::new(&server).with_key(&token(&b));
    let (s, b) = session
        .post(
            "/v1/users/olivia/api-keys",
            &json!({ "name": "made in a session" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let key = Http::new(&server).with_key(b["key"].as_str().unwrap());
    assert_eq!(key.get("/v1/users/olivia").await.0, 200);

    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(
            anon.post(
                "/v1/auth/password-reset",
                &json!({ "login": "olivia@acme.example" }),
            )
            .await,
        );
    }
    assert!(
        answers.iter().all(|a| *a == answers[0] && a.0 == 202),
        "{answers:?}"
    );
    // The queue is worked in order: once the sentinel's link is out, olivia's are handled.
    anon.post(
        "/v1/auth/password-reset",
        &json!({ "login": "sentinel@acme.example" }),
    )
    .await;
    let outbox = fx.dir.path().join("outbox");
    let links = wait_for_links(&outbox, 2).await;
    let mine: Vec<&Value> = links.iter().filter(|l| l["user"] == "olivia").collect();
    assert_eq!(mine.len(), 1, "one live link per login: {links:?}");

    let (s, b) = anon
        .post(
            "/v1/auth/password-reset/confirm",
            &json!({ "token": mine[0]["token"], "password": "violet harbour lantern" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(session.get("/v1/auth/session").await.0, 401, "the session ended");
    let (s, b) = key.get("/v1/users/olivia").await;
    assert_eq!(
        (s, code(&b)),
        (401, Some("unauthorized")),
        "the session's key went with it: {b}"
    );
}

/// Leak 7: wrong codes at `POST /v1/auth/totp/disable` were not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_at_totp_disable_lock_the_user() {
    let (_fx, server, store) = env(false).await;
    user_with_password(&server, &*store, "olivia", "owner").await;
    let anon = Http::new(&server);
    let (_, b) = login(&anon, "olivia@acme.example", PASSWORD, None).await;
    let me = Http::new(&server).with_key(&token(&b));
    for i in 0..5 {
        let (s, b) = me
            .post(
                "/v1/auth/totp/disable",
                &json!({ "password": PASSWORD, "code": format!("00000{i}") }),
            )
            .await;
        assert_eq!((s, code(&b)), (401, Some("invalid_credentials")), "{b}");
    }
    let (s, b) = login(&anon, "olivia@acme.example", PASSWORD, None).await;
    assert_eq!(s, 401, "five wrong codes lock like five wrong passwords: {b}");
}

/// Leak 7: the SQLite files (password hashes, the sealing key) were created 0644.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = sqlite_env().await;
    let db = std::path::PathBuf::from(crate::manage::sqlite_url(&env._fx));
    let key = std::path::PathBuf::from(format!("{}.key", db.display()));
    for f in [db, key] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
}
