//! The OpenID AuthZEN Authorization API 1.0, mapped onto the same engine.
//!
//! `subject` → principal (`type` is an entity type, bare names take the folder's namespace),
//! `action.name` → action id, `resource` → resource, `context` → context. `properties` are
//! ignored: Cedar reads attributes from entities, which a request may carry in the extension
//! field `entities` (Cedar JSON). The response `context` carries the decision id, the policy
//! version and the reasons. In `evaluations`, a check that cannot be decided answers
//! `decision: false` with `context.error`, as the specification asks.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use portcullis_engine::{Decision, EntityRef};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::decide::{decide, decision_id, Check};
use super::error::ApiError;
use super::json::ApiJson;
use crate::slice::Inline;
use crate::state::AppState;

/// An AuthZEN subject or resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Thing {
    /// The entity type.
    #[serde(rename = "type")]
    pub ty: String,
    /// The entity id.
    pub id: String,
    /// Ignored: attributes come from entities.
    #[serde(default)]
    pub properties: Option<Value>,
}

/// An AuthZEN action.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// The action id.
    pub name: String,
    /// Ignored.
    #[serde(default)]
    pub properties: Option<Value>,
}

/// `POST /access/v1/evaluation` body.
#[derive(Debug, Deserialize)]
pub struct Evaluation {
    /// The principal.
    pub subject: Thing,
    /// The action.
    pub action: Action,
    /// The resource.
    pub resource: Thing,
    /// The context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Extension: Cedar JSON entities the decision needs.
    #[serde(default)]
    pub entities: Vec<Value>,
}

/// One item of `evaluations`: any part left out comes from the request's top level.
#[derive(Debug, Default, Deserialize)]
pub struct PartialEvaluation {
    /// The principal.
    pub subject: Option<Thing>,
    /// The action.
    pub action: Option<Action>,
    /// The resource.
    pub resource: Option<Thing>,
    /// The context.
    pub context: Option<Map<String, Value>>,
}

/// `options` of `evaluations`.
#[derive(Debug, Default, Deserialize)]
pub struct Options {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    #[serde(default)]
    pub evaluations_semantic: Option<String>,
}

/// `POST /access/v1/evaluations` body.
#[derive(Debug, Deserialize)]
pub struct Evaluations {
    /// Default principal.
    pub subject: Option<Thing>,
    /// Default action.
    pub action: Option<Action>,
    /// Default resource.
    pub resource: Option<Thing>,
    /// Default context.
    pub context: Option<Map<String, Value>>,
    /// The checks.
    #[serde(default)]
    pub evaluations: Vec<PartialEvaluation>,
    /// Evaluation semantics.
    #[serde(default)]
    pub options: Options,
    /// Extension: Cedar JSON entities every check may use.
    #[serde(default)]
    pub entities: Vec<Value>,
}

fn entity_ref(t: &Thing) -> EntityRef {
    EntityRef::Object {
        ty: t.ty.clone(),
        id: t.id.clone(),
    }
}

fn answer(d: &Decision) -> Value {
    let reasons: Vec<&str> = d.reasons.iter().map(|r| r.id.as_str()).collect();
    json!({
        "decision": d.allowed(),
        "context": {
            "decision_id": decision_id(),
            "version": d.version,
            "reasons": reasons,
        }
    })
}

