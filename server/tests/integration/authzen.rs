//! The AuthZEN protocol points: request ids, `WWW-Authenticate`, metadata from configuration,
//! unknown context and property keys ignored (and listed), properties as attributes with the
//! server's own entities taking precedence, and the search API's pages.

use std::path::Path;

use portcullis_server::Config;
use serde_json::{json, Value};

use crate::common::{start, Http};

const SCHEMA: &str = r#"namespace Docs {
  entity Team;
  entity User in [Team] = { department?: String, level?: Long };
  entity Doc = { owner?: String, public?: Bool };
  action read appliesTo { principal: User, resource: Doc, context: { channel?: String } };
  action edit appliesTo { principal: User, resource: Doc, context: {} };
  action archive appliesTo { principal: User, resource: Doc, context: {} };
}
"#;

const POLICIES: &str = r#"@id("public-read")
permit (principal, action == Docs::Action::"read", resource)
when { resource has public && resource.public };

@id("department-owns")
permit (principal, action in [Docs::Action::"read", Docs::Action::"edit"], resource)
when { principal has department && resource has owner && resource.owner == principal.department };

@id("no-edit-over-web")
forbid (principal, action == Docs::Action::"read", resource)
when { context has channel && context.channel == "blocked" };

@id("seniors-archive")
permit (principal, action == Docs::Action::"archive", resource)
when { principal has level && principal.level >= 3 };
"#;

/// Held: users `ann` (sales, level 1) and `bob` (ops, level 5); docs `d1` (sales), `d2`
/// (public), `d3` (ops), and `d4`...`d9` owned by sales.
fn entities() -> Value {
    let mut v = vec![
        json!({ "uid": { "type": "Docs::User", "id": "ann" }, "attrs": { "department": "sales", "level": 1 }, "parents": [] }),
        json!({ "uid": { "type": "Docs::User", "id": "bob" }, "attrs": { "department": "ops", "level": 5 }, "parents": [] }),
        json!({ "uid": { "type": "Docs::Doc", "id": "d1" }, "attrs": { "owner": "sales" }, "parents": [] }),
        json!({ "uid": { "type": "Docs::Doc", "id": "d2" }, "attrs": { "public": true }, "parents": [] }),
        json!({ "uid": { "type": "Docs::Doc", "id": "d3" }, "attrs": { "owner": "ops" }, "parents": [] }),
    ];
    for i in 4..10 {
        v.push(json!({ "uid": { "type": "Docs::Doc", "id": format!("d{i}") }, "attrs": { "owner": "sales" }, "parents": [] }));
    }
    Value::Array(v)
}

fn folder(dir: &Path) -> Config {
    let p = dir.join("policies");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(p.join("docs.cedar"), POLICIES).unwrap();
    std::fs::write(dir.join("entities.json"), entities().to_string()).unwrap();
    let mut c = Config::new(&p);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.entities = Some(dir.join("entities.json"));
    c
}

