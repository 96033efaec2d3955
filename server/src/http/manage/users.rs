//! `/v1/users…` and `/v1/companies/{id}`: create, read, edit, change role and scopes,
//! deactivate, reactivate, delete, move, accessible companies. Each call is decided by the
//! engine (principal = the caller, resource = the target user, or the prospective user of a
//! creation) before the gate writes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_engine::facts::UserFacts;
use portcullis_store::{AccessibleCompany, NewUser, User, UserPatch, UserQuery};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::json::ApiJson;
use crate::manage::entities;
use crate::manage::governance::{
    CreateApiKey, CreateUser, Deactivate, DeleteUser, ListApiKeys, MoveUser, Reactivate, ReadUser,
    RevokeApiKey, SetCompanies, SetRole, UpdateUser,
};
use crate::manage::targets::{assignment, decide_on_user, parts, prospective, user_resource, visible};
use crate::manage::{store_error, Caller};
use crate::state::AppState;

fn invalid(e: serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_body", crate::lower_first(&e.to_string()))
}

/// `GET /v1/users?company=&include_inactive=`: the users of a company (the caller's by
/// default) that the caller may read.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Company (the caller's by default; rows the caller may not read are left out).
    pub company: Option<String>,
    /// Include deactivated users.
    #[serde(default)]
    pub include_inactive: bool,
    /// Cursor.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// `GET /v1/users`: each row decided as `user.read`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let reads = crate::manage::reads::Reads::new(&app, &caller).await?;
    let company = q.company.unwrap_or_else(|| caller.company.clone());
    let page = reads
        .m
        .gate
        .read()
        .list_users(&UserQuery {
            company: Some(company),
            include_inactive: q.include_inactive,
            after: q.after,
            limit: q.limit,
        })
        .await
        .map_err(store_error)?;
    // Each row is decided (`user.read`); `next` still pages through the company's users.
    let users = reads.users(page.items).await?;
    Ok(Json(json!({ "users": users, "next": page.next })))
}

