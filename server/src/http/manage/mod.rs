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
pub mod records;
pub mod users;

use utoipa_axum::routes;

use crate::http::openapi::ApiRouter;

/// The management routes, each registered from its handler's `#[utoipa::path]` (handlers of
/// one path in one `routes!`).
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::read, users::update, users::delete))
        .routes(routes!(users::set_role))
        .routes(routes!(users::deactivate))
        .routes(routes!(users::reactivate))
        .routes(routes!(users::move_user))
        .routes(routes!(users::set_companies))
        .routes(routes!(users::list_keys, users::create_key))
        .routes(routes!(users::revoke_key))
        .routes(routes!(grants::list, grants::request))
        .routes(routes!(grants::approve))
        .routes(routes!(grants::refuse))
        .routes(routes!(grants::revoke))
        .routes(routes!(invitations::list, invitations::create))
        .routes(routes!(invitations::revoke))
        .routes(routes!(invitations::accept))
        .routes(routes!(audit::query))
        // Companies and permission groups (companies.rs); a company's reading is users.rs's.
        .routes(routes!(companies::list, companies::create))
        .routes(routes!(users::company, companies::update))
        .routes(routes!(companies::list_groups, companies::create_group))
        .routes(routes!(companies::set_default_group))
        .routes(routes!(companies::update_group, companies::delete_group))
}

/// The description of a management operation in the OpenAPI document: `decided("user.read")`.
pub fn decided(operation: &str) -> String {
    format!(
        "Decided by the engine first: operation `{operation}` (the action \
         `[management.operations]` of roles.toml maps it to), principal the caller. A denial \
         answers 403 and is audited with outcome `denied`; an operation the folder does not map \
         answers 403."
    )
}