fn eval(subject: Value, action: &str, resource: Value, context: Value) -> Value {
    json!({ "subject": subject, "action": { "name": action }, "resource": resource, "context": context })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_made_and_401_names_its_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = folder(dir.path());
    c.api_key = Some(portcullis_server::config::Secret::new(
        "0123456789abcdef-key".to_owned(),
    ));
    let server = start(c).await;
    let body = serde_json::to_vec(&eval(
        json!({ "type": "User", "id": "ann" }),
        "read",
        json!({ "type": "Doc", "id": "d1" }),
        json!({}),
    ))
    .unwrap();
    let anonymous = Http::new(&server);
    let (status, headers, text) = anonymous
        .with_headers(
            "POST",
            "/access/v1/evaluation",
            body.clone(),
            &[("x-request-id", "req-42")],
        )
        .await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"portcullis\"");
    assert_eq!(headers["x-request-id"], "req-42", "a 401 echoes the id too");

    let http = Http::new(&server).with_key("0123456789abcdef-key");
    let (status, headers, text) = http
        .with_headers(
            "POST",
            "/access/v1/evaluation",
            body.clone(),
            &[("x-request-id", "req-43")],
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-request-id"], "req-43");
    // Without one, each response gets a new UUID.
    let (_, h1, _) = http
        .with_headers("POST", "/access/v1/evaluation", body.clone(), &[])
        .await;
    let (_, h2, _) = http.with_headers("GET", "/no/such/route", Vec::new(), &[]).await;
    let (a, b) = (
        h1["x-request-id"].to_str().unwrap(),
        h2["x-request-id"].to_str().unwrap(),
    );
    assert_ne!(a, b);
    for id in [a, b] {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_comes_from_configuration_never_from_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = folder(dir.path());
    c.allowed_hosts = vec!["*".to_owned()];
    let server = start(c).await;
    let http = Http::new(&server);
    let (_, _, text) = http
        .with_headers(
            "GET",
            "/.well-known/authzen-configuration",
            Vec::new(),
            &[("host", "evil.example")],
        )
        .await;
    let meta: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(meta["policy_decision_point"], server.url(), "{meta}");
    assert!(!text.contains("evil.example"), "{text}");
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(meta[key], format!("{}{path}", server.url()), "{key}");
    }
    server.shutdown().await;

    let mut c = folder(dir.path());
    c.public_url = Some("https://authz.example.com/".to_owned());
    let server = start(c).await;
    let (_, meta) = Http::new(&server).get("/.well-known/authzen-configuration").await;
    assert_eq!(meta["policy_decision_point"], "https://authz.example.com");
    assert_eq!(
        meta["search_action_endpoint"],
        "https://authz.example.com/access/v1/search/action"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_ignored_and_listed_and_held_entities_win() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(folder(dir.path())).await;
    let http = Http::new(&server);
    let post = |body: Value| {
        let http = http.clone();
        async move {
            let (status, out) = http.post("/access/v1/evaluation", &body).await;
            assert_eq!(status, 200, "{body} -> {out}");
            out
        }
    };

    // The specification's own example context key: ignored, listed, decided without it.
    let out = post(eval(
        json!({ "type": "User", "id": "ann" }),
        "read",
        json!({ "type": "Doc", "id": "d1" }),
        json!({ "time": "1985-10-26T01:22-07:00", "channel": "web" }),
    ))
    .await;
    assert_eq!(out["decision"], true, "{out}");
    assert_eq!(out["context"]["ignored"]["context"], json!(["time"]), "{out}");
    // A declared key still counts.
    let out = post(eval(
        json!({ "type": "User", "id": "ann" }),
        "read",
        json!({ "type": "Doc", "id": "d1" }),
        json!({ "channel": "blocked" }),
    ))
    .await;
    assert_eq!(out["decision"], false, "{out}");
    assert!(out["context"].get("ignored").is_none(), "{out}");

    // Properties describe a resource the server does not hold: declared keys become its
    // attributes, the rest are listed.
    let out = post(eval(
        json!({ "type": "User", "id": "ann" }),
        "edit",
        json!({ "type": "Doc", "id": "new-doc", "properties": { "owner": "sales", "colour": "red" } }),
        json!({}),
    ))
    .await;
    assert_eq!(out["decision"], true, "{out}");
    assert_eq!(
        out["context"]["ignored"]["resource.properties"],
        json!(["colour"])
    );
    let out = post(eval(
        json!({ "type": "User", "id": "ann" }),
        "edit",
        json!({ "type": "Doc", "id": "new-doc", "properties": { "owner": "ops" } }),
        json!({}),
    ))
    .await;
    assert_eq!(out["decision"], false, "{out}");

    // A held resource is the server's: a client's properties cannot make ann its owner.
    let out = post(eval(
        json!({ "type": "User", "id": "ann" }),
        "edit",
        json!({ "type": "Doc", "id": "d3", "properties": { "owner": "sales" } }),
        json!({}),
    ))
    .await;
    assert_eq!(out["decision"], false, "{out}");
    assert_eq!(out["context"]["ignored"]["resource.properties"], json!(["owner"]));
    // Nor can properties raise a held subject's level.
    let out = post(eval(
        json!({ "type": "User", "id": "ann", "properties": { "level": 9 } }),
        "archive",
        json!({ "type": "Doc", "id": "d1" }),
        json!({}),
    ))
    .await;
    assert_eq!(out["decision"], false, "{out}");
    assert_eq!(out["context"]["ignored"]["subject.properties"], json!(["level"]));
    // An unknown subject described by properties decides on them, typed by the schema.
    let out = post(eval(
        json!({ "type": "User", "id": "carol", "properties": { "level": 4 } }),
        "archive",
        json!({ "type": "Doc", "id": "d1" }),
        json!({}),
    ))
    .await;
    assert_eq!(out["decision"], true, "{out}");
    // A property of the wrong type is a clear 400, not a silent deny.
    let (status, out) = http
        .post(
            "/access/v1/evaluation",
            &eval(
                json!({ "type": "User", "id": "carol", "properties": { "level": "four" } }),
                "archive",
                json!({ "type": "Doc", "id": "d1" }),
                json!({}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["error"]["code"], "invalid_properties", "{out}");
    let message = out["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("subject.properties") && message.contains("level"),
        "{out}"
    );
    // Action properties: a Cedar action has no attributes.
    let mut body = eval(
        json!({ "type": "User", "id": "ann" }),
        "read",
        json!({ "type": "Doc", "id": "d1" }),
        json!({}),
    );
    body["action"]["properties"] = json!({ "method": "GET" });
    let out = post(body).await;
    assert_eq!(out["context"]["ignored"]["action.properties"], json!(["method"]));
    server.shutdown().await;
}

async fn all_pages(http: &Http, path: &str, mut body: Value, limit: usize) -> (Vec<Value>, usize) {
    let mut results = Vec::new();
    let mut pages = 0;
    loop {
        body["page"]["limit"] = json!(limit);
        let (status, out) = http.post(path, &body).await;
        assert_eq!(status, 200, "{body} -> {out}");
        pages += 1;
        let page = out["results"].as_array().unwrap();
        assert!(page.len() <= limit, "{out}");
        results.extend(page.iter().cloned());
        let next = out["page"]["next_token"].as_str().unwrap().to_owned();
        if next.is_empty() {
            return (results, pages);
        }
        body["page"]["token"] = json!(next);
        assert!(pages < 100, "pages never end");
    }
}

/// Every search result is a candidate whose evaluation allows, and every allowed candidate is
/// a result: checked against `/access/v1/evaluation` for each candidate, over several page
/// sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_answer_exactly_what_evaluations_allow() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(folder(dir.path())).await;
    let http = Http::new(&server);
    let docs: Vec<String> = (1..10).map(|i| format!("d{i}")).collect();
    for (user, action) in [
        ("ann", "read"),
        ("ann", "edit"),
        ("bob", "read"),
        ("bob", "archive"),
    ] {
        let mut expected = Vec::new();
        for d in &docs {
            let (_, out) = http
                .post(
                    "/access/v1/evaluation",
                    &eval(
                        json!({ "type": "User", "id": user }),
                        action,
                        json!({ "type": "Doc", "id": d }),
                        json!({}),
                    ),
                )
                .await;
            if out["decision"] == true {
                expected.push(json!({ "type": "Doc", "id": d }));
            }
        }
        for limit in [1, 2, 100] {
            let body = json!({ "subject": { "type": "User", "id": user }, "action": { "name": action }, "resource": { "type": "Doc" } });
            let (got, pages) = all_pages(&http, "/access/v1/search/resource", body, limit).await;
            assert_eq!(got, expected, "{user} {action} limit {limit}");
            assert!(pages >= expected.len().div_ceil(limit), "{pages}");
        }
    }
    // ann may read d1 (owned), d2 (public) and d4..d9; bob reads d2 and d3.
    let body = json!({ "subject": { "type": "User" }, "action": { "name": "read" }, "resource": { "type": "Doc", "id": "d3" } });
    let (got, _) = all_pages(&http, "/access/v1/search/subject", body, 10).await;
    assert_eq!(got, vec![json!({ "type": "User", "id": "bob" })]);
    let body =
        json!({ "subject": { "type": "User", "id": "bob" }, "resource": { "type": "Doc", "id": "d3" } });
    let (got, _) = all_pages(&http, "/access/v1/search/action", body, 1).await;
    assert_eq!(
        got,
        vec![
            json!({ "name": "archive" }),
            json!({ "name": "edit" }),
            json!({ "name": "read" })
        ]
    );
    let body =
        json!({ "subject": { "type": "User", "id": "ann" }, "resource": { "type": "Doc", "id": "d3" } });
    let (got, _) = all_pages(&http, "/access/v1/search/action", body, 10).await;
    assert_eq!(got, Vec::<Value>::new());

    // A bad page is a 400; a search nothing can satisfy is an empty page that says why.
    for (body, code) in [
        (
            json!({ "subject": { "type": "User", "id": "ann" }, "action": { "name": "read" }, "resource": { "type": "Doc" }, "page": { "token": "zz" } }),
            "invalid_page_token",
        ),
        (
            json!({ "subject": { "type": "User", "id": "ann" }, "action": { "name": "read" }, "resource": { "type": "Doc" }, "page": { "limit": 0 } }),
            "invalid_page_limit",
        ),
    ] {
        let (status, out) = http.post("/access/v1/search/resource", &body).await;
        assert_eq!(status, 400, "{body} -> {out}");
        assert_eq!(out["error"]["code"], code, "{out}");
    }
    for (path, body, says) in [
        (
            "/access/v1/search/resource",
            json!({ "subject": { "type": "User", "id": "ann" }, "action": { "name": "nope" }, "resource": { "type": "Doc" } }),
            "unknown action",
        ),
        (
            "/access/v1/search/subject",
            json!({ "subject": { "type": "Doc" }, "action": { "name": "read" }, "resource": { "type": "Doc", "id": "d1" } }),
            "does not apply",
        ),
        (
            "/access/v1/search/action",
            json!({ "subject": { "type": "Nobody", "id": "x" }, "resource": { "type": "Doc", "id": "d1" } }),
            "Nobody",
        ),
    ] {
        let (status, out) = http.post(path, &body).await;
        assert_eq!(status, 200, "{body} -> {out}");
        assert_eq!(out["results"], json!([]), "{out}");
        assert_eq!(out["page"]["next_token"], "", "{out}");
        let message = out["context"]["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    server.shutdown().await;
}
