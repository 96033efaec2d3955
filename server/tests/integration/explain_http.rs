//! `"explain": true` on `POST /v1/authorize`, and `POST /v1/permissions`, over real HTTP.

use serde_json::{json, Value};

use crate::common::{start, Fixture, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_permissions_over_http() {
    let f = Fixture::new();
    let server = start(f.config()).await;
    let http = Http::new(&server);

    // Allowed: the explanation names the permit and where it is written.
    let (code, v) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"", "explain": true }),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["reasons"], json!(["feature.create_shipments"]));
    assert_eq!(v["explanation"]["reasons"][0]["id"], "feature.create_shipments");
    assert_eq!(v["explanation"]["reasons"][0]["file"], "roles.toml");
    assert!(
        v["explanation"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("allow: "),
        "{v}"
    );

    // A default deny: the nearest permit and the condition that failed.
    let theme = json!({"uid": {"type": "Portal::Theme", "id": "other"}, "attrs": {}, "parents": []});
    let (code, v) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": "olivia", "action": "theme.configure", "resource": "Portal::Theme::\"other\"",
                     "entities": [theme], "explain": true }),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["decision"], "deny");
    let nearest = &v["explanation"]["nearest"][0];
    assert_eq!(nearest["policy"]["id"], "feature.portal_theme");
    let failed: Vec<&str> = nearest["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["held"] == false)
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["the resource belongs to the user's company"], "{v}");

    // Without `explain` the answer has no explanation.
    let (_, v) = http
        .post("/v1/authorize", &json!({ "principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipment::\"s1\"" }))
        .await;
    assert!(v.get("explanation").is_none(), "{v}");

    // What can olivia do on s1?
    let (v, allowed) = permissions(
        &http,
        json!({ "principal": "olivia", "resource": "Portal::Shipment::\"s1\"" }),
    )
    .await;
    assert!(
        allowed.iter().any(|a| a == "shipment.create") && allowed.iter().any(|a| a == "shipment.read"),
        "{v}"
    );
    assert!(!allowed.iter().any(|a| a == "shipment.export"), "{v}");
    let features = v["features"].as_array().unwrap();
    assert!(
        features
            .iter()
            .any(|f| f["feature"] == "create_shipments" && f["allowed"] == true),
        "{v}"
    );
    assert!(
        features
            .iter()
            .any(|f| f["feature"] == "carrier_shipments" && f["allowed"] == false),
        "{v}"
    );

    // On a new shipment in olivia's company: she may create one; a carrier's export is not hers.
    let (v, allowed) = permissions(
        &http,
        json!({ "principal": "olivia", "resource_type": "Portal::Shipment" }),
    )
    .await;
    assert!(allowed.iter().any(|a| a == "shipment.create"), "{v}");
    assert!(!allowed.iter().any(|a| a == "shipment.export"), "{v}");
    // Bad input is a 4xx with the envelope: both a resource and a type, or a bad reference.
    let both = json!({ "principal": "olivia", "resource": "Portal::Shipment::\"s1\"", "resource_type": "Portal::Shipment" });
    for body in [both, json!({ "principal": "olivia", "resource": "nope" })] {
        let (code, v) = http.post("/v1/permissions", &body).await;
        assert_eq!(code, 400, "{v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
}

/// `POST /v1/permissions`: the answer and its allowed actions.
async fn permissions(http: &Http, body: Value) -> (Value, Vec<String>) {
    let (code, v) = http.post("/v1/permissions", &body).await;
    assert_eq!(code, 200, "{v}");
    let allowed = v["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    (v, allowed)
}
