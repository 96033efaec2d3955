//! `/v1/companies` and `/v1/groups`: companies of an enterprise (the load planner) and permission groups
//! (the service portal) over HTTP, governed like every other write.
//!
//! - `POST /v1/companies` (`company.create`) and `PATCH /v1/companies/{id}`
//!   (`company.update`) are decided on the company as it will be (its parent chain from the
//!   store), with `changes` in the context naming the fields the call sets;
//! - `GET /v1/companies`: the caller's company and the companies below it;
//! - `POST|PATCH|DELETE /v1/groups…` and `PUT /v1/groups/default` (`group.manage`) are decided
//!   on the caller's company. Groups belong to the installation (users of every company pick
//!   from them), so a change to a group some user outside the caller's enterprise is in is
//!   refused (403) whatever the policies say: no write crosses companies;
//! - `GET /v1/groups`: every group (names, descriptions, features).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;

use crate::http::extract::ApiPath;
use axum::http::StatusCode;
use axum::Json;
use portcullis_engine::facts::CompanyFacts;
use portcullis_store::{
    self as store, CompanyPatch, CompanyQuery, GroupPatch, NewCompany, NewGroup, UserQuery,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::records::{self, Company, Group};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::openapi::ManageRefused;
use crate::manage::entities;
use crate::manage::governance::{
    CreateCompany, CreateGroup, DeleteGroup, Reader, Resource, SetDefaultGroup, UpdateCompany, UpdateGroup,
};
use crate::manage::reads::Reads;
use crate::manage::targets::{parts, stored};
use crate::manage::{store_error, Caller, Manage};
use crate::state::{AppState, Served};

/// Most companies `GET /v1/companies` walks.
pub const MAX_LISTED_COMPANIES: usize = 10_000;

fn invalid(e: serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_body", crate::lower_first(&e.to_string()))
}

/// The company `id` as it will be (`facts`), with its ancestors from the store.
async fn company_as(
    m: &Manage,
    served: &Served,
    id: &str,
    facts: &CompanyFacts,
) -> Result<Resource, ApiError> {
    let s = &served.snapshot;
    entities::writable_company(s, facts).map_err(crate::manage::targets::unfit)?;
    let mut values = vec![entities::company_value(s, id, facts)];
    if let Some(parent) = &facts.parent {
        let chain = entities::company_chain(&m.gate.read(), parent)
            .await
            .map_err(store_error)?;
        // A new company that takes the id of its parent or an ancestor is decided as asked
        // and refused by the store (409 `already_exists`): the chain keeps the company as it
        // will be, once.
        values.extend(
            chain
                .iter()
                .filter(|(c, _)| c != id)
                .map(|(c, f)| entities::company_value(s, c, f)),
        );
    }
    entities::fits_schema(s, &values).map_err(crate::manage::targets::unfit)?;
    Ok(Resource {
        ty: s.company_type(),
        id: id.to_owned(),
        entities: values,
        target: format!("company:{id}"),
    })
}

/// The `changes` context: the fields the call sets, and `attrs.<name>` for each attribute
/// whose value it changes (from `old` to `new`, both from the server), so a policy can
/// reserve one attribute (a plan the folder declares, say) to whoever it names.
fn changes(
    fields: &[(&str, bool)],
    old: &BTreeMap<String, Value>,
    new: &BTreeMap<String, Value>,
) -> Map<String, Value> {
    let mut set: Vec<String> = fields
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| (*f).to_owned())
        .collect();
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    set.extend(
        names
            .into_iter()
            .filter(|n| old.get(*n) != new.get(*n))
            .map(|n| format!("attrs.{n}")),
    );
    let mut c = Map::new();
    c.insert("changes".to_owned(), json!(set));
    c
}

/// `POST /v1/companies` body: the company to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewCompany)]
pub struct NewCompanyBody {
    /// Its id.
    #[schema(min_length = 1)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Account type.
    #[schema(min_length = 1)]
    pub account_type: String,
    /// Parent company (enterprise accounts); the caller's company when absent, none when `null`.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub parent: Option<String>,
    /// Most active users; the folder's `default_user_limit` when absent, unlimited when none.
    #[serde(default)]
    #[schema(value_type = Option<u64>, maximum = 4294967295u32)]
    pub user_limit: Option<u32>,
    /// Further attributes the folder declares (Cedar JSON).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attrs: Map<String, Value>,
}

impl From<NewCompanyBody> for NewCompany {
    fn from(b: NewCompanyBody) -> Self {
        let NewCompanyBody {
            id,
            name,
            account_type,
            parent,
            user_limit,
            attrs,
        } = b;
        NewCompany {
            id,
            name,
            account_type,
            parent,
            user_limit,
            attrs,
        }
    }
}

