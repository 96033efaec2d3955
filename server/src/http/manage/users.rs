//! `/v1/users…` and `/v1/companies/{id}`: create, read, edit, change role and scopes,
//! deactivate, reactivate, delete, move, accessible companies. Each call is decided by the
//! engine (principal = the caller, resource = the target user, or the prospective user of a
//! creation) before the gate writes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_engine::facts::UserFacts;
use portcullis_store::{self as store, UserPatch, UserQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::json::ApiJson;
use crate::http::openapi::ManageRefused;
use crate::manage::entities;
use crate::manage::governance::{
    CreateApiKey, CreateUser, Deactivate, DeleteUser, ListApiKeys, MoveUser, Reactivate, ReadUser,
    RevokeApiKey, SetCompanies, SetRole, UpdateUser,
};
use crate::manage::targets::{assignment, decide_on_user, parts, prospective, user_resource, visible};
use crate::manage::{store_error, Caller};
use crate::state::AppState;

use super::records::{self, AccessibleCompany, ApiKey, Company, User};

fn invalid(e: serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_body", crate::lower_first(&e.to_string()))
}

/// `GET /v1/users?company=&include_inactive=`: the users of a company (the caller's by
/// default) that the caller may read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Company (the caller's by default; rows the caller may not read are left out).
    pub company: Option<String>,
    /// Include deactivated users.
    #[serde(default)]
    pub include_inactive: bool,
    /// Cursor.
    pub after: Option<String>,
    /// Page size.
    // A u32, whose bound `format: int32` would put at 2^31 - 1.
    #[param(value_type = Option<u64>, maximum = 4294967295u32)]
    pub limit: Option<u32>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The users the caller may read.
    pub users: Vec<User>,
    /// The cursor of the next page (`?after=`); `null` on the last page.
    pub next: Option<String>,
}

/// The users of a company (the caller's by default) the caller may read, each row decided
///
/// `GET /v1/users`: each row decided as `user.read`.
#[utoipa::path(get, path = "/v1/users", description = super::decided("user.read"), params(ListQuery),
    responses((status = 200, description = "done", body = UserPage), ManageRefused))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<UserPage>, ApiError> {
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
    Ok(Json(UserPage {
        users: records::all(users),
        next: page.next,
    }))
}

/// `POST /v1/users` body: the user to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewUser)]
pub struct NewUserBody {
    /// Its id; a random UUID when absent.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub id: Option<String>,
    /// Its company; the caller's when absent (filled in before the body is read).
    #[schema(required = false, min_length = 1)]
    pub company: String,
    /// Login name.
    #[schema(min_length = 1)]
    pub login: String,
    /// Email.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub email: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Role in its company.
    #[schema(min_length = 1)]
    pub role: String,
    /// Flags.
    #[serde(default)]
    #[schema(schema_with = records::names)]
    pub flags: Vec<String>,
    /// Add-on features.
    #[serde(default)]
    #[schema(schema_with = records::names)]
    pub addons: Vec<String>,
    /// Permission group; the default group when absent.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub group: Option<String>,
    /// The stored attributes the folder's schema declares (Cedar JSON).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attrs: Map<String, Value>,
}

impl From<NewUserBody> for store::NewUser {
    fn from(b: NewUserBody) -> Self {
        let NewUserBody {
            id,
            company,
            login,
            email,
            name,
            role,
            flags,
            addons,
            group,
            attrs,
        } = b;
        store::NewUser {
            id,
            company,
            login,
            email,
            name,
            role,
            flags,
            addons,
            group,
            attrs,
        }
    }
}

