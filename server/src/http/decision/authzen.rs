//! The OpenID AuthZEN Authorization API 1.0, mapped onto the same engine.
//!
//! `subject` → principal (`type` is an entity type, bare names take the folder's namespace),
//! `action.name` → action id, `resource` → resource, `context` → context. The `properties` of
//! a subject or resource the server does not know become its entity's attributes (those the
//! schema declares); a request may also carry Cedar JSON entities in the extension field
//! `entities`. Keys the schema does not declare are ignored, as the specification asks, and
//! listed in the answer. The response `context` carries the decision id, the policy version
//! and the reasons. In `evaluations`, a check that cannot be decided answers
//! `decision: false` with `context.error`, as the specification asks.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use portcullis_engine::{Decision, EntityRef, Slot};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::decision::decision_id;
use crate::decision::{ask, Given, Question};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::openapi::Refused;
use crate::slice::Inline;
use crate::state::{AppState, Served};

/// An AuthZEN subject or resource.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = AuthzenThing)]
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
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = AuthzenAction)]
pub struct Action {
    /// The action id.
    pub name: String,
    /// Ignored.
    #[serde(default)]
    pub properties: Option<Value>,
}

/// `POST /access/v1/evaluation` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AuthzenEvaluation)]
pub struct Evaluation {
    /// The principal.
    pub subject: Thing,
    /// The action.
    pub action: Action,
    /// The resource.
    pub resource: Thing,
    /// The context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Extension: Cedar JSON entities the decision needs.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Value>,
}

