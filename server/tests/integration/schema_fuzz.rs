//! Regressions found by schemathesis (`server/tests/schemathesis.sh`) against `GET /openapi.json`.

use serde_json::json;

use crate::common::Http;
use crate::manage::{company, sqlite_env, user_with_key};

/// `PATCH /v1/users/{id}` with `[null, null]` was a 200: serde builds a struct from an array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_an_array_is_refused() {
    let env = sqlite_env().await;
    company(&*env.store, "acme", "customer", None).await;
    let key = user_with_key(&*env.store, "own1", "acme", "owner", true).await;
    let owner = Http::new(&env.server).with_key(&key);
    for (method, path, body) in [
        ("PATCH", "/v1/users/own1", "[null, null]"),
        ("PUT", "/v1/users/own1/role", r#"["owner"]"#),
        ("POST", "/v1/users", r#"["x", "acme", "x", null, "", "regular"]"#),
        (
            "POST",
            "/v1/authorize",
            r#"["olivia", "shipment.create", "Portal::Shipment::\"s1\""]"#,
        ),
    ] {
        let (s, b) = owner.send(method, path, body.as_bytes().to_vec()).await;
        assert_eq!(s, 400, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], "invalid_body", "{b}");
    }
    // Not JSON at all is still `malformed_json`.
    let (s, b) = owner.send("PATCH", "/v1/users/own1", b"[1,".to_vec()).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{b}"
    );
    let (s, b) = owner.get("/v1/users/own1").await;
    assert_eq!((s, b["name"].as_str()), (200, Some("")), "{b}");
    env.server.shutdown().await;
}

/// A bad query string was a plain-text 400 from axum's `Query`, outside the error envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_string_answers_in_the_envelope() {
    let env = sqlite_env().await;
    company(&*env.store, "acme", "customer", None).await;
    let key = user_with_key(&*env.store, "own1", "acme", "owner", true).await;
    let owner = Http::new(&env.server).with_key(&key);
    for path in [
        "/v1/audit?limit=many",
        "/v1/users?include_inactive=perhaps",
        "/v1/users?limit=-1",
    ] {
        let (s, b) = owner.get(path).await;
        assert_eq!(s, 400, "{path}: {b}");
        assert_eq!(b["error"]["code"], "invalid_query", "{path}: {b}");
    }
    env.server.shutdown().await;
}

/// The document says what the server takes: closed request bodies where the server refuses
/// unknown fields, `null` where it takes `null`, every error status it answers, and an
/// optional service key on the decision endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_what_the_server_takes() {
    let env = sqlite_env().await;
    let (s, doc) = Http::new(&env.server).get("/openapi.json").await;
    assert_eq!(s, 200);
    let schemas = &doc["components"]["schemas"];
    for name in [
        "NewUser",
        "UserPatch",
        "RoleBody",
        "MoveBody",
        "KeyBody",
        "GrantRequest",
        "NewInvitation",
        "Acceptance",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    assert_eq!(
        schemas["UserPatch"]["properties"]["role"]["type"],
        json!(["string", "null"])
    );
    for (path, method) in [
        ("/v1/users/{id}", "delete"),
        ("/v1/audit", "get"),
        ("/v1/invitations/accept", "post"),
    ] {
        for code in ["400", "404", "503"] {
            assert!(
                doc["paths"][path][method]["responses"][code].is_object(),
                "{method} {path} {code}"
            );
        }
    }
    assert_eq!(
        doc["paths"]["/v1/authorize/batch"]["post"]["security"][0],
        json!({})
    );
    env.server.shutdown().await;
}