/// Create a user
///
/// `POST /v1/users`: a `NewUser` (company defaults to the caller's), decided with the user
/// as it will be.
#[utoipa::path(post, path = "/v1/users", description = super::decided("user.create"), request_body = NewUserBody,
    responses((status = 201, description = "done", body = User), ManageRefused))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (m, served) = parts(&app)?;
    if let Some(o) = body.as_object_mut() {
        o.entry("company").or_insert_with(|| json!(caller.company));
    }
    let mut new: store::NewUser = serde_json::from_value::<NewUserBody>(body)
        .map_err(invalid)?
        .into();
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
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Read a user
///
/// `GET /v1/users/{id}` (`user.read`).
#[utoipa::path(get, path = "/v1/users/{id}", description = super::decided("user.read"), params(("id" = String, Path, description = "the user")),
    responses((status = 200, description = "done", body = User), ManageRefused))]
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
    Ok(Json(m.gate.read_user(ok).await?.into()))
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
) -> Result<store::User, ApiError> {
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

/// `PATCH /v1/users/{id}` body: the fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserPatch)]
pub struct UserPatchBody {
    /// New login.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub login: Option<String>,
    /// New email (`null` clears it).
    #[serde(default, deserialize_with = "records::present")]
    #[schema(value_type = Option<String>, min_length = 1)]
    pub email: Option<Option<String>>,
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New role.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub role: Option<String>,
    /// New flags (replacing).
    #[serde(default)]
    #[schema(schema_with = records::names_or_null)]
    pub flags: Option<Vec<String>>,
    /// New add-ons (replacing).
    #[serde(default)]
    #[schema(schema_with = records::names_or_null)]
    pub addons: Option<Vec<String>>,
    /// New group (`null` clears it).
    #[serde(default, deserialize_with = "records::present")]
    #[schema(value_type = Option<String>, min_length = 1)]
    pub group: Option<Option<String>>,
    /// New attributes (replacing).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attrs: Option<Map<String, Value>>,
}

impl From<UserPatchBody> for UserPatch {
    fn from(b: UserPatchBody) -> Self {
        let UserPatchBody {
            login,
            email,
            name,
            role,
            flags,
            addons,
            group,
            attrs,
        } = b;
        UserPatch {
            login,
            email,
            name,
            role,
            flags,
            addons,
            group,
            attrs,
        }
    }
}

/// What `PATCH /v1/users/{id}` answers when the new address waits for its link.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingEmailChange {
    /// The user, with every other change made.
    pub user: User,
    /// The new address, in force once the link sent to it is used.
    pub pending_email: String,
    /// How long the link is valid.
    pub valid_minutes: u32,
    /// What to tell the user.
    pub message: String,
}

/// Edit a user: login, email, name (`user.update`), or role, flags, add-ons, group, attrs (one decision per kind: `user.set_role`, `user.set_flags`, `user.set_addons`, `user.set_group`, `user.set_attr.<name>`)
///
/// `PATCH /v1/users/{id}`: a `UserPatch`. Login, email and name are `user.update`; role,
/// flags, add-ons, group and each attribute are decided one by one (`user.set_role`,
/// `user.set_flags`, `user.set_addons`, `user.set_group`, `user.set_attr.<name>`), each with
/// the user as it will be. A folder that verifies e-mail changes answers a new address with
/// 202: the link is sent.
#[utoipa::path(patch, path = "/v1/users/{id}", description = super::decided("user.update"), params(("id" = String, Path, description = "the user")),
    request_body = UserPatchBody,
    responses(
        (status = 200, description = "done", body = User),
        (status = 202, description = "the change is allowed; the new address waits for the link sent to it (`sign_in.verify_email_changes`)", body = PendingEmailChange),
        ManageRefused))]
pub async fn update(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let patch: UserPatch = serde_json::from_value::<UserPatchBody>(body)
        .map_err(invalid)?
        .into();
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
        let user: User = set_role_with(&app, &caller, id, patch).await?.into();
        return Ok(Json(user).into_response());
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
        let user: User = m.gate.update_user(&m.cache, ok).await?.into();
        return Ok(Json(user).into_response());
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
        Json(PendingEmailChange {
            user: user.into(),
            pending_email: email,
            valid_minutes: rules.reset_link_minutes,
            message: "the new address is in force once the link sent to it is used".to_owned(),
        }),
    )
        .into_response())
}

/// `PUT /v1/users/{id}/role` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// The new role.
    #[schema(min_length = 1)]
    pub role: String,
}