/// `POST /v1/users`: a `NewUser` (company defaults to the caller's), decided with the user
/// as it will be.
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (m, served) = parts(&app)?;
    if let Some(o) = body.as_object_mut() {
        o.entry("company").or_insert_with(|| json!(caller.company));
    }
    let mut new: NewUser = serde_json::from_value(body).map_err(invalid)?;
    let id = new
        .id
        .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
        .clone();
    let facts = UserFacts {
        company: new.company.clone(),
        role: new.role.clone(),
        active: true,
        flags: new.flags.clone(),
        addons: new.addons.clone(),
        group: new.group.clone(),
        attrs: new.attrs.clone().into_iter().collect(),
        login: Some(new.login.clone()),
        accessible: Vec::new(),
    };
    let resource = prospective(&m, &served, &id, &facts).await?;
    let context = assignment(&served, &facts);
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, CreateUser { new }, resource, context)
        .await?;
    let user = m.gate.create_user(&m.cache, ok).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /v1/users/{id}` (`user.read`).
pub async fn read(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            &caller,
            ReadUser { id },
            user_resource(&served, &target),
            Map::new(),
        )
        .await?;
    Ok(Json(m.gate.read_user(ok).await?))
}

fn changes_assignment(p: &UserPatch) -> bool {
    p.role.is_some() || p.flags.is_some() || p.addons.is_some() || p.group.is_some() || p.attrs.is_some()
}

/// The operations of an assignment change, one per kind of change, and the user as it will
/// be: `user.set_role`, `user.set_flags`, `user.set_addons`, `user.set_group`, and
/// `user.set_attr.<name>` for each attribute whose value changes.
fn assignment_changes(old: &UserFacts, patch: &UserPatch) -> (Vec<String>, UserFacts) {
    let mut new = old.clone();
    let mut ops: Vec<String> = Vec::new();
    if let Some(r) = &patch.role {
        new.role = r.clone();
        ops.push("user.set_role".to_owned());
    }
    if let Some(f) = &patch.flags {
        new.flags = f.clone();
        ops.push("user.set_flags".to_owned());
    }
    if let Some(a) = &patch.addons {
        new.addons = a.clone();
        ops.push("user.set_addons".to_owned());
    }
    if let Some(g) = &patch.group {
        new.group = g.clone();
        ops.push("user.set_group".to_owned());
    }
    if let Some(attrs) = &patch.attrs {
        let reserved = |k: &str| entities::RESERVED_USER_ATTRS.contains(&k);
        let mut names: Vec<&String> = attrs.keys().chain(old.attrs.keys()).collect();
        names.sort();
        names.dedup();
        let before = ops.len();
        for name in names {
            if !reserved(name) && attrs.get(name) != old.attrs.get(name) {
                ops.push(format!("user.set_attr.{name}"));
            }
        }
        // Setting attributes to what they are is still asking to set them: decided as such,
        // so the answer does not tell who may change them from who may not.
        if ops.len() == before {
            ops.extend(
                attrs
                    .keys()
                    .filter(|k| !reserved(k))
                    .map(|k| format!("user.set_attr.{k}")),
            );
        }
        new.attrs.retain(|k, _| reserved(k));
        new.attrs.extend(
            attrs
                .iter()
                .filter(|(k, _)| !reserved(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    (ops, new)
}

async fn set_role_with(
    app: &AppState,
    caller: &Caller,
    id: String,
    patch: UserPatch,
) -> Result<User, ApiError> {
    let (m, served) = parts(app)?;
    let target = visible(app, caller, &id).await?;
    let (ops, new) = assignment_changes(&target.user, &patch);
    // The user as it will be must fit the schema and the folder's attributes (types, allowed
    // values, nothing derived or undeclared), as a created one must, before anything is decided.
    prospective(&m, &served, &id, &new).await?;
    let context = assignment(&served, &new);
    let mut proof = None;
    // One decision per kind of change, each as the folder's own action for it, each with the
    // user as it will be after the whole call.
    for op in &ops {
        let r = user_resource(&served, &target);
        let change = SetRole {
            id: id.clone(),
            patch: patch.clone(),
        };
        proof = Some(
            m.gate
                .decide_as(&served, &m.cache, caller, op, change, r, context.clone())
                .await?,
        );
    }
    match proof {
        Some(ok) => m.gate.set_role(&m.cache, ok).await,
        // Nothing changes: answered as a read of the user.
        None => {
            let r = user_resource(&served, &target);
            let ok = m
                .gate
                .decide(&served, &m.cache, caller, ReadUser { id }, r, Map::new())
                .await?;
            m.gate.read_user(ok).await
        }
    }
}

/// `PATCH /v1/users/{id}`: a `UserPatch`. Login, email and name are `user.update`; role,
/// flags, add-ons, group and each attribute are decided one by one (`user.set_role`,
/// `user.set_flags`, `user.set_addons`, `user.set_group`, `user.set_attr.<name>`), each with
/// the user as it will be.
pub async fn update(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let patch: UserPatch = serde_json::from_value(body).map_err(invalid)?;
    if changes_assignment(&patch) {
        let profile = UserPatch {
            login: patch.login.clone(),
            email: patch.email.clone(),
            name: patch.name.clone(),
            ..UserPatch::default()
        };
        if profile != UserPatch::default() {
            return Err(ApiError::bad_request(
                "mixed_patch",
                "change the profile (login, email, name) and the assignment (role, flags, add-ons, group, attrs) in separate calls",
            ));
        }
        return Ok(Json(set_role_with(&app, &caller, id, patch).await?).into_response());
    }
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let rules = crate::auth::rules(&served);
    // A new address, where the folder verifies changes, waits for the link sent to it.
    let mut patch = patch;
    let pending = match &patch.email {
        Some(Some(email)) if rules.verify_email_changes => {
            let current = m.gate.read().get_user(&id).await.map_err(store_error)?.email;
            if current.as_deref() == Some(email.as_str()) {
                None
            } else {
                patch.email.take().flatten()
            }
        }
        _ => None,
    };
    let Some(email) = pending else {
        let ok = m
            .gate
            .decide(
                &served,
                &m.cache,
                &caller,
                UpdateUser { id, patch },
                user_resource(&served, &target),
                Map::new(),
            )
            .await?;
        return Ok(Json(m.gate.update_user(&m.cache, ok).await?).into_response());
    };
    // Decided as the change it is (the address included), written without the address.
    let asked = UserPatch {
        email: Some(Some(email)),
        ..patch
    };
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            &caller,
            UpdateUser {
                id: id.clone(),
                patch: asked,
            },
            user_resource(&served, &target),
            Map::new(),
        )
        .await?;
    let ttl = time::Duration::minutes(i64::from(rules.reset_link_minutes));
    let Some((email, token)) = m.gate.request_email_change(&ok, ttl).await? else {
        return Err(ApiError::internal("an e-mail change without an address"));
    };
    let rest = ok.without_email();
    let user = if rest.changes_nothing() {
        m.gate.read().get_user(&id).await.map_err(store_error)?
    } else {
        m.gate.update_user(&m.cache, rest).await?
    };
    m.auth
        .deliver_email_change(&user, &email, &token, rules.reset_link_minutes)
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "user": user,
            "pending_email": email,
            "valid_minutes": rules.reset_link_minutes,
            "message": "the new address is in force once the link sent to it is used",
        })),
    )
        .into_response())
}

/// `PUT /v1/users/{id}/role` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// The new role.
    pub role: String,
}

/// `PUT /v1/users/{id}/role` (`user.set_role`), decided with the user as it will be.
pub async fn set_role(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<User>, ApiError> {
    let patch = UserPatch {
        role: Some(body.role),
        ..UserPatch::default()
    };
    Ok(Json(set_role_with(&app, &caller, id, patch).await?))
}

/// `POST /v1/users/{id}/deactivate` (`user.deactivate`): the user is then denied everything.
pub async fn deactivate(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let r = user_resource(&served, &target);
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, Deactivate { id }, r, Map::new())
        .await?;
    Ok(Json(m.gate.deactivate(&m.cache, ok).await?))
}

/// `POST /v1/users/{id}/reactivate` (`user.reactivate`), within the company's user limit.
pub async fn reactivate(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    // Decided on the user as it will be: an inactive resource is no obstacle to managing it.
    let mut facts = target.user.clone();
    facts.active = true;
    let r = prospective(&m, &served, &id, &facts).await?;
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, Reactivate { id }, r, Map::new())
        .await?;
    Ok(Json(m.gate.reactivate(&m.cache, ok).await?))
}

/// `DELETE /v1/users/{id}?transfer_to=` query.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    /// The user of the same company who receives the deleted user's records.
    pub transfer_to: Option<String>,
}

/// `DELETE /v1/users/{id}` (`user.delete`): the audit history stays. The answer names who
/// receives the user's records (`transfer_to`), and the deletion is logged as the
/// `portcullis::records` event for the application that owns the records.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let r = user_resource(&served, &target);
    let mut context = Map::new();
    if let Some(t) = &q.transfer_to {
        context.insert(
            "transfer_to".to_owned(),
            json!({ "__entity": { "type": served.snapshot.user_type(), "id": t } }),
        );
    }
    let op = DeleteUser {
        id,
        transfer_to: q.transfer_to,
    };
    let ok = m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    let d = m.gate.delete_user(&m.cache, ok).await?;
    tracing::info!(
        target: "portcullis::records",
        user = %d.user.id,
        transfer_to = ?d.transfer_to,
        "user deleted: its records go to `transfer_to`, or are deleted when none"
    );
    Ok(Json(json!({ "deleted": d.user, "transfer_to": d.transfer_to })))
}

/// `POST /v1/users/{id}/move` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The company of the same enterprise to move to.
    pub company: String,
}

/// `POST /v1/users/{id}/move`: decided as `user.remove` of the user where it is and
/// `user.move` of the user as it will be in the destination (context: the user as it will be
/// and the destination as `target`); the store keeps moves inside one enterprise and within
/// the enterprise's user limit.
pub async fn move_user(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let destination = json!({ "__entity": { "type": served.snapshot.company_type(), "id": body.company } });
    // "The user will be removed from the current company" (the load planner): the caller must be able to
    // remove it where it is, not only to place it in the destination.
    let here = user_resource(&served, &target);
    let removal = DeleteUser {
        id: id.clone(),
        transfer_to: None,
    };
    let mut removal_context = Map::new();
    removal_context.insert("target".to_owned(), destination.clone());
    m.gate
        .decide_as(
            &served,
            &m.cache,
            &caller,
            "user.remove",
            removal,
            here,
            removal_context,
        )
        .await?;
    let mut facts = target.user.clone();
    facts.company = body.company.clone();
    let r = prospective(&m, &served, &id, &facts).await?;
    let mut context = assignment(&served, &facts);
    context.insert("target".to_owned(), destination);
    let op = MoveUser {
        id,
        company: body.company,
    };
    let ok = m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    Ok(Json(m.gate.move_user(&m.cache, ok).await?))
}

/// `PUT /v1/users/{id}/companies` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompaniesBody {
    /// The companies the user may switch to, with its role there.
    pub companies: Vec<AccessibleCompany>,
}

/// `PUT /v1/users/{id}/companies` (`user.set_companies`): decided once per listed company
/// with the user as it would be there, holding its role there, and once on the user where it
/// is; the context also names every listed company (`companies`).
pub async fn set_companies(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompaniesBody>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let company_type = served.snapshot.company_type();
    let listed: Vec<Value> = body
        .companies
        .iter()
        .map(|a| json!({ "__entity": { "type": company_type, "id": a.company } }))
        .collect();
    // Access to a company gives the user a role there: each is decided as giving that role
    // to the user in that company, so a caller reaches no company (and gives no role) it could
    // not assign, besides the decision on the user where it is.
    for a in &body.companies {
        let mut facts = target.user.clone();
        facts.company = a.company.clone();
        if let Some(role) = &a.role {
            facts.role = role.clone();
        }
        let r = prospective(&m, &served, &id, &facts).await?;
        let mut context = assignment(&served, &facts);
        context.insert("companies".to_owned(), Value::Array(listed.clone()));
        let op = SetCompanies {
            id: id.clone(),
            companies: body.companies.clone(),
        };
        m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    }
    let mut context = assignment(&served, &target.user);
    context.insert("companies".to_owned(), Value::Array(listed));
    let op = SetCompanies {
        id,
        companies: body.companies,
    };
    let r = user_resource(&served, &target);
    let ok = m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    Ok(Json(m.gate.set_companies(&m.cache, ok).await?))
}

/// `GET /v1/companies/{id}` (`company.read`); a company the caller may not read is answered
/// as a missing one.
pub async fn company(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<portcullis_store::Company>, ApiError> {
    let reads = crate::manage::reads::Reads::new(&app, &caller).await?;
    Ok(Json(reads.company(&id).await?))
}

/// `POST /v1/users/{id}/api-keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// A label.
    #[serde(default = "default_key_name")]
    pub name: String,
}

fn default_key_name() -> String {
    "api".to_owned()
}

/// `GET /v1/users/{id}/api-keys` (`user.read`): the keys, never their secrets.
pub async fn list_keys(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, ListApiKeys { user: id.clone() }).await?;
    Ok(Json(json!({ "api_keys": m.gate.list_api_keys(ok).await? })))
}

/// `POST /v1/users/{id}/api-keys` (`user.update`): the key is answered once.
pub async fn create_key(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<KeyBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let r = user_resource(&served, &target);
    let op = CreateApiKey {
        user: id,
        name: body.name,
        session: caller.session.as_ref().map(|s| s.id.clone()),
    };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    let k = m.gate.create_api_key(&m.cache, ok).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "api_key": k.key, "key": k.secret.expose() })),
    ))
}

/// `DELETE /v1/users/{id}/api-keys/{key}` (`user.update`).
pub async fn revoke_key(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, key)): ApiPath<(String, String)>,
) -> Result<Json<portcullis_store::ApiKey>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let r = user_resource(&served, &target);
    let op = RevokeApiKey { user: id, id: key };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    Ok(Json(m.gate.revoke_api_key(&m.cache, ok).await?))
}
