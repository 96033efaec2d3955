//! Decisions over HTTP: `/v1/authorize`, the batch endpoint and AuthZEN agree with the engine.

use portcullis_engine::{AuthzQuery, Snapshot};
use serde_json::{json, Value};

use crate::common::{olivia_creates, start, Fixture, Http};

fn inline_entities() -> Value {
    serde_json::from_str(include_str!("entities.json")).unwrap()
}

/// Asserts that an HTTP answer (`status`, `body`) to `query` (which carries the entities the
/// engine needs) is the engine's: its decision and reasons, or its error code with a 400.
/// Returns whether it allowed, `None` for an error.
fn engine_answer(snapshot: &Snapshot, query: Value, status: u16, body: &Value, label: &str) -> Option<bool> {
    let query: AuthzQuery = serde_json::from_value(query).unwrap();
    match snapshot.prepare(&query) {
        Ok(p) => {
            let d = snapshot.decide(&p);
            assert_eq!(status, 200, "{label}: {body}");
            assert_eq!(body["decision"], d.decision.as_str(), "{label}");
            assert_eq!(body["reasons"], json!(d.reason_ids()), "{label}");
            Some(d.allowed())
        }
        Err(e) => {
            assert_eq!(status, 400, "{label}: {body}");
            assert_eq!(body["error"]["code"], e.code(), "{label}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_uses_the_static_entities() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let (status, body) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "allow");
    assert_eq!(body["reasons"], json!(["feature.create_shipments"]));
    assert_eq!(body["version"], server.state.served().snapshot.version());
    assert_eq!(body["decision_id"].as_str().unwrap().len(), 36);
    // Object references and full names are the same request.
    let q = json!({
        "principal": { "type": "User", "id": "olivia" },
        "action": "Portal::Action::\"shipment.export\"",
        "resource": { "type": "Portal::Shipment", "id": "s1" },
    });
    let (status, body) = http.post("/v1/authorize", &q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "deny");
    // An unknown principal is a default deny, not an error.
    let q =
        json!({ "principal": "nobody", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"" });
    let (status, body) = http.post("/v1/authorize", &q).await;
    assert_eq!((status, body["decision"].as_str()), (200, Some("deny")));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_with_inline_entities_matches_the_engine() {
    let f = Fixture::new();
    let mut config = f.config();
    config.entities = None;
    let server = start(config).await;
    let http = Http::new(&server);
    let snapshot = server.state.served().snapshot.clone();
    for (principal, action) in [
        ("olivia", "shipment.create"),
        ("olivia", "shipment.read"),
        ("olivia", "shipping_rule.edit"),
        ("olivia", "data.delete"),
        ("olivia", "user.read"),
    ] {
        let mut q = json!({ "principal": principal, "action": action, "resource": "Portal::Shipment::\"s1\"", "entities": inline_entities() });
        if action == "data.delete" || action == "user.read" {
            q["resource"] = json!("Portal::User::\"olivia\"");
        }
        let (status, body) = http.post("/v1/authorize", &q).await;
        engine_answer(&snapshot, q, status, &body, action);
    }
    // Without the entities the same request is a default deny.
    let (_, body) = http.post("/v1/authorize", &olivia_creates()).await;
    assert_eq!(body["decision"], "deny");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_each_check_by_id() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let body = json!({ "checks": [
        { "id": "a", "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"" },
        { "id": 2, "principal": "olivia", "action": "shipment.export", "resource": "Portal::Shipment::\"s1\"" },
        { "id": "bad", "principal": "olivia", "action": "no.such", "resource": "Portal::Shipment::\"s1\"" },
    ]});
    let (status, out) = http.post("/v1/authorize/batch", &body).await;
    assert_eq!(status, 200, "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (results[0]["id"].clone(), results[0]["decision"].clone()),
        (json!("a"), json!("allow"))
    );
    assert_eq!(
        (results[1]["id"].clone(), results[1]["decision"].clone()),
        (json!(2), json!("deny"))
    );
    assert_eq!(results[2]["error"]["code"], "invalid_reference");
    assert_eq!(out["version"], server.state.served().snapshot.version());
    assert_ne!(results[0]["decision_id"], results[1]["decision_id"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_maps_onto_the_engine() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let one = json!({
        "subject": { "type": "User", "id": "olivia" },
        "action": { "name": "shipment.create" },
        "resource": { "type": "Shipment", "id": "s1" },
        "context": {}
    });
    let (status, out) = http.post("/access/v1/evaluation", &one).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["decision"], true);
    assert_eq!(
        out["context"]["version"],
        server.state.served().snapshot.version()
    );
    assert!(out["context"]["decision_id"].is_string());

    let many = json!({
        "subject": { "type": "User", "id": "olivia" },
        "resource": { "type": "Shipment", "id": "s1" },
        "evaluations": [
            { "action": { "name": "shipment.create" } },
            { "action": { "name": "shipment.export" } },
            { "action": { "name": "no.such" } },
        ]
    });
    let (status, out) = http.post("/access/v1/evaluations", &many).await;
    assert_eq!(status, 200, "{out}");
    let e = out["evaluations"].as_array().unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(e[0]["decision"], true);
    assert_eq!(e[1]["decision"], false);
    assert_eq!(e[2]["decision"], false);
    assert_eq!(e[2]["context"]["error"]["status"], 400);

    let mut first_deny = many.clone();
    first_deny["options"] = json!({ "evaluations_semantic": "deny_on_first_deny" });
    let (_, out) = http.post("/access/v1/evaluations", &first_deny).await;
    assert_eq!(out["evaluations"].as_array().unwrap().len(), 2);

    let (status, meta) = http.get("/.well-known/authzen-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["access_evaluation_endpoint"],
        format!("{}/access/v1/evaluation", server.url())
    );
    server.shutdown().await;
}

/// Repeated questions are answered from the bundle's caches (a context-free one from its kept
/// decision, one with a context over its kept slice): every answer, first or repeated, with
/// or without a context, matches the engine deciding over the whole entities file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_questions_match_the_engine_every_time() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);
    let snapshot = server.state.served().snapshot.clone();
    let assignment = |role: &str| {
        json!({ "role": { "__entity": { "type": "Portal::Role", "id": role } }, "flags": [], "scope_all": true,
                "locations": [], "actors": [], "actor_locations": [] })
    };
    let mut questions = Vec::new();
    for action in snapshot.schema().actions() {
        let name = action.id().unescaped().to_owned();
        for resource in [
            "Portal::Shipment::\"s1\"",
            "Portal::User::\"olivia\"",
            "Portal::Company::\"acme\"",
            "Portal::Location::\"oslo\"",
        ] {
            let q = json!({ "principal": "olivia", "action": name, "resource": resource });
            if ["user.create", "user.invite", "user.set_role"].contains(&name.as_str()) {
                for role in ["admin", "owner"] {
                    let mut q = q.clone();
                    q["context"] = assignment(role);
                    questions.push(q);
                }
            } else {
                questions.push(q);
            }
        }
    }
    let (mut allowed, mut denied) = (0, 0);
    for round in 0..3 {
        for q in &questions {
            let (status, body) = http.post("/v1/authorize", q).await;
            let mut full = q.clone();
            full["entities"] = inline_entities();
            match engine_answer(&snapshot, full, status, &body, &format!("round {round}, {q}")) {
                Some(true) => allowed += 1,
                Some(false) => denied += 1,
                None => {}
            }
        }
    }
    // The questions reach past request errors to both answers.
    assert!(allowed > 0 && denied > 0, "{allowed} allowed, {denied} denied");
    server.shutdown().await;
}