/// Change a user's role
///
/// `PUT /v1/users/{id}/role` (`user.set_role`), decided with the user as it will be.
#[utoipa::path(put, path = "/v1/users/{id}/role", description = super::decided("user.set_role"), params(("id" = String, Path, description = "the user")),
    request_body = RoleBody,
    responses((status = 200, description = "done", body = User), ManageRefused))]
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
    Ok(Json(set_role_with(&app, &caller, id, patch).await?.into()))
}

/// Deactivate a user (then denied everything)
///
/// `POST /v1/users/{id}/deactivate` (`user.deactivate`): the user is then denied everything.
#[utoipa::path(post, path = "/v1/users/{id}/deactivate", description = super::decided("user.deactivate"), params(("id" = String, Path, description = "the user")),
    responses((status = 200, description = "done", body = User), ManageRefused))]
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
    Ok(Json(m.gate.deactivate(&m.cache, ok).await?.into()))
}

/// Reactivate a user (within the user limit)
///
/// `POST /v1/users/{id}/reactivate` (`user.reactivate`), within the company's user limit.
#[utoipa::path(post, path = "/v1/users/{id}/reactivate", description = super::decided("user.reactivate"), params(("id" = String, Path, description = "the user")),
    responses((status = 200, description = "done", body = User), ManageRefused))]
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
    Ok(Json(m.gate.reactivate(&m.cache, ok).await?.into()))
}

/// `DELETE /v1/users/{id}?transfer_to=` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The user of the same company who receives the deleted user's records.
    pub transfer_to: Option<String>,
}

/// A deleted user and who receives its records.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedUser {
    /// The user as it was.
    pub deleted: User,
    /// The user of the same company who receives its records; `null`: they are deleted.
    pub transfer_to: Option<String>,
}

/// Delete a user (audit history kept; `?transfer_to=` names who receives its records)
///
/// `DELETE /v1/users/{id}` (`user.delete`): the audit history stays. The answer names who
/// receives the user's records (`transfer_to`), and the deletion is logged as the
/// `portcullis::records` event for the application that owns the records.
#[utoipa::path(delete, path = "/v1/users/{id}", description = super::decided("user.delete"), params(("id" = String, Path, description = "the user"), DeleteQuery),
    responses((status = 200, description = "the deleted user and the receiver", body = DeletedUser), ManageRefused))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<DeletedUser>, ApiError> {
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
    Ok(Json(DeletedUser {
        deleted: d.user.into(),
        transfer_to: d.transfer_to,
    }))
}

/// `POST /v1/users/{id}/move` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The company of the same enterprise to move to.
    #[schema(min_length = 1)]
    pub company: String,
}

/// Move a user to another company of its enterprise (and `user.remove` where it is)
///
/// `POST /v1/users/{id}/move`: decided as `user.remove` of the user where it is and
/// `user.move` of the user as it will be in the destination (context: the user as it will be
/// and the destination as `target`); the store keeps moves inside one enterprise and within
/// the enterprise's user limit.
#[utoipa::path(post, path = "/v1/users/{id}/move", description = super::decided("user.move"), params(("id" = String, Path, description = "the user")),
    request_body = MoveBody,
    responses((status = 200, description = "done", body = User), ManageRefused))]
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
    Ok(Json(m.gate.move_user(&m.cache, ok).await?.into()))
}

/// `PUT /v1/users/{id}/companies` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompaniesBody {
    /// The companies the user may switch to, with its role there.
    pub companies: Vec<AccessibleCompany>,
}

/// Set the companies a user may switch to
///
/// `PUT /v1/users/{id}/companies` (`user.set_companies`): decided once per listed company
/// with the user as it would be there, holding its role there, and once on the user where it
/// is; the context also names every listed company (`companies`).
#[utoipa::path(put, path = "/v1/users/{id}/companies", description = super::decided("user.set_companies"), params(("id" = String, Path, description = "the user")),
    request_body = CompaniesBody,
    responses((status = 200, description = "done", body = User), ManageRefused))]
