//! The targets of management decisions: the stored user a call is about, the user an
//! invitation or a sign-in link would make, a company with its ancestors, and the context
//! of a decision that gives a user something. Shared by the management and sign-in adapters
//! and by [`super::reads`].

use std::str::FromStr;
use std::sync::Arc;

use axum::http::StatusCode;
use portcullis_engine::facts::UserFacts;
use portcullis_store::{Invitation, VisitorGrant};
use serde_json::{json, Map, Value};

use super::entities::{self, Stored};
use super::governance::{Authorized, Governed, Resource};
use super::{manage, store_error, Caller, Manage};
use crate::http::error::ApiError;
use crate::state::{AppState, Served};

/// The store and the bundle of one call.
pub fn parts(app: &AppState) -> Result<(Arc<Manage>, Arc<Served>), ApiError> {
    Ok((manage(app)?.clone(), app.served()))
}

/// A stored user, or 404.
pub async fn stored(m: &Manage, id: &str) -> Result<Arc<Stored>, ApiError> {
    m.cache
        .get(m.gate.read(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("user `{id}` not found"),
            )
        })
}

/// A stored user the caller may read (`user.read`), or the 404 of a missing one: the
/// target of every call on a user id, so no id of another tenant can be probed.
pub async fn visible(app: &AppState, caller: &Caller, id: &str) -> Result<Arc<Stored>, ApiError> {
    crate::manage::reads::Reads::new(app, caller)
        .await?
        .user(id)
        .await
}

/// The resource of a decision on a stored user.
pub fn user_resource(served: &Served, u: &Stored) -> Resource {
    Resource {
        ty: served.snapshot.user_type(),
        id: u.id.clone(),
        entities: entities::values(&served.snapshot, &u.id, &u.user, &u.chain),
        target: format!("user:{}", u.id),
    }
}

/// Decides `op` on an existing stored user, with no context (reads, edits, keys, sessions):
/// the manager and the proof.
pub async fn decide_on_user<T: Governed>(
    app: &AppState,
    caller: &Caller,
    id: &str,
    op: T,
) -> Result<(Arc<Manage>, Authorized<T>), ApiError> {
    let (m, served) = parts(app)?;
    let target = visible(app, caller, id).await?;
    let r = user_resource(&served, &target);
    let ok = m
        .gate
        .decide(&served, &m.cache, caller, op, r, Map::new())
        .await?;
    Ok((m, ok))
}

/// The resource of a decision on a user that does not exist yet.
pub async fn prospective(m: &Manage, served: &Served, id: &str, f: &UserFacts) -> Result<Resource, ApiError> {
    let mut f = f.clone();
    entities::strip_reserved(&mut f);
    let f = &f;
    entities::writable(&served.snapshot, f).map_err(unfit)?;
    let chain = entities::company_chain(&m.gate.read(), &f.company)
        .await
        .map_err(store_error)?;
    let values = entities::values(&served.snapshot, id, f, &chain);
    entities::fits_schema(&served.snapshot, &values).map_err(unfit)?;
    Ok(Resource {
        ty: served.snapshot.user_type(),
        id: id.to_owned(),
        entities: values,
        target: format!("user:{id}"),
    })
}

/// 422 for a user or company that would not fit the folder's schema: nothing is written.
pub fn unfit(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unfit_attributes", message)
}

/// The entity a Cedar JSON value names (`{"__entity": {...}}` or `{"type", "id"}`).
fn entity_of(v: &Value) -> Option<cedar_policy::EntityUid> {
    let e = v.get("__entity").unwrap_or(v);
    let ty = e.get("type")?.as_str()?;
    let id = e.get("id")?.as_str()?;
    let ty = cedar_policy::EntityTypeName::from_str(ty).ok()?;
    Some(cedar_policy::EntityUid::from_type_name_and_id(
        ty,
        cedar_policy::EntityId::new(id),
    ))
}

fn entity_json(uid: &cedar_policy::EntityUid) -> Value {
    json!({ "__entity": { "type": uid.type_name().to_string(), "id": uid.id().unescaped() } })
}

