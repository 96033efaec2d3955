//! `POST /v1/authorize`, `POST /v1/authorize/batch` and `POST /v1/permissions`.
//!
//! Input: parsed JSON queries. Each request loads the served bundle once and asks each of its
//! questions through the decision pipeline ([`crate::decision`]), then answers with the policy
//! version and a decision id.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use portcullis_engine::{AuthzQuery, Decision, EntityRef, RequestError, Slot};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::decision::{ask, decision_id, Answer, BatchSlices, Given, Question, Resolved};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::openapi::Refused;
use crate::slice::{context_refs, Inline, Roots};
use crate::state::AppState;

/// The answer to one decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionBody {
    /// `allow` or `deny`.
    pub decision: portcullis_engine::Outcome,
    /// Ids of the deciding policies.
    pub reasons: Vec<String>,
    /// Policies that failed to evaluate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<portcullis_engine::PolicyError>,
    /// The policy version decided under.
    #[schema(value_type = String)]
    pub version: Arc<str>,
    /// A unique id for this decision, for audit logs.
    #[schema(format = "uuid")]
    pub decision_id: String,
}

impl DecisionBody {
    /// From an engine decision.
    pub fn new(d: Decision) -> Self {
        Self {
            decision: d.decision,
            reasons: d.reasons.iter().map(|r| r.id.clone()).collect(),
            errors: d.errors,
            version: d.version,
            decision_id: decision_id(),
        }
    }
}

/// The body of `POST /v1/authorize` as sent: `principal`, or `session` (a signed-in session's
/// token, whose user becomes the principal and whose MFA state fills the folder's
/// `sign_in.mfa_context` attribute where the action's context declares it), but not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// Who asks.
    pub principal: Option<EntityRef>,
    /// `pcs_…` from `POST /v1/auth/login`, instead of `principal`.
    #[serde(default)]
    pub session: Option<String>,
    /// What they want to do.
    pub action: EntityRef,
    /// On what.
    pub resource: EntityRef,
    /// The request context.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Entities the decision needs, in Cedar's JSON entity format.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<serde_json::Value>,
    /// Add an `explanation`: the deciding policies, or for a default deny the nearest
    /// permits and their failed conditions.
    #[serde(default)]
    pub explain: bool,
}

/// The body of `POST /v1/authorize`: a query, whose principal may be given as a signed-in
/// session's token (`"session": "pcs_…"`) instead.
#[derive(Debug)]
pub struct AuthorizeBody {
    /// The session token, when the principal is a session.
    pub session: Option<String>,
    /// The query (its principal filled in from the session, once resolved).
    pub query: AuthzQuery,
}

impl<'de> Deserialize<'de> for AuthorizeBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = AuthorizeRequest::deserialize(d)?;
        let principal = match (w.principal, &w.session) {
            (Some(p), None) => p,
            // A placeholder the session's user replaces before anything is decided.
            (None, Some(_)) => EntityRef::Text(String::new()),
            (Some(_), Some(_)) => {
                return Err(D::Error::custom("give either `principal` or `session`, not both"))
            }
            (None, None) => return Err(D::Error::missing_field("principal")),
        };
        let query = AuthzQuery {
            principal,
            action: w.action,
            resource: w.resource,
            context: w.context,
            entities: w.entities,
            explain: w.explain,
        };
        Ok(AuthorizeBody {
            session: w.session,
            query,
        })
    }
}

/// Decide one request
#[utoipa::path(post, path = "/v1/authorize", request_body = AuthorizeRequest,
    responses((status = 200, description = "the decision, with an `explanation` when asked", body = ExplainedBody), Refused))]
pub async fn authorize(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<AuthorizeBody>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let mut q = body.query;
    let session = match body.session {
        Some(token) => Some(crate::auth::session_principal(&app, &token, &mut q).await?),
        None => None,
    };
    let served = app.served();
    let audited = super::audited::wanted(&app, &served, &q.action).then(|| super::audited::Asked {
        principal: q.principal.clone(),
        action: q.action.clone(),
        resource: q.resource.clone(),
        context: q.context.clone(),
        via: "authorize",
    });
    let started = Instant::now();
    let question = Question {
        principal: &q.principal,
        action: &q.action,
        resource: &q.resource,
        context: q.context,
        given: Given::Own(q.entities),
        session: session.as_ref(),
    };
    let answer = ask(&app, &served, question, None, q.explain).await;
    app.metrics.latency(started.elapsed());
    let response = match answer? {
        Answer::Decided(d) => {
            let body = DecisionBody::new(d);
            if let Some(asked) = &audited {
                super::audited::record(&app, &served, asked, session.as_ref(), &body).await?;
            }
            Json(body).into_response()
        }
        Answer::Explained(e) => {
            let explanation = serde_json::json!({
                "summary": e.summary,
                "reasons": e.decision.reasons,
                "nearest": e.nearest,
            });
            let body = ExplainedBody {
                decision: DecisionBody::new(e.decision),
                explanation,
            };
            if let Some(asked) = &audited {
                super::audited::record(&app, &served, asked, session.as_ref(), &body.decision).await?;
            }
            Json(body).into_response()
        }
    };
    Ok(response)
}