pub async fn set_companies(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompaniesBody>,
) -> Result<Json<User>, ApiError> {
    let (m, served) = parts(&app)?;
    let companies: Vec<store::AccessibleCompany> = records::all(body.companies);
    let target = visible(&app, &caller, &id).await?;
    let company_type = served.snapshot.company_type();
    let listed: Vec<Value> = companies
        .iter()
        .map(|a| json!({ "__entity": { "type": company_type, "id": a.company } }))
        .collect();
    // Access to a company gives the user a role there: each is decided as giving that role
    // to the user in that company, so a caller reaches no company (and gives no role) it could
    // not assign, besides the decision on the user where it is.
    for a in &companies {
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
            companies: companies.clone(),
        };
        m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    }
    let mut context = assignment(&served, &target.user);
    context.insert("companies".to_owned(), Value::Array(listed));
    let op = SetCompanies { id, companies };
    let r = user_resource(&served, &target);
    let ok = m.gate.decide(&served, &m.cache, &caller, op, r, context).await?;
    Ok(Json(m.gate.set_companies(&m.cache, ok).await?.into()))
}

/// A company the caller may read (404 otherwise, as for a missing one)
///
/// `GET /v1/companies/{id}` (`company.read`); a company the caller may not read is answered
/// as a missing one.
#[utoipa::path(get, path = "/v1/companies/{id}", description = super::decided("company.read"),
    params(("id" = String, Path, description = "the company")),
    responses((status = 200, description = "done", body = Company), ManageRefused))]
pub async fn company(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Company>, ApiError> {
    let reads = crate::manage::reads::Reads::new(&app, &caller).await?;
    Ok(Json(reads.company(&id).await?.into()))
}

/// `POST /v1/users/{id}/api-keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// A label; `api` when absent.
    #[serde(default = "default_key_name")]
    pub name: String,
}

fn default_key_name() -> String {
    "api".to_owned()
}

/// A user's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, never their secrets.
    pub api_keys: Vec<ApiKey>,
}

/// An API key just issued, with the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedApiKey {
    /// The key's record.
    pub api_key: ApiKey,
    /// `pck_<id>_<secret>`, shown once.
    pub key: String,
}

/// A user's API keys (never their secrets)
///
/// `GET /v1/users/{id}/api-keys` (`user.read`): the keys, never their secrets.
#[utoipa::path(get, path = "/v1/users/{id}/api-keys", description = super::decided("user.read"), params(("id" = String, Path, description = "the user")),
    responses((status = 200, description = "done", body = ApiKeyList), ManageRefused))]
pub async fn list_keys(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, ListApiKeys { user: id.clone() }).await?;
    Ok(Json(ApiKeyList {
        api_keys: records::all(m.gate.list_api_keys(ok).await?),
    }))
}

/// Issue an API key for a user; the key is answered once
///
/// `POST /v1/users/{id}/api-keys` (`user.api_keys`): the key is answered once.
#[utoipa::path(post, path = "/v1/users/{id}/api-keys", description = super::decided("user.api_keys"), params(("id" = String, Path, description = "the user")),
    request_body = KeyBody,
    responses((status = 201, description = "done", body = IssuedApiKey), ManageRefused))]
pub async fn create_key(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<KeyBody>,
) -> Result<(StatusCode, Json<IssuedApiKey>), ApiError> {
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
        Json(IssuedApiKey {
            api_key: k.key.into(),
            key: k.secret.expose().to_owned(),
        }),
    ))
}

/// Revoke an API key
///
/// `DELETE /v1/users/{id}/api-keys/{key}` (`user.api_keys`).
#[utoipa::path(delete, path = "/v1/users/{id}/api-keys/{key}", description = super::decided("user.api_keys"),
    params(("id" = String, Path, description = "the user"), ("key" = String, Path, description = "the key's id")),
    responses((status = 200, description = "done", body = ApiKey), ManageRefused))]
pub async fn revoke_key(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, key)): ApiPath<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    let (m, served) = parts(&app)?;
    let target = visible(&app, &caller, &id).await?;
    let r = user_resource(&served, &target);
    let op = RevokeApiKey { user: id, id: key };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    Ok(Json(m.gate.revoke_api_key(&m.cache, ok).await?.into()))
}
