//! `POST /v1/authorize` and `POST /v1/authorize/batch`, and the one function every decision
//! endpoint (AuthZEN included) goes through.
//!
//! Input: parsed JSON queries. Each request loads the served bundle once, resolves names,
//! builds the entity slice (inline entities + stored principal/resource with ancestors),
//! decides, counts the outcome and answers with the policy version and a decision id.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use cedar_policy::EntityUid;
use portcullis_engine::{AuthzQuery, Decision, EntityRef, RequestError, Slot};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::json::ApiJson;
use crate::slice::{context_refs, Inline, Roots};
use crate::state::{AppState, CachedSlice, Served};

/// The parts of one check, borrowed from whichever request shape carried them.
#[derive(Debug)]
pub struct Check<'a> {
    /// Who asks.
    pub principal: &'a EntityRef,
    /// What they want to do.
    pub action: &'a EntityRef,
    /// On what.
    pub resource: &'a EntityRef,
    /// The request context.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// Decides one check under `served`, with `inline` entities added to the slice.
pub fn decide(served: &Served, check: Check<'_>, inline: &Inline) -> Result<Decision, RequestError> {
    decide_cached(served, check, inline, None)
}

/// Slices already built in one batch, by principal, action and resource (for checks that
/// share the batch's inline entities).
pub type BatchSlices = HashMap<(EntityUid, EntityUid, EntityUid), Arc<CachedSlice>>;

/// Like [`decide`], sharing slices: without inline entities through the bundle's
/// [`crate::state::SliceCache`]; with the batch's shared inline entities through `batch`.
pub fn decide_cached(
    served: &Served,
    check: Check<'_>,
    inline: &Inline,
    batch: Option<&mut BatchSlices>,
) -> Result<Decision, RequestError> {
    let s = &served.snapshot;
    let principal: EntityUid = served.resolver.entity(s, check.principal, Slot::Principal)?;
    let action = served.resolver.action(s, check.action)?;
    let resource = served.resolver.entity(s, check.resource, Slot::Resource)?;
    let context = context_refs(&check.context);
    let slice = |p: &EntityUid, a: &EntityUid, r: &EntityUid| {
        let roots = Roots {
            principal: p,
            action: a,
            resource: r,
            context: &context,
        };
        served.slice(roots, inline)
    };
    if !context.is_empty() {
        // The slice depends on the context's entities: built for this question alone.
        let built = Arc::new(CachedSlice::new(slice(&principal, &action, &resource)?));
        return built.decide(served, principal, action, resource, check.context);
    }
    if inline.is_empty() {
        return served
            .slices
            .decide(served, principal, action, resource, check.context, slice);
    }
    let slice: Arc<CachedSlice> = if let Some(batch) = batch {
        match batch.entry((principal.clone(), action.clone(), resource.clone())) {
            Entry::Occupied(o) => o.get().clone(),
            Entry::Vacant(v) => {
                let built = slice(&principal, &action, &resource)?;
                v.insert(Arc::new(CachedSlice::new(built))).clone()
            }
        }
    } else {
        Arc::new(CachedSlice::new(slice(&principal, &action, &resource)?))
    };
    slice.decide(served, principal, action, resource, check.context)
}