/// A decision, with `"explain": true` the usual answer plus the explanation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainedBody {
    /// The decision, as without `explain`.
    #[serde(flatten)]
    pub decision: DecisionBody,
    /// Why: the deciding policies with where they are written, or for a default deny the
    /// nearest permits and which of their conditions failed (only with `explain`).
    #[schema(value_type = Option<Object>)]
    pub explanation: serde_json::Value,
}

/// `POST /v1/permissions` body: what may `principal` do on `resource`?
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsQuery {
    /// Who asks.
    pub principal: EntityRef,
    /// On what.
    #[serde(default)]
    pub resource: Option<EntityRef>,
    /// Or on a new record of this type in the principal's company (for "create" buttons).
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The request context for every action.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Entities the decisions need, in Cedar's JSON entity format.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<serde_json::Value>,
}

/// Every action and feature the principal is allowed on the resource
///
/// Every action the schema lets the principal ask about the resource,
/// decided, and the features they make up, so a UI can show or hide its buttons in one call.
#[utoipa::path(post, path = "/v1/permissions", request_body = PermissionsQuery,
    responses((status = 200, description = "the allowed actions and features", body = portcullis_engine::permissions::Permissions), Refused))]
pub async fn permissions(
    State(app): State<Arc<AppState>>,
    ApiJson(p): ApiJson<PermissionsQuery>,
) -> Result<Json<portcullis_engine::permissions::Permissions>, ApiError> {
    let served = app.served();
    let (resource, resource_type) = match (p.resource, p.resource_type) {
        (Some(r), None) => (r, None),
        (None, Some(t)) => (EntityRef::Text(String::new()), Some(t)),
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_body",
                "give exactly one of `resource` and `resource_type`",
            ))
        }
    };
    let s = &served.snapshot;
    let principal = served.resolver.entity(s, &p.principal, Slot::Principal)?;
    let probe = match &resource_type {
        Some(t) => EntityRef::Object {
            ty: t.clone(),
            id: String::new(),
        },
        None => resource.clone(),
    };
    let resource_uid = served.resolver.entity(s, &probe, Slot::Resource)?;
    // Any action will do for gathering: without a session, only the principal and the
    // resource choose what the decisions are made over.
    let Some(any) = s
        .schema()
        .actions_for_principal_and_resource(principal.type_name(), resource_uid.type_name())
        .next()
        .cloned()
    else {
        return Ok(Json(portcullis_engine::permissions::Permissions {
            allowed: Vec::new(),
            actions: Vec::new(),
            features: Vec::new(),
            skipped: Vec::new(),
            version: s.version().to_owned(),
        }));
    };
    let mut context = p.context;
    let uids = Resolved {
        principal: principal.clone(),
        action: any.clone(),
        resource: resource_uid.clone(),
    };
    let grounds = crate::decision::ground(
        &app,
        &served,
        &uids,
        &probe,
        Given::Own(p.entities),
        None,
        &mut context,
    )
    .await?;
    if resource_type.is_some() {
        // A new record of the type: the principal with its ancestors (any action will do for
        // that) and every action, decided by the engine for a record in the principal's
        // company.
        let refs = context_refs(&context);
        let roots = Roots {
            principal: &principal,
            action: &any,
            resource: &principal,
            context: &refs,
        };
        let slice = served.slice(roots, grounds.beside())?;
        let actions = s
            .schema()
            .action_entities()
            .map_err(|e| RequestError::Entities(e.to_string()))?;
        let slice = slice
            .add_entities(actions.iter().cloned(), None)
            .map_err(|e| RequestError::Entities(e.to_string()))?;
        let policies = grounds.policies().unwrap_or(s.policy_set());
        let out = s.permissions_for_type(&principal, resource_uid.type_name(), &context, slice, policies)?;
        return Ok(Json(out));
    }
    let out = s.permissions_by(&principal, &resource_uid, |action| {
        let uids = Resolved {
            principal: principal.clone(),
            action: action.clone(),
            resource: resource_uid.clone(),
        };
        let d = crate::decision::decide(&served, &grounds, uids, context.clone(), None, false)
            .map(Answer::into_decision);
        match &d {
            Ok(d) => app.metrics.decision(d),
            Err(_) => app.metrics.rejected(),
        }
        d
    });
    Ok(Json(out))
}

