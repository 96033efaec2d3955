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

use super::entities::{self, Stored};
use super::governance::{
    CreateApiKey, CreateUser, Deactivate, DeleteUser, ListApiKeys, MoveUser, Reactivate, ReadUser, Resource,
    RevokeApiKey, SetCompanies, SetRole, UpdateUser,
};
use super::{manage, store_error, Caller, Manage};
use crate::api::error::ApiError;
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::json::ApiJson;
use crate::manage::governance::{Authorized, Governed};
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
    super::reads::Reads::new(app, caller).await?.user(id).await
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

fn attr_set(attrs: &Map<String, Value>, key: &str) -> Value {
    attrs.get(key).cloned().unwrap_or_else(|| json!([]))
}

/// The `Assignment` context of `user.create`, `user.invite` and `user.set_role`: the role,
/// flags and scope the user will have. `actor_locations` are the locations of the given
/// actors; when the caller does not give them, an unknown location stands in, so only a
/// caller holding the actors themselves (or every location) passes `scope.assign-within`.
pub fn assignment(
    served: &Served,
    role: &str,
    flags: &[String],
    attrs: &Map<String, Value>,
    actor_locations: Option<Vec<Value>>,
) -> Map<String, Value> {
    let s = &served.snapshot;
    let actors = attr_set(attrs, "actors");
    let has_actors = actors.as_array().is_some_and(|a| !a.is_empty());
    let actor_locations = match actor_locations {
        Some(v) => Value::Array(v),
        None if has_actors => {
            let ty = format!("{}::Location", s.namespace());
            json!([{ "__entity": { "type": ty, "id": "(unknown location)" } }])
        }
        None => json!([]),
    };
    let mut c = Map::new();
    c.insert(
        "role".to_owned(),
        json!({ "__entity": { "type": s.role_type(), "id": role } }),
    );
    c.insert("flags".to_owned(), json!(flags));
    c.insert(
        "scope_all".to_owned(),
        attrs.get("scope_all").cloned().unwrap_or(json!(false)),
    );
    c.insert("locations".to_owned(), attr_set(attrs, "locations"));
    c.insert("actors".to_owned(), actors);
    c.insert("actor_locations".to_owned(), actor_locations);
    c
}

fn take_actor_locations(body: &mut Value) -> Option<Vec<Value>> {
    body.as_object_mut()
        .and_then(|o| o.remove("actor_locations"))
        .and_then(|v| v.as_array().cloned())
}

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
    let reads = super::reads::Reads::new(&app, &caller).await?;
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

/// `POST /v1/users`: a `NewUser` (company defaults to the caller's), plus optional
/// `actor_locations` for the scope check.
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (m, served) = parts(&app)?;
    let actor_locations = take_actor_locations(&mut body);
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
    let context = assignment(&served, &new.role, &new.flags, &new.attrs, actor_locations);
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

async fn set_role_with(
    app: &AppState,
    caller: &Caller,
    id: String,
    patch: UserPatch,
    actor_locations: Option<Vec<Value>>,
) -> Result<User, ApiError> {
    let (m, served) = parts(app)?;
    let target = visible(app, caller, &id).await?;
    let user = m.gate.read().get_user(&id).await.map_err(store_error)?;
    let role = patch.role.clone().unwrap_or(user.role.clone());
    let flags = patch.flags.clone().unwrap_or(user.flags.clone());
    let attrs = patch.attrs.clone().unwrap_or(user.attrs.clone());
    let context = assignment(&served, &role, &flags, &attrs, actor_locations);
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            caller,
            SetRole { id, patch },
            user_resource(&served, &target),
            context,
        )
        .await?;
    m.gate.set_role(&m.cache, ok).await
}

/// `PATCH /v1/users/{id}`: a `UserPatch`. Login, email and name are `user.update`; role,
/// flags (isolation), add-ons, group and attributes (scopes, customer access) are
/// `user.set_role`, decided with the resulting assignment.
pub async fn update(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<User>, ApiError> {
    let actor_locations = take_actor_locations(&mut body);
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
        return Ok(Json(
            set_role_with(&app, &caller, id, patch, actor_locations).await?,
        ));
    }
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
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
    Ok(Json(m.gate.update_user(&m.cache, ok).await?))
}

/// `PUT /v1/users/{id}/role` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// The new role.
    pub role: String,
}

/// `PUT /v1/users/{id}/role` (`user.set_role`).
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
    Ok(Json(set_role_with(&app, &caller, id, patch, None).await?))
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
    let op = DeleteUser {
        id,
        transfer_to: q.transfer_to,
    };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
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

/// `POST /v1/users/{id}/move`: decided as `user.delete` of the user where it is and
/// `user.create` of the user in the destination (the caller must be able to do both); the store keeps moves inside one enterprise
/// and within the destination's user limit.
pub async fn move_user(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let user = m.gate.read().get_user(&id).await.map_err(store_error)?;
    // "The user will be removed from the current company" (004): the caller must be able to
    // remove it where it is, not only to create it in the destination.
    let here = user_resource(&served, &target);
    let removal = DeleteUser {
        id: id.clone(),
        transfer_to: None,
    };
    m.gate
        .decide(&served, &m.cache, &caller, removal, here, Map::new())
        .await?;
    let mut facts = target.user.clone();
    facts.company = body.company.clone();
    let r = prospective(&m, &served, &id, &facts).await?;
    let context = assignment(&served, &user.role, &user.flags, &user.attrs, None);
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

/// `PUT /v1/users/{id}/companies` (`user.set_role`, with the user's current assignment, and
/// once per listed company with the user as it would be there, holding its role there).
pub async fn set_companies(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompaniesBody>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let user = m.gate.read().get_user(&id).await.map_err(store_error)?;
    // Access to a company gives the user a role there: each is decided as giving that role
    // to the user in that company, so a caller reaches no company (and gives no role) it could
    // not assign, besides the decision on the user where it is.
    for a in &body.companies {
        let role = a.role.clone().unwrap_or_else(|| user.role.clone());
        let mut facts = target.user.clone();
        facts.company = a.company.clone();
        facts.role = role.clone();
        let r = prospective(&m, &served, &id, &facts).await?;
        let context = assignment(&served, &role, &user.flags, &user.attrs, None);
        let op = SetCompanies {
            id: id.clone(),
            companies: body.companies.clone(),
        };
        m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    }
    let context = assignment(&served, &user.role, &user.flags, &user.attrs, None);
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
    let reads = super::reads::Reads::new(&app, &caller).await?;
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