/// A new decision id: a version-4 UUID, unique within the process and across processes.
///
/// Not from the operating system's random source per decision (a `getrandom` system call
/// each, 100 per batch of 100): a per-process random key from it once, then a counter mixed
/// through a bijection, so two ids of one process never collide and ids of two processes
/// differ in their random key. Decision ids name decisions in audit logs; they are not
/// secrets. Kept hand-written: `uuid`'s own fast generator (`fast-rng`) needs `rand` 0.10, a
/// second `rand` beside the 0.8 that sqlx brings.
pub fn decision_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let &(high, low) = KEY.get_or_init(|| {
        let mut seed = [0u8; 16];
        if getrandom::fill(&mut seed).is_err() {
            // No random source: the start time still tells processes apart.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed = t.to_le_bytes();
        }
        let (a, b) = seed.split_at(8);
        (
            u64::from_le_bytes(a.try_into().unwrap_or_default()),
            u64::from_le_bytes(b.try_into().unwrap_or_default()),
        )
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(n ^ low).to_le_bytes());
    bytes[8..].copy_from_slice(&high.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// splitmix64's finalizer: a bijection on `u64` that spreads a counter over all bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The answer to one decision.
#[derive(Debug, Serialize)]
pub struct DecisionBody {
    /// `allow` or `deny`.
    pub decision: portcullis_engine::Outcome,
    /// Ids of the deciding policies.
    pub reasons: Vec<String>,
    /// Policies that failed to evaluate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<portcullis_engine::PolicyError>,
    /// The policy version decided under.
    pub version: Arc<str>,
    /// A unique id for this decision, for audit logs.
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
        /// The query's fields with `principal` optional beside `session`: one pass over the
        /// body, as for a plain `AuthzQuery`.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            principal: Option<EntityRef>,
            #[serde(default)]
            session: Option<String>,
            action: EntityRef,
            resource: EntityRef,
            #[serde(default)]
            context: serde_json::Map<String, serde_json::Value>,
            #[serde(default)]
            entities: Vec<serde_json::Value>,
            #[serde(default)]
            explain: bool,
        }
        let w = Wire::deserialize(d)?;
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

/// `POST /v1/authorize`.
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
    if q.explain {
        let body = explain(app.clone(), q, session.as_ref()).await?;
        if let Some(asked) = &audited {
            super::audited::record(&app, &served, asked, session.as_ref(), &body.decision).await?;
        }
        return Ok(body.into_response());
    }
    let body = decide_one(app.clone(), q, session.as_ref()).await?;
    if let Some(asked) = &audited {
        super::audited::record(&app, &served, asked, session.as_ref(), &body).await?;
    }
    Ok(body.into_response())
}

/// A decision with `"explain": true`: the usual answer plus the explanation.
#[derive(Debug, Serialize)]
pub struct ExplainedBody {
    /// The decision, as without `explain`.
    #[serde(flatten)]
    pub decision: DecisionBody,
    /// Why: the deciding policies with where they are written, or for a default deny the
    /// nearest permits and which of their conditions failed.
    pub explanation: serde_json::Value,
}

async fn explain(
    app: Arc<AppState>,
    q: AuthzQuery,
    session: Option<&portcullis_store::Session>,
) -> Result<Json<ExplainedBody>, ApiError> {
    let served = app.served();
    let (mut q, links) = crate::manage::cache::stored_principal(&app, &served, q).await?;
    if let Some(s) = session {
        crate::auth::session_overlay(&served, s, &mut q);
    }
    let inline = Inline::parse_cached(q.entities, served.snapshot.schema(), Some(&served.inline))?;
    let s = &served.snapshot;
    let principal = served.resolver.entity(s, &q.principal, Slot::Principal)?;
    let action = served.resolver.action(s, &q.action)?;
    let resource = served.resolver.entity(s, &q.resource, Slot::Resource)?;
    let context = context_refs(&q.context);
    let roots = Roots {
        principal: &principal,
        action: &action,
        resource: &resource,
        context: &context,
    };
    let entities = served.slice(roots, &inline)?;
    let request = s.request_with(principal, action, resource, q.context)?;
    let prepared = portcullis_engine::Prepared { request, entities };
    let e = match &links {
        Some(set) => s.explain_with(&prepared, set),
        None => s.explain(&prepared),
    };
    app.metrics.decision(&e.decision);
    let explanation = serde_json::json!({
        "summary": e.summary,
        "reasons": e.decision.reasons,
        "nearest": e.nearest,
    });
    Ok(Json(ExplainedBody {
        decision: DecisionBody::new(e.decision),
        explanation,
    }))
}

/// `POST /v1/permissions` body: what may `principal` do on `resource`?
#[derive(Debug, Deserialize)]
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
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Entities the decisions need, in Cedar's JSON entity format.
    #[serde(default)]
    pub entities: Vec<serde_json::Value>,
}