/// The context of a decision that gives a user something: the user as it will be, computed
/// by the server from the store and the requested change, never from the caller's claims.
/// It offers the core facts (`role`, `flags`, `addons`, `group`), every stored attribute by
/// its own name, and the values `[management.derived]` derives from the held entities (e.g.
/// the locations of the actors the user will have); the decision keeps those its action's
/// context declares. An entity the server does not hold derives an unknown entity of the
/// declared type, which no caller holds.
pub fn assignment(served: &Served, user: &UserFacts) -> Map<String, Value> {
    let s = &served.snapshot;
    let mut c = Map::new();
    // The attributes as the user's entity will hold them: stored values, else defaults.
    let entity = entities::user_value(s, "", user);
    if let Some(Value::Object(attrs)) = entity.get("attrs") {
        for (k, v) in attrs {
            if !entities::RESERVED_USER_ATTRS.contains(&k.as_str()) {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c.insert(
        "role".to_owned(),
        json!({ "__entity": { "type": s.role_type(), "id": user.role } }),
    );
    c.insert("flags".to_owned(), json!(user.flags));
    c.insert("addons".to_owned(), json!(user.addons));
    if let Some(g) = &user.group {
        c.insert("group".to_owned(), json!(g));
    }
    let derived = s.model().map(|m| m.derived.as_slice()).unwrap_or_default();
    for d in derived {
        let ty = s.qualified_type(&d.ty);
        let named: Vec<&Value> = match user.attrs.get(&d.parents_of) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        let mut out: Vec<Value> = Vec::new();
        for v in named {
            let parents: Vec<Value> = entity_of(v)
                .map(|uid| served.entities.entities.ancestors(&uid))
                .unwrap_or_default()
                .iter()
                .filter(|p| p.type_name().to_string() == ty)
                .map(entity_json)
                .collect();
            if parents.is_empty() {
                out.push(json!({ "__entity": { "type": ty, "id": "(unknown)" } }));
            }
            for p in parents {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        c.insert(d.name.clone(), Value::Array(out));
    }
    c
}

/// A company as the resource of a decision, with its ancestors and, for grant decisions,
/// the requester's company and its ancestors.
pub async fn company_resource(
    m: &Manage,
    served: &Served,
    company: &str,
    requester: Option<&str>,
) -> Result<Resource, ApiError> {
    let s = &served.snapshot;
    let read = m.gate.read();
    let mut values: Vec<Value> = Vec::new();
    for c in std::iter::once(company).chain(requester) {
        let chain = entities::company_chain(&read, c).await.map_err(store_error)?;
        let vs = chain
            .iter()
            .map(|(id, f)| entities::company_value(s, id, f))
            .collect();
        entities::merge(&mut values, vs);
    }
    Ok(Resource {
        ty: s.company_type(),
        id: company.to_owned(),
        entities: values,
        target: format!("company:{company}"),
    })
}

/// The context of a grant decision: the requesting company.
pub fn requester_context(served: &Served, g: &VisitorGrant) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert(
        "requester".to_owned(),
        json!({ "__entity": { "type": served.snapshot.company_type(), "id": g.from_company } }),
    );
    c
}

/// The user an invitation would make, as the resource of its decisions.
pub fn invited_facts(inv: &Invitation) -> UserFacts {
    facts(
        &inv.company,
        &inv.role,
        &inv.flags,
        &inv.addons,
        &inv.group,
        &inv.attrs,
        &inv.email,
    )
}

/// The user an invitation of these fields would make.
pub fn facts(
    company: &str,
    role: &str,
    flags: &[String],
    addons: &[String],
    group: &Option<String>,
    attrs: &portcullis_store::Attrs,
    email: &str,
) -> UserFacts {
    UserFacts {
        company: company.to_owned(),
        role: role.to_owned(),
        active: true,
        flags: flags.to_vec(),
        addons: addons.to_vec(),
        group: group.clone(),
        attrs: attrs.clone().into_iter().collect(),
        // The login an accepted invitation gets unless the invitee chooses another.
        login: Some(email.to_owned()),
        accessible: Vec::new(),
    }
}