/// Decides one evaluation; a stored user as subject decides as in `/v1/authorize` (its facts
/// and visitor grants from the store, over `raw`, the request's entities).
async fn evaluate(
    app: &AppState,
    served: &crate::state::Served,
    subject: &Thing,
    action: &Action,
    resource: &Thing,
    context: Option<Map<String, Value>>,
    (inline, raw): (&Inline, &[Value]),
) -> Result<Decision, ApiError> {
    let (p, a, r) = (
        entity_ref(subject),
        EntityRef::Text(action.name.clone()),
        entity_ref(resource),
    );
    let check = Check {
        principal: &p,
        action: &a,
        resource: &r,
        context: context.unwrap_or_default(),
    };
    let d = match crate::manage::cache::stored_facts(app, served, &p).await? {
        Some((mut facts, links)) => {
            let mut values = raw.to_vec();
            let named = crate::manage::cache::named_companies(app, served, &values, &r, &facts).await?;
            facts.extend(named);
            crate::manage::entities::merge(&mut values, facts);
            Inline::parse_owned(values, served.snapshot.schema()).and_then(|own| match &links {
                Some(set) => crate::manage::cache::decide_linked(served, check, &own, set),
                None => decide(served, check, &own),
            })
        }
        None => decide(served, check, inline),
    }
    .inspect_err(|_| app.metrics.rejected())?;
    app.metrics.decision(d.allowed());
    Ok(d)
}

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    State(app): State<Arc<AppState>>,
    ApiJson(e): ApiJson<Evaluation>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let served = app.served();
    let inline = Inline::parse(&e.entities, served.snapshot.schema())?;
    let d = evaluate(
        &app,
        &served,
        &e.subject,
        &e.action,
        &e.resource,
        e.context,
        (&inline, &e.entities),
    )
    .await;
    app.metrics.latency(started.elapsed());
    Ok(Json(answer(&d?)))
}

/// `POST /access/v1/evaluations`.
pub async fn evaluations(
    State(app): State<Arc<AppState>>,
    ApiJson(req): ApiJson<Evaluations>,
) -> Result<Json<Value>, ApiError> {
    let max = app.config.limits.max_batch;
    if req.evaluations.len() > max {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the request holds {} evaluations, more than the limit of {max}",
                req.evaluations.len()
            ),
        ));
    }
    let stop_on = match req.options.evaluations_semantic.as_deref() {
        None | Some("execute_all") => None,
        Some("deny_on_first_deny") => Some(false),
        Some("permit_on_first_permit") => Some(true),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("unknown `evaluations_semantic` `{other}`"),
            ))
        }
    };
    let started = Instant::now();
    let served = app.served();
    let inline = Inline::parse(&req.entities, served.snapshot.schema())?;
    let missing = |what: &str| {
        ApiError::bad_request(
            "invalid_body",
            format!("an evaluation has no `{what}` and the request gives no default"),
        )
    };
    if req.evaluations.is_empty() {
        let (Some(s), Some(a), Some(r)) = (&req.subject, &req.action, &req.resource) else {
            return Err(missing("subject`, `action` or `resource"));
        };
        let d = evaluate(
            &app,
            &served,
            s,
            a,
            r,
            req.context.clone(),
            (&inline, &req.entities),
        )
        .await?;
        app.metrics.latency(started.elapsed());
        return Ok(Json(answer(&d)));
    }
    let mut out = Vec::with_capacity(req.evaluations.len());
    for item in &req.evaluations {
        let parts = (
            item.subject.as_ref().or(req.subject.as_ref()),
            item.action.as_ref().or(req.action.as_ref()),
            item.resource.as_ref().or(req.resource.as_ref()),
        );
        let result = match parts {
            (Some(s), Some(a), Some(r)) => {
                let context = item.context.clone().or_else(|| req.context.clone());
                evaluate(&app, &served, s, a, r, context, (&inline, &req.entities)).await
            }
            _ => Err(missing("subject`, `action` or `resource")),
        };
        match result {
            Ok(d) => {
                let allowed = d.allowed();
                out.push(answer(&d));
                if stop_on == Some(allowed) {
                    break;
                }
            }
            Err(e) => {
                out.push(json!({
                    "decision": false,
                    "context": { "error": { "status": e.status.as_u16(), "code": e.code, "message": e.message } }
                }));
                if stop_on == Some(false) {
                    break;
                }
            }
        }
    }
    app.metrics.latency(started.elapsed());
    Ok(Json(json!({ "evaluations": out })))
}

/// `GET /.well-known/authzen-configuration`.
pub async fn configuration(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8180");
    let base = format!("http://{host}");
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
    }))
}