/// `POST /v1/permissions`: every action the schema lets the principal ask about the resource,
/// decided, and the features they make up, so a UI can show or hide its buttons in one call.
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
    // Borrow the stored-user lookup of `/v1/authorize`: it needs a query, any action will do.
    let q = AuthzQuery {
        principal: p.principal,
        action: EntityRef::Text(String::new()),
        resource,
        context: p.context,
        entities: p.entities,
        explain: false,
    };
    let (q, links) = crate::manage::cache::stored_principal(&app, &served, q).await?;
    let inline = Inline::parse_cached(q.entities, served.snapshot.schema(), Some(&served.inline))?;
    let s = &served.snapshot;
    let principal = served.resolver.entity(s, &q.principal, Slot::Principal)?;
    if let Some(t) = resource_type {
        let probe = EntityRef::Object {
            ty: t,
            id: String::new(),
        };
        let ty = served
            .resolver
            .entity(s, &probe, Slot::Resource)?
            .type_name()
            .clone();
        // The principal with its ancestors (any action will do for that) and every action.
        let Some(any) = s
            .schema()
            .actions_for_principal_and_resource(principal.type_name(), &ty)
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
        let context = context_refs(&q.context);
        let roots = Roots {
            principal: &principal,
            action: &any,
            resource: &principal,
            context: &context,
        };
        let slice = served.slice(roots, &inline)?;
        let actions = s
            .schema()
            .action_entities()
            .map_err(|e| RequestError::Entities(e.to_string()))?;
        let slice = slice
            .add_entities(actions.iter().cloned(), None)
            .map_err(|e| RequestError::Entities(e.to_string()))?;
        let policies = links.as_deref().unwrap_or(s.policy_set());
        let out = s.permissions_for_type(&principal, &ty, &q.context, slice, policies)?;
        return Ok(Json(out));
    }
    let resource = served.resolver.entity(s, &q.resource, Slot::Resource)?;
    let out = s.permissions_by(&principal, &resource, |action| {
        let check = Check {
            principal: &q.principal,
            action: &EntityRef::Object {
                ty: action.type_name().to_string(),
                id: action.id().unescaped().to_owned(),
            },
            resource: &q.resource,
            context: q.context.clone(),
        };
        let d = match &links {
            Some(set) => crate::manage::cache::decide_linked(&served, check, &inline, set),
            None => decide(&served, check, &inline),
        }?;
        app.metrics.decision(&d);
        Ok(d)
    });
    Ok(Json(out))
}

async fn decide_one(
    app: Arc<AppState>,
    q: AuthzQuery,
    session: Option<&portcullis_store::Session>,
) -> Result<Json<DecisionBody>, ApiError> {
    let started = Instant::now();
    let served = app.served();
    // Stored users without grants asking without inline entities: their cached slices. Not
    // for a session's principal: the session adds to the context and to its user's entity
    // (`session_overlay`), which those slices and their kept decisions know nothing of.
    let fast = if session.is_none() {
        crate::manage::cache::decide_stored_cached(&app, &served, &q).await
    } else {
        Ok(None)
    };
    match fast {
        Ok(Some(d)) => {
            app.metrics.latency(started.elapsed());
            app.metrics.decision(&d);
            return Ok(Json(DecisionBody::new(d)));
        }
        Ok(None) => {}
        Err(e) => {
            app.metrics.rejected();
            return Err(e);
        }
    }
    // Stored users: their entities from the user store, their visitor grants linked.
    let (mut q, links) = crate::manage::cache::stored_principal(&app, &served, q).await?;
    if let Some(s) = session {
        crate::auth::session_overlay(&served, s, &mut q);
    }
    let result =
        Inline::parse_cached(q.entities, served.snapshot.schema(), Some(&served.inline)).and_then(|inline| {
            let check = Check {
                principal: &q.principal,
                action: &q.action,
                resource: &q.resource,
                context: q.context,
            };
            match &links {
                Some(set) => crate::manage::cache::decide_linked(&served, check, &inline, set),
                None => decide(&served, check, &inline),
            }
        });
    app.metrics.latency(started.elapsed());
    match result {
        Ok(d) => {
            app.metrics.decision(&d);
            Ok(Json(DecisionBody::new(d)))
        }
        Err(e) => {
            app.metrics.rejected();
            Err(e.into())
        }
    }
}