/// Create a company (`parent` defaults to the caller's company)
///
/// `POST /v1/companies`: a `NewCompany`; `parent` defaults to the caller's company.
#[utoipa::path(post, path = "/v1/companies", description = super::decided("company.create"), request_body = NewCompanyBody,
    responses((status = 201, description = "done", body = Company), ManageRefused))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Company>), ApiError> {
    let (m, served) = parts(&app)?;
    if let Some(o) = body.as_object_mut() {
        o.entry("parent").or_insert_with(|| json!(caller.company));
    }
    let mut new: NewCompany = serde_json::from_value::<NewCompanyBody>(body)
        .map_err(invalid)?
        .into();
    // A company the call gives no limit gets the folder's `[settings] default_user_limit`.
    let default_limit = served
        .snapshot
        .model()
        .map_or(0, |m| m.settings.default_user_limit);
    if new.user_limit.is_none() && default_limit > 0 {
        new.user_limit = Some(default_limit);
    }
    let facts = CompanyFacts {
        account_type: new.account_type.clone(),
        parent: new.parent.clone(),
        attrs: new.attrs.clone().into_iter().collect(),
        active_roles: Some(Vec::new()),
    };
    let r = company_as(&m, &served, &new.id, &facts).await?;
    let context = changes(
        &[
            ("name", true),
            ("account_type", true),
            ("parent", new.parent.is_some()),
            ("user_limit", new.user_limit.is_some()),
            ("attrs", !new.attrs.is_empty()),
        ],
        &BTreeMap::new(),
        &facts.attrs,
    );
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, CreateCompany { new }, r, context)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(m.gate.create_company(&m.cache, ok).await?.into()),
    ))
}

/// `PATCH /v1/companies/{id}` body: the fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompanyPatch)]
pub struct CompanyPatchBody {
    /// New display name (may be blank, as a new company's).
    #[serde(default)]
    pub name: Option<String>,
    /// New account type.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub account_type: Option<String>,
    /// New user limit (`null` removes it).
    #[serde(default, deserialize_with = "records::present")]
    #[schema(value_type = Option<u64>, maximum = 4294967295u32)]
    pub user_limit: Option<Option<u32>>,
    /// New attributes (replacing the old ones).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attrs: Option<Map<String, Value>>,
}

impl From<CompanyPatchBody> for CompanyPatch {
    fn from(b: CompanyPatchBody) -> Self {
        let CompanyPatchBody {
            name,
            account_type,
            user_limit,
            attrs,
        } = b;
        CompanyPatch {
            name,
            account_type,
            user_limit,
            attrs,
        }
    }
}

/// Change a company's name, account type, user limit or attrs (decided on the company as it will be; context `changes` names the fields set)
///
/// `PATCH /v1/companies/{id}`: a `CompanyPatch` (name, account type, user limit, attrs).
#[utoipa::path(patch, path = "/v1/companies/{id}", description = super::decided("company.update"),
    params(("id" = String, Path, description = "the company")), request_body = CompanyPatchBody,
    responses((status = 200, description = "done", body = Company), ManageRefused))]
pub async fn update(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Company>, ApiError> {
    let (m, served) = parts(&app)?;
    let patch: CompanyPatch = serde_json::from_value::<CompanyPatchBody>(body)
        .map_err(invalid)?
        .into();
    if !Reads::new(&app, &caller).await?.company_readable(&id).await? {
        return Err(crate::manage::reads::not_found("company", &id));
    }
    let mut facts = m.gate.read().company_facts(&id).await.map_err(store_error)?;
    let old = facts.attrs.clone();
    if let Some(t) = &patch.account_type {
        facts.account_type = t.clone();
    }
    if let Some(a) = &patch.attrs {
        facts.attrs = a.clone().into_iter().collect();
    }
    let r = company_as(&m, &served, &id, &facts).await?;
    let context = changes(
        &[
            ("name", patch.name.is_some()),
            ("account_type", patch.account_type.is_some()),
            ("user_limit", patch.user_limit.is_some()),
            ("attrs", patch.attrs.is_some()),
        ],
        &old,
        &facts.attrs,
    );
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            &caller,
            UpdateCompany { id, patch },
            r,
            context,
        )
        .await?;
    Ok(Json(m.gate.update_company(&m.cache, ok).await?.into()))
}

