//! `/v1/grants…`: visitor grants. A user requests read access to another company's data
//! (`grant.request` on that company); an owner of that company approves, refuses or revokes it
//! (`grant.approve` / `grant.refuse` / `grant.revoke` on its company, with the requester's
//! company in the context). Approved grants become links of the `visitor-grant` template in
//! the visitor's decisions (see [`crate::manage::cache::grant_policies`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_store::{GrantQuery, NewGrant};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::records::{self, EntityUid, Grant, GrantStatus};
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::json::ApiJson;
use crate::http::openapi::ManageRefused;
use crate::manage::governance::{ApproveGrant, RefuseGrant, RequestGrant, RevokeGrant};
use crate::manage::targets::{company_resource, parts, requester_context};
use crate::manage::{store_error, Caller, Manage};

/// `POST /v1/grants` body: the caller asks for read access to `company`'s data.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GrantRequest)]
pub struct RequestBody {
    /// The company whose data is asked for.
    #[schema(min_length = 1)]
    pub company: String,
    /// Limit to these locations.
    #[serde(default)]
    pub locations: Vec<EntityUid>,
    /// Limit to these actors.
    #[serde(default)]
    pub actors: Vec<EntityUid>,
    /// Optional expiry.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

/// Request a visitor grant
///
/// `POST /v1/grants` (`grant.request` on the data owner's company).
#[utoipa::path(post, path = "/v1/grants", description = super::decided("grant.request"), request_body = RequestBody,
    responses((status = 201, description = "done", body = Grant), ManageRefused))]
pub async fn request(
    State(app): State<Arc<crate::state::AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<RequestBody>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let (m, served) = parts(&app)?;
    let r = company_resource(&m, &served, &body.company, None).await?;
    let op = RequestGrant {
        new: NewGrant {
            user: caller.id.clone(),
            company: body.company,
            locations: records::all(body.locations),
            actors: records::all(body.actors),
            expires_at: body.expires_at,
        },
    };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, r, Map::new())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(m.gate.request_grant(&m.cache, ok).await?.into()),
    ))
}

/// Decides a change to grant `id` by the owners of the data's company: the shared step of
/// approve, refuse and revoke.
async fn decide_on_grant<T: crate::manage::governance::Governed>(
    app: &crate::state::AppState,
    caller: &Caller,
    id: String,
    op: impl FnOnce(String) -> T,
) -> Result<(Arc<Manage>, crate::manage::governance::Authorized<T>), ApiError> {
    let (m, served) = parts(app)?;
    let g = crate::manage::reads::Reads::new(app, caller)
        .await?
        .grant(&id)
        .await?;
    let r = company_resource(&m, &served, &g.company, Some(&g.from_company)).await?;
    let ctx = requester_context(&served, &g);
    let ok = m.gate.decide(&served, &m.cache, caller, op(id), r, ctx).await?;
    Ok((m, ok))
}

/// Approve a visitor grant
///
/// `POST /v1/grants/{id}/approve` (`grant.approve`).
#[utoipa::path(post, path = "/v1/grants/{id}/approve", description = super::decided("grant.approve"),
    params(("id" = String, Path, description = "the grant")),
    responses((status = 200, description = "done", body = Grant), ManageRefused))]
pub async fn approve(
    State(app): State<Arc<crate::state::AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Grant>, ApiError> {
    let (m, ok) = decide_on_grant(&app, &caller, id, |id| ApproveGrant { id }).await?;
    Ok(Json(m.gate.approve_grant(&m.cache, ok).await?.into()))
}

/// Refuse a visitor grant
///
/// `POST /v1/grants/{id}/refuse` (`grant.refuse`).
#[utoipa::path(post, path = "/v1/grants/{id}/refuse", description = super::decided("grant.refuse"),
    params(("id" = String, Path, description = "the grant")),
    responses((status = 200, description = "done", body = Grant), ManageRefused))]
pub async fn refuse(
    State(app): State<Arc<crate::state::AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Grant>, ApiError> {
    let (m, ok) = decide_on_grant(&app, &caller, id, |id| RefuseGrant { id }).await?;
    Ok(Json(m.gate.refuse_grant(&m.cache, ok).await?.into()))
}

/// Revoke a visitor grant
///
/// `POST /v1/grants/{id}/revoke` (`grant.revoke`).
#[utoipa::path(post, path = "/v1/grants/{id}/revoke", description = super::decided("grant.revoke"),
    params(("id" = String, Path, description = "the grant")),
    responses((status = 200, description = "done", body = Grant), ManageRefused))]
pub async fn revoke(
    State(app): State<Arc<crate::state::AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Grant>, ApiError> {
    let (m, ok) = decide_on_grant(&app, &caller, id, |id| RevokeGrant { id }).await?;
    Ok(Json(m.gate.revoke_grant(&m.cache, ok).await?.into()))
}

/// `GET /v1/grants?company=&status=` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Grants on this company's data; without it, the caller's own grants.
    pub company: Option<String>,
    /// In this state.
    pub status: Option<GrantStatus>,
}

/// Visitor grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// The grants the caller may read.
    pub grants: Vec<Grant>,
}

/// Grants on a company's data (`?company=`) or the caller's own, those the caller may read
///
/// `GET /v1/grants`: grants on a company's data, or the caller's own; each decided as
/// `grant.read`.
#[utoipa::path(get, path = "/v1/grants", description = super::decided("grant.read"), params(ListQuery),
    responses((status = 200, description = "done", body = GrantList), ManageRefused))]
pub async fn list(
    State(app): State<Arc<crate::state::AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let reads = crate::manage::reads::Reads::new(&app, &caller).await?;
    let status = q.status.map(Into::into);
    let query = match q.company {
        Some(c) => GrantQuery {
            company: Some(c),
            status,
            user: None,
        },
        None => GrantQuery {
            user: Some(caller.id.clone()),
            status,
            company: None,
        },
    };
    let grants = reads
        .m
        .gate
        .read()
        .list_grants(&query)
        .await
        .map_err(store_error)?;
    Ok(Json(GrantList {
        grants: records::all(reads.grants(grants).await?),
    }))
}
