//! The management adapter: the governed management API under `/v1/` (users, companies,
//! permission groups, visitor grants, invitations, audit) over HTTP.
//!
//! Thin: each handler parses the request, asks the management service ([`crate::manage`]:
//! [`crate::manage::Gate`] decides and writes, [`crate::manage::reads`] reads) and answers
//! JSON or the error envelope.
//!
//! May import: the HTTP plumbing ([`crate::http::error`], [`crate::http::extract`],
//! [`crate::http::json`]), the services ([`crate::manage`], [`crate::auth`],
//! [`crate::decision`], [`crate::state`]), the store and the engine. Never another adapter
//! ([`crate::http::decision`], [`crate::http::signin`]); `tests/integration/layers.rs` checks.

pub mod audit;
pub mod companies;
pub mod grants;
pub mod invitations;
pub mod openapi;
pub mod users;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;

use crate::state::AppState;

/// The management routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/users", get(users::list).post(users::create))
        .route(
            "/v1/users/{id}",
            get(users::read).patch(users::update).delete(users::delete),
        )
        .route("/v1/users/{id}/role", put(users::set_role))
        .route("/v1/users/{id}/deactivate", post(users::deactivate))
        .route("/v1/users/{id}/reactivate", post(users::reactivate))
        .route("/v1/users/{id}/move", post(users::move_user))
        .route("/v1/users/{id}/companies", put(users::set_companies))
        .route(
            "/v1/users/{id}/api-keys",
            get(users::list_keys).post(users::create_key),
        )
        .route(
            "/v1/users/{id}/api-keys/{key}",
            axum::routing::delete(users::revoke_key),
        )
        .route("/v1/companies/{id}", get(users::company))
        .route("/v1/grants", get(grants::list).post(grants::request))
        .route("/v1/grants/{id}/approve", post(grants::approve))
        .route("/v1/grants/{id}/refuse", post(grants::refuse))
        .route("/v1/grants/{id}/revoke", post(grants::revoke))
        .route(
            "/v1/invitations",
            get(invitations::list).post(invitations::create),
        )
        .route("/v1/invitations/{id}", axum::routing::delete(invitations::revoke))
        .route("/v1/invitations/accept", post(invitations::accept))
        .route("/v1/audit", get(audit::query))
        // Companies and permission groups (companies.rs).
        .route("/v1/companies", get(companies::list).post(companies::create))
        .route("/v1/companies/{id}", axum::routing::patch(companies::update))
        .route(
            "/v1/groups",
            get(companies::list_groups).post(companies::create_group),
        )
        .route("/v1/groups/default", put(companies::set_default_group))
        .route(
            "/v1/groups/{name}",
            axum::routing::patch(companies::update_group).delete(companies::delete_group),
        )
}