/// The companies at or below `root` (breadth first, bounded).
async fn below(read: &Reader<'_>, root: &str) -> Result<Vec<store::Company>, ApiError> {
    let mut out = vec![read.get_company(root).await.map_err(store_error)?];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_LISTED_COMPANIES {
        let mut after = None;
        loop {
            let page = read
                .list_companies(&CompanyQuery {
                    parent: Some(out[i].id.clone()),
                    after: after.clone(),
                    limit: None,
                })
                .await
                .map_err(store_error)?;
            out.extend(page.items.into_iter().filter(|c| c.id != root));
            match page.next {
                Some(n) if out.len() < MAX_LISTED_COMPANIES => after = Some(n),
                _ => break,
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Companies.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyList {
    /// The companies the caller may read.
    pub companies: Vec<Company>,
}

/// The caller's company and the companies of its enterprise below it that the caller may read
///
/// `GET /v1/companies`: the caller's company and the companies of its enterprise below it,
/// each decided as `company.read`.
#[utoipa::path(get, path = "/v1/companies", description = super::decided("company.read"),
    responses((status = 200, description = "done", body = CompanyList), ManageRefused))]
pub async fn list(State(app): State<Arc<AppState>>, caller: Caller) -> Result<Json<CompanyList>, ApiError> {
    let reads = Reads::new(&app, &caller).await?;
    let companies = below(&reads.m.gate.read(), &caller.company).await?;
    Ok(Json(CompanyList {
        companies: records::all(reads.companies(companies).await?),
    }))
}

/// The caller's company as the resource of a group decision.
async fn caller_company(m: &Manage, served: &Served, caller: &Caller) -> Result<Resource, ApiError> {
    let me = stored(m, &caller.id).await?;
    let s = &served.snapshot;
    Ok(Resource {
        ty: s.company_type(),
        id: caller.company.clone(),
        entities: me
            .chain
            .iter()
            .map(|(c, f)| entities::company_value(s, c, f))
            .collect(),
        target: format!("company:{}", caller.company),
    })
}

/// A change to group `name` changes what its members hold, in whichever company they are: it is
/// decided as the same operation on every company with a member in it, besides the caller's
/// own (decided already). A caller changes a group only where the policies let it manage
/// groups, so no admin changes the rights of another company's users without a policy that
/// says it may (the field-service company's office, over its customers' portal users).
async fn on_member_companies<T: crate::manage::governance::Governed + Clone>(
    m: &Manage,
    served: &Served,
    caller: &Caller,
    name: &str,
    op: &T,
) -> Result<(), ApiError> {
    let read = m.gate.read();
    let mut companies = std::collections::BTreeSet::new();
    let mut after = None;
    loop {
        let page = read
            .list_users(&UserQuery {
                company: None,
                include_inactive: true,
                after,
                limit: Some(1000),
            })
            .await
            .map_err(store_error)?;
        companies.extend(
            page.items
                .iter()
                .filter(|u| u.group.as_deref() == Some(name))
                .map(|u| u.company.clone()),
        );
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    companies.remove(&caller.company);
    for c in companies {
        let r = crate::manage::targets::company_resource(m, served, &c, None).await?;
        m.gate
            .decide(served, &m.cache, caller, op.clone(), r, Map::new())
            .await?;
    }
    Ok(())
}

/// Features a group may hold: those the served policy folder declares.
fn check_features(served: &Served, features: &[String]) -> Result<(), ApiError> {
    let Some(model) = served.snapshot.model() else {
        return Ok(());
    };
    for f in features {
        if !model.features.iter().any(|d| d.name == *f) {
            return Err(ApiError::bad_request(
                "unknown_feature",
                format!("feature `{f}` is not declared in roles.toml"),
            ));
        }
    }
    Ok(())
}

/// Permission groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// The groups the caller may read.
    pub groups: Vec<Group>,
}

/// The permission groups the caller may read (decided on its company)
///
/// `GET /v1/groups`: each decided as `group.read` on the caller's company.
#[utoipa::path(get, path = "/v1/groups", description = super::decided("group.read"),
    responses((status = 200, description = "done", body = GroupList), ManageRefused))]