/// One item of `evaluations`: any part left out comes from the request's top level.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = AuthzenPartialEvaluation)]
pub struct PartialEvaluation {
    /// The principal.
    pub subject: Option<Thing>,
    /// The action.
    pub action: Option<Action>,
    /// The resource.
    pub resource: Option<Thing>,
    /// The context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// `options` of `evaluations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = AuthzenOptions)]
pub struct Options {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    #[serde(default)]
    pub evaluations_semantic: Option<String>,
}

/// `POST /access/v1/evaluations` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AuthzenEvaluations)]
pub struct Evaluations {
    /// Default principal.
    pub subject: Option<Thing>,
    /// Default action.
    pub action: Option<Action>,
    /// Default resource.
    pub resource: Option<Thing>,
    /// Default context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The checks.
    #[serde(default)]
    pub evaluations: Vec<PartialEvaluation>,
    /// Evaluation semantics.
    #[serde(default)]
    pub options: Options,
    /// Extension: Cedar JSON entities every check may use.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Value>,
}

/// The entity reference of a subject or resource.
pub(crate) fn entity_ref(t: &Thing) -> EntityRef {
    EntityRef::Object {
        ty: t.ty.clone(),
        id: t.id.clone(),
    }
}

/// What an evaluation left out, as the specification asks of a receiver: context keys the
/// action's context type does not declare, and `properties` that are not attributes the
/// schema declares for that entity, or that describe an entity the server already knows.
/// Listed in the answer's `context.ignored`, so a policy author sees what was dropped.
#[derive(Debug, Default, Serialize)]
pub struct Ignored {
    /// Context keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// Subject property keys.
    #[serde(rename = "subject.properties", skip_serializing_if = "Vec::is_empty")]
    pub subject: Vec<String>,
    /// Action property keys (a Cedar action has no attributes).
    #[serde(rename = "action.properties", skip_serializing_if = "Vec::is_empty")]
    pub action: Vec<String>,
    /// Resource property keys.
    #[serde(rename = "resource.properties", skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
}

impl Ignored {
    fn is_empty(&self) -> bool {
        self.context.is_empty()
            && self.subject.is_empty()
            && self.action.is_empty()
            && self.resource.is_empty()
    }
}

fn answer(d: &Decision, ignored: &Ignored) -> Value {
    let reasons: Vec<&str> = d.reasons.iter().map(|r| r.id.as_str()).collect();
    let mut context = json!({
        "decision_id": decision_id(),
        "version": d.version,
        "reasons": reasons,
    });
    if !ignored.is_empty() {
        context["ignored"] = json!(ignored);
    }
    json!({ "decision": d.allowed(), "context": context })
}

/// The answer to one evaluation; when the folder audits its action, its audit row is written
/// first, under the answer's `decision_id`.
async fn answered(
    app: &AppState,
    served: &Served,
    (subject, action, resource): (&Thing, &Action, &Thing),
    context: Option<&Map<String, Value>>,
    (d, ignored): (&Decision, &Ignored),
) -> Result<Value, ApiError> {
    let out = answer(d, ignored);
    let a = EntityRef::Text(action.name.clone());
    if super::audited::wanted(app, served, &a) {
        let asked = super::audited::Asked {
            principal: entity_ref(subject),
            action: a,
            resource: entity_ref(resource),
            context: context.cloned().unwrap_or_default(),
            via: "authzen",
        };
        let mut body = super::decide::DecisionBody::new(d.clone());
        if let Some(id) = out["context"]["decision_id"].as_str() {
            id.clone_into(&mut body.decision_id);
        }
        super::audited::record(app, served, &asked, None, &body).await?;
    }
    Ok(out)
}

fn keys(properties: Option<&Value>) -> Vec<String> {
    properties
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The Cedar JSON entity that `properties` describe, for an entity no one else knows: the
/// keys the schema declares for its type become its attributes (typed by the schema when
/// Cedar parses it); the others are returned as ignored. `None` when no key is kept.
///
/// Who wins: the store (for its user and company types, whenever the server has one), the
/// entities file and the request's own `entities` all take precedence, and their entity is
/// used whole, properties ignored. So a client never overrides a stored user's role, or any
/// fact the server holds, through properties; it can only describe entities the server has
/// never heard of, as it could with `entities`.
fn property_entity(
    app: &AppState,
    served: &Served,
    thing: &Thing,
    slot: Slot,
    raw: &[Value],
) -> Result<(Option<Value>, Vec<String>), ApiError> {
    let all = keys(thing.properties.as_ref());
    let (Some(props), false) = (
        thing.properties.as_ref().and_then(Value::as_object),
        all.is_empty(),
    ) else {
        return Ok((None, all));
    };
    let s = &served.snapshot;
    let Ok(uid) = served.resolver.entity(s, &entity_ref(thing), slot) else {
        return Ok((None, all));
    };
    let ty = uid.type_name().to_string();
    let stored = app.manage.get().is_some() && (ty == s.user_type() || ty == s.company_type());
    let inline = raw
        .iter()
        .any(|v| crate::manage::entities::uid_of(v) == (Some(ty.as_str()), Some(thing.id.as_str())));
    if stored || inline || served.entities.entities.holds(&uid) {
        return Ok((None, all));
    }
    let Some(declared) = s.entity_attributes(&ty) else {
        return Ok((None, all));
    };
    let (kept, ignored): (Map<String, Value>, Map<String, Value>) =
        props.clone().into_iter().partition(|(k, _)| declared.contains(k));
    let ignored = ignored.into_iter().map(|(k, _)| k).collect();
    if kept.is_empty() {
        return Ok((None, ignored));
    }
    let value = json!({ "uid": { "type": ty, "id": thing.id }, "attrs": kept, "parents": [] });
    // Checked here, so a property of the wrong type is named as one.
    if let Err(e) = cedar_policy::Entity::from_json_value(value.clone(), Some(s.schema())) {
        let part = if slot == Slot::Principal {
            "subject"
        } else {
            "resource"
        };
        return Err(ApiError::bad_request(
            "invalid_properties",
            format!("`{part}.properties`: {}", crate::error_text(&e)),
        ));
    }
    Ok((Some(value), ignored))
}

/// Decides one evaluation; a stored user as subject decides as in `/v1/authorize` (its facts
/// and visitor grants from the store, over `raw`, the request's entities).
pub(crate) async fn evaluate(
    app: &AppState,
    served: &Served,
    subject: &Thing,
    action: &Action,
    resource: &Thing,
    context: Option<Map<String, Value>>,
    (inline, raw): (&Inline, &[Value]),
) -> Result<(Decision, Ignored), ApiError> {
    let (p, a, r) = (
        entity_ref(subject),
        EntityRef::Text(action.name.clone()),
        entity_ref(resource),
    );
    let s = &served.snapshot;
    let mut ignored = Ignored {
        action: keys(action.properties.as_ref()),
        ..Ignored::default()
    };
    let mut context = context.unwrap_or_default();
    if let Some(declared) = served
        .resolver
        .action(s, &a)
        .ok()
        .and_then(|uid| s.context_attributes(&uid))
    {
        context.retain(|k, _| {
            let keep = declared.contains(k);
            if !keep {
                ignored.context.push(k.clone());
            }
            keep
        });
    }
    let (resource_entity, resource_ignored) = property_entity(app, served, resource, Slot::Resource, raw)
        .inspect_err(|_| app.metrics.rejected())?;
    ignored.resource = resource_ignored;
    // A stored subject's properties describe nothing: the store holds its facts.
    let stored = match served.resolver.entity(s, &p, Slot::Principal) {
        Ok(uid) => crate::decision::stored_user(app, served, &uid).await?.is_some(),
        Err(_) => false,
    };
    let (subject_entity, subject_ignored) = if stored {
        (None, keys(subject.properties.as_ref()))
    } else {
        property_entity(app, served, subject, Slot::Principal, raw).inspect_err(|_| app.metrics.rejected())?
    };
    ignored.subject = subject_ignored;
    let described: Vec<Value> = subject_entity.into_iter().chain(resource_entity).collect();
    let given = if described.is_empty() {
        Given::Shared(inline, raw)
    } else {
        let mut values = raw.to_vec();
        values.extend(described);
        Given::Own(values)
    };
    let question = Question {
        principal: &p,
        action: &a,
        resource: &r,
        context,
        given,
        session: None,
    };
    let d = ask(app, served, question, None, false).await?.into_decision();
    Ok((d, ignored))
}

/// The answer to one AuthZEN evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthzenDecision {
    /// Allowed or not.
    pub decision: bool,
    /// The decision id, the policy version and the reasons; `ignored` keys; `error` for an
    /// evaluation of a batch that could not be decided.
    #[schema(value_type = Object)]
    pub context: Value,
}

/// The answers to AuthZEN evaluations, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthzenDecisions {
    /// One answer per evaluation (fewer when the semantic stopped early).
    pub evaluations: Vec<AuthzenDecision>,
}