/// One check of a batch.
#[derive(Debug, Deserialize)]
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
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Entities only this check needs.
    #[serde(default)]
    pub entities: Vec<serde_json::Value>,
}

/// `POST /v1/authorize/batch` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The checks, answered in order.
    pub checks: Vec<BatchCheck>,
    /// Entities every check may use.
    #[serde(default)]
    pub entities: Vec<serde_json::Value>,
}

/// One answer of a batch: a decision, or the error of that check alone.
#[derive(Debug, Serialize)]
pub struct BatchResult {
    /// The client's id.
    pub id: serde_json::Value,
    /// The decision, when the check was valid.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionBody>,
    /// The error envelope's body, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// `POST /v1/authorize/batch` answer.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// The policy version every check was decided under.
    pub version: Arc<str>,
    /// One answer per check, in order.
    pub results: Vec<BatchResult>,
}

/// `POST /v1/authorize/batch`: every check under one snapshot.
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
    let started = Instant::now();
    let served = app.served();
    let schema = served.snapshot.schema();
    let shared = Inline::parse_cached(req.entities.clone(), schema, Some(&served.inline))?;
    let (mut allow, mut deny, mut errored) = (0, 0, 0);
    let mut results = Vec::with_capacity(req.checks.len());
    let mut cache = BatchSlices::new();
    for c in req.checks {
        // A stored user as principal decides as in `/v1/authorize`: its facts and grants from
        // the store, over the batch's and the check's entities.
        let stored = crate::manage::cache::stored_facts(&app, &served, &c.principal).await?;
        let audited = super::audited::wanted(&app, &served, &c.action).then(|| super::audited::Asked {
            principal: c.principal.clone(),
            action: c.action.clone(),
            resource: c.resource.clone(),
            context: c.context.clone(),
            via: "batch",
        });
        let check = Check {
            principal: &c.principal,
            action: &c.action,
            resource: &c.resource,
            context: c.context,
        };
        let result = match stored {
            Some((mut facts, links)) => {
                let mut values = req.entities.clone();
                values.extend(c.entities);
                let named =
                    crate::manage::cache::named_companies(&app, &served, &values, &c.resource, &facts)
                        .await?;
                facts.extend(named);
                crate::manage::entities::merge(&mut values, facts);
                Inline::parse_cached(values, schema, Some(&served.inline)).and_then(|own| match &links {
                    Some(set) => crate::manage::cache::decide_linked(&served, check, &own, set),
                    None => decide(&served, check, &own),
                })
            }
            None if c.entities.is_empty() => decide_cached(&served, check, &shared, Some(&mut cache)),
            None => {
                let mut values = req.entities.clone();
                values.extend(c.entities);
                Inline::parse_cached(values, schema, Some(&served.inline))
                    .and_then(|own| decide(&served, check, &own))
            }
        };
        results.push(match result {
            Ok(d) => {
                if d.allowed() {
                    allow += 1;
                } else {
                    deny += 1;
                }
                if !d.errors.is_empty() {
                    errored += 1;
                }
                let body = DecisionBody::new(d);
                if let Some(asked) = &audited {
                    super::audited::record(&app, &served, asked, None, &body).await?;
                }
                BatchResult {
                    id: c.id,
                    decision: Some(body),
                    error: None,
                }
            }
            Err(e) => {
                app.metrics.rejected();
                BatchResult {
                    id: c.id,
                    decision: None,
                    error: Some(ApiError::from(e).body()["error"].clone()),
                }
            }
        });
    }
    app.metrics.decisions(allow, deny, errored);
    app.metrics.latency(started.elapsed());
    Ok(Json(BatchResponse {
        version: served.snapshot.version_arc(),
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::{decision_id, mix};

    #[test]
    fn decision_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| decision_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(u.get_version_num(), 4, "{id}");
        }
    }

    #[test]
    fn the_mix_is_a_bijection_on_a_sample() {
        let outs: std::collections::HashSet<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(outs.len(), 100_000);
        assert_ne!(mix(1), 1);
    }
}