pub async fn list_groups(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<GroupList>, ApiError> {
    let reads = Reads::new(&app, &caller).await?;
    let groups = reads.m.gate.read().list_groups().await.map_err(store_error)?;
    Ok(Json(GroupList {
        groups: records::all(reads.groups(groups)),
    }))
}

/// `POST /v1/groups` body: the group to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewGroup)]
pub struct NewGroupBody {
    /// Name.
    #[schema(min_length = 1)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Features its members hold (declared in roles.toml).
    #[serde(default)]
    #[schema(schema_with = records::names)]
    pub features: Vec<String>,
    /// Make it the default of new users (the previous default stops being one).
    #[serde(default)]
    pub is_default: bool,
}

impl From<NewGroupBody> for NewGroup {
    fn from(b: NewGroupBody) -> Self {
        let NewGroupBody {
            name,
            description,
            features,
            is_default,
        } = b;
        NewGroup {
            name,
            description,
            features,
            is_default,
        }
    }
}

/// Create a permission group (features declared in roles.toml)
///
/// `POST /v1/groups`: a `NewGroup` (`group.manage`).
#[utoipa::path(post, path = "/v1/groups", description = super::decided("group.manage"), request_body = NewGroupBody,
    responses((status = 201, description = "done", body = Group), ManageRefused))]
pub async fn create_group(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let (m, served) = parts(&app)?;
    let new: NewGroup = serde_json::from_value::<NewGroupBody>(body)
        .map_err(invalid)?
        .into();
    check_features(&served, &new.features)?;
    let r = caller_company(&m, &served, &caller).await?;
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, CreateGroup { new }, r, Map::new())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(m.gate.create_group(&m.cache, ok).await?.into()),
    ))
}

/// `PATCH /v1/groups/{name}` body: the fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GroupPatch)]
pub struct GroupPatchBody {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New features (replacing).
    #[serde(default)]
    #[schema(schema_with = records::names_or_null)]
    pub features: Option<Vec<String>>,
}

impl From<GroupPatchBody> for GroupPatch {
    fn from(b: GroupPatchBody) -> Self {
        let GroupPatchBody {
            description,
            features,
        } = b;
        GroupPatch {
            description,
            features,
        }
    }
}

/// Change a permission group's description or features (decided on the caller's company and on every company with a member in it)
///
/// `PATCH /v1/groups/{name}`: a `GroupPatch` (`group.manage`).
#[utoipa::path(patch, path = "/v1/groups/{name}", description = super::decided("group.manage"),
    params(("name" = String, Path, description = "the group")), request_body = GroupPatchBody,
    responses((status = 200, description = "done", body = Group), ManageRefused))]
pub async fn update_group(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Group>, ApiError> {
    let (m, served) = parts(&app)?;
    let patch: GroupPatch = serde_json::from_value::<GroupPatchBody>(body)
        .map_err(invalid)?
        .into();
    if let Some(f) = &patch.features {
        check_features(&served, f)?;
    }
    m.gate.read().get_group(&name).await.map_err(store_error)?;
    let r = caller_company(&m, &served, &caller).await?;
    let op = UpdateGroup {
        name: name.clone(),
        patch,
    };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    on_member_companies(&m, &served, &caller, &name, ok.op()).await?;
    Ok(Json(m.gate.update_group(&m.cache, ok).await?.into()))
}

/// Delete a permission group no user is in
///
/// `DELETE /v1/groups/{name}` (`group.manage`): only a group no user is in.
#[utoipa::path(delete, path = "/v1/groups/{name}", description = super::decided("group.manage"),
    params(("name" = String, Path, description = "the group")),
    responses((status = 204, description = "deleted"), ManageRefused))]
pub async fn delete_group(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let (m, served) = parts(&app)?;
    m.gate.read().get_group(&name).await.map_err(store_error)?;
    let r = caller_company(&m, &served, &caller).await?;
    let op = DeleteGroup { name: name.clone() };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    on_member_companies(&m, &served, &caller, &name, ok.op()).await?;
    m.gate.delete_group(&m.cache, ok).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/groups/default` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DefaultGroupBody)]
pub struct DefaultBody {
    /// The group; absent or `null`: no default.
    pub name: Option<String>,
}

/// The default group of new users.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefaultGroup {
    /// The group new users get when they name none; `null`: none.
    pub default: Option<String>,
}

/// Make a group the default of new users (`name: null`: none)
///
/// `PUT /v1/groups/default` (`group.manage`): the group new users get when they name none.
#[utoipa::path(put, path = "/v1/groups/default", description = super::decided("group.manage"), request_body = DefaultBody,
    responses((status = 200, description = "done", body = DefaultGroup), ManageRefused))]
pub async fn set_default_group(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<DefaultBody>,
) -> Result<Json<DefaultGroup>, ApiError> {
    let (m, served) = parts(&app)?;
    let r = caller_company(&m, &served, &caller).await?;
    let op = SetDefaultGroup {
        name: body.name.clone(),
    };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    m.gate.set_default_group(&m.cache, ok).await?;
    Ok(Json(DefaultGroup { default: body.name }))
}
