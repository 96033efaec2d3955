//! The calibration server: what a team would write by hand with axum and cedar-policy, to measure
//! Portcullis against (`server/benches/compare.sh` runs both on the same data, alternating).
//!
//! `calibration FOLDER ENTITIES LISTEN`: the folder's policies compiled to one Cedar policy set at
//! start (through the engine, once; nothing of Portcullis runs per request), the whole entities
//! file loaded once into a Cedar `Entities` behind an `Arc` (with the schema's action entities),
//! no slicing, no cache. `POST /v1/authorize` takes Portcullis's request body (principal as a
//! bare user id or a Cedar uid, action as a bare action id or a uid, resource as a uid, context)
//! and answers `{"decision", "reasons"}` after Cedar's request validation against the schema.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request, Schema};
use portcullis_engine::{Snapshot, SourceLimits, SourceSet};
use serde::Deserialize;
use serde_json::{json, Value};

struct Calibration {
    policies: PolicySet,
    schema: Schema,
    entities: Entities,
    authorizer: Authorizer,
    /// The folder's namespace, for bare names (`u1`, `shipment.create`).
    namespace: String,
    user_type: String,
}

#[derive(Deserialize)]
struct Body {
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: serde_json::Map<String, Value>,
}

fn uid(text: &str, bare_type: &str) -> Result<EntityUid, String> {
    if text.contains("::") {
        EntityUid::from_str(text).map_err(|e| e.to_string())
    } else {
        EntityUid::from_str(&format!("{bare_type}::{}", Value::from(text))).map_err(|e| e.to_string())
    }
}

async fn authorize(
    State(c): State<Arc<Calibration>>,
    Json(b): Json<Body>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": m })));
    let principal = uid(&b.principal, &c.user_type).map_err(bad)?;
    let action = uid(&b.action, &format!("{}::Action", c.namespace)).map_err(bad)?;
    let resource = uid(&b.resource, "").map_err(bad)?;
    let context = Context::from_json_value(Value::Object(b.context), Some((&c.schema, &action)))
        .map_err(|e| bad(e.to_string()))?;
    let request = Request::new(principal, action, resource, context, Some(&c.schema))
        .map_err(|e| bad(e.to_string()))?;
    let response = c.authorizer.is_authorized(&request, &c.policies, &c.entities);
    let reasons: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
    let decision = if response.decision() == Decision::Allow {
        "allow"
    } else {
        "deny"
    };
    Ok(Json(json!({ "decision": decision, "reasons": reasons })))
}

fn load(folder: &str, entities: &str) -> Result<Calibration, String> {
    let sources = SourceSet::read(folder.as_ref(), SourceLimits::default()).map_err(|d| d.to_string())?;
    let snapshot = Snapshot::build(sources).map_err(|d| d.to_string())?;
    let schema = snapshot.schema().clone();
    let file = std::fs::File::open(entities).map_err(|e| format!("{entities}: {e}"))?;
    let data =
        Entities::from_json_file(std::io::BufReader::new(file), Some(&schema)).map_err(|e| e.to_string())?;
    let actions = schema.action_entities().map_err(|e| e.to_string())?;
    let entities = data
        .add_entities(actions, Some(&schema))
        .map_err(|e| e.to_string())?;
    Ok(Calibration {
        policies: snapshot.policy_set().clone(),
        namespace: snapshot.namespace().to_owned(),
        user_type: snapshot.user_type(),
        schema,
        entities,
        authorizer: Authorizer::new(),
    })
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, folder, entities, listen] = &args[..] else {
        return Err("usage: calibration FOLDER ENTITIES LISTEN".to_owned());
    };
    let started = std::time::Instant::now();
    let c = Arc::new(load(folder, entities)?);
    eprintln!(
        "calibration: {} entities loaded in {:.2} s",
        c.entities.iter().count(),
        started.elapsed().as_secs_f64()
    );
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/authorize", post(authorize))
        .with_state(c);
    let addr: SocketAddr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| e.to_string())?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