/// One check of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCheck {
    /// The client's id for this check, echoed in its answer.
    pub id: serde_json::Value,
    /// Who asks.
    pub principal: EntityRef,
    /// What they want to do.
    pub action: EntityRef,
    /// On what.
    pub resource: EntityRef,
    /// The request context.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Entities only this check needs.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<serde_json::Value>,
}

/// `POST /v1/authorize/batch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The checks, answered in order.
    pub checks: Vec<BatchCheck>,
    /// Entities every check may use.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<serde_json::Value>,
}

/// One answer of a batch: a decision, or the error of that check alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The client's id.
    pub id: serde_json::Value,
    /// The decision, or the check's error.
    #[serde(flatten)]
    pub outcome: BatchOutcome,
}

/// What one check of a batch came to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchOutcome {
    /// The decision, when the check was valid.
    Decided(DecisionBody),
    /// The check's error, when it was not.
    Failed {
        /// The error envelope's body.
        error: crate::http::error::ErrorFields,
    },
}

/// `POST /v1/authorize/batch` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// The policy version every check was decided under.
    #[schema(value_type = String)]
    pub version: Arc<str>,
    /// One answer per check, in order.
    pub results: Vec<BatchResult>,
}

/// Decide many requests under one policy version
///
/// Every check under one snapshot; a check's own error is its answer.
#[utoipa::path(post, path = "/v1/authorize/batch", request_body = BatchRequest,
    responses((status = 200, description = "one answer per check", body = BatchResponse), Refused))]
pub async fn batch(
    State(app): State<Arc<AppState>>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let max = app.config.limits.max_batch;
    if req.checks.len() > max {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the batch holds {} checks, more than the limit of {max}",
                req.checks.len()
            ),
        ));
    }
    // Entities are JSON objects; anything else is a malformed body, refused as a whole (what
    // Cedar finds wrong in an object stays the error of the checks that use it).
    let mut all = req
        .entities
        .iter()
        .chain(req.checks.iter().flat_map(|c| &c.entities));
    if all.any(|e| !e.is_object()) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "every entity of `entities` must be a JSON object (Cedar's entity format)",
        ));
    }
    let started = Instant::now();
    let served = app.served();
    let schema = served.snapshot.described();
    let shared = Inline::parse_cached(req.entities.clone(), schema, Some(&served.inline))?;
    let mut results = Vec::with_capacity(req.checks.len());
    let mut cache = BatchSlices::new();
    for c in req.checks {
        let audited = super::audited::wanted(&app, &served, &c.action).then(|| super::audited::Asked {
            principal: c.principal.clone(),
            action: c.action.clone(),
            resource: c.resource.clone(),
            context: c.context.clone(),
            via: "batch",
        });
        let given = if c.entities.is_empty() {
            Given::Shared(&shared, &req.entities)
        } else {
            let mut values = req.entities.clone();
            values.extend(c.entities);
            Given::Own(values)
        };
        let question = Question {
            principal: &c.principal,
            action: &c.action,
            resource: &c.resource,
            context: c.context,
            given,
            session: None,
        };
        let result = match ask(&app, &served, question, Some(&mut cache), false).await {
            // The store failing fails the batch; a check's own error is its answer.
            Err(e) if e.status.is_server_error() => return Err(e),
            r => r.map(Answer::into_decision),
        };
        results.push(match result {
            Ok(d) => {
                let body = DecisionBody::new(d);
                if let Some(asked) = &audited {
                    super::audited::record(&app, &served, asked, None, &body).await?;
                }
                BatchResult {
                    id: c.id,
                    outcome: BatchOutcome::Decided(body),
                }
            }
            Err(e) => BatchResult {
                id: c.id,
                outcome: BatchOutcome::Failed { error: e.fields() },
            },
        });
    }
    app.metrics.latency(started.elapsed());
    Ok(Json(BatchResponse {
        version: served.snapshot.version_arc(),
        results,
    }))
}