/// AuthZEN Access Evaluation
#[utoipa::path(post, path = "/access/v1/evaluation", request_body = Evaluation,
    responses((status = 200, description = "the decision", body = AuthzenDecision), Refused))]
pub async fn evaluation(
    State(app): State<Arc<AppState>>,
    ApiJson(e): ApiJson<Evaluation>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let served = app.served();
    let inline = Inline::parse(&e.entities, served.snapshot.described())?;
    // The context as asked, kept only for an audited action's row.
    let audited = super::audited::wanted(&app, &served, &EntityRef::Text(e.action.name.clone()));
    let asked_context = if audited { e.context.clone() } else { None };
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
    let (d, ignored) = d?;
    let parts = (&e.subject, &e.action, &e.resource);
    Ok(Json(
        answered(&app, &served, parts, asked_context.as_ref(), (&d, &ignored)).await?,
    ))
}

/// AuthZEN Access Evaluations
///
/// Without `evaluations`, one decision as for `/access/v1/evaluation`.
#[utoipa::path(post, path = "/access/v1/evaluations", request_body = Evaluations,
    responses((status = 200, description = "one decision per evaluation", body = AuthzenDecisions), Refused))]
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
    let inline = Inline::parse(&req.entities, served.snapshot.described())?;
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
        let answer = answered(&app, &served, (s, a, r), req.context.as_ref(), (&d.0, &d.1)).await?;
        return Ok(Json(answer));
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
                match evaluate(&app, &served, s, a, r, context.clone(), (&inline, &req.entities)).await {
                    Ok(d) => answered(&app, &served, (s, a, r), context.as_ref(), (&d.0, &d.1))
                        .await
                        .map(|answer| (d.0.allowed(), answer)),
                    Err(e) => Err(e),
                }
            }
            _ => Err(missing("subject`, `action` or `resource")),
        };
        match result {
            Ok((allowed, answer)) => {
                out.push(answer);
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

/// AuthZEN PDP metadata
///
/// The endpoints under the configured `public_url` (never the request's `Host`, which a
/// client chooses).
#[utoipa::path(get, path = "/.well-known/authzen-configuration", responses((status = 200, description = "metadata", body = Object)))]
pub async fn configuration(State(app): State<Arc<AppState>>) -> Json<Value> {
    let base = app.base_url();
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    }))
}
