//! The decision adapter: the decision API over HTTP (`POST /v1/authorize`, batches,
//! permissions, AuthZEN evaluations and searches), the policy endpoints (`/v1/policy`,
//! reload, health, metrics), the policy console and the home page.
//!
//! Thin: each handler parses the request, asks the decision service ([`crate::decision`],
//! over the served bundle of [`crate::state`]) and answers JSON or the error envelope.
//!
//! May import: the HTTP plumbing ([`crate::http::error`], [`crate::http::extract`],
//! [`crate::http::json`]), the services ([`crate::decision`], [`crate::state`],
//! [`crate::manage`], [`crate::auth`]), the store and the engine. Never another adapter
//! ([`crate::http::manage`], [`crate::http::signin`]); `tests/integration/layers.rs` checks.

pub mod audited;
pub mod authzen;
pub mod console;
pub mod decide;
pub mod page;
pub mod policy;
pub mod search;

use utoipa_axum::routes;

use crate::http::openapi::ApiRouter;

/// The routes that need the service API key (the composition root, [`crate::http`], adds
/// the guard).
pub fn guarded() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(decide::authorize))
        .routes(routes!(decide::batch))
        .routes(routes!(decide::permissions))
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(search::subject))
        .routes(routes!(search::resource))
        .routes(routes!(search::action))
        .routes(routes!(policy::reload))
        .routes(routes!(console::overview))
        .routes(routes!(console::preview))
        .routes(routes!(console::prove))
        .routes(routes!(console::save))
        .routes(routes!(console::undo))
        .routes(routes!(console::try_as))
}

/// The routes open to anyone who reaches the server.
pub fn open() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(page::page))
        .routes(routes!(policy::policy))
        .routes(routes!(policy::healthz))
        .routes(routes!(policy::readyz))
        .routes(routes!(policy::metrics))
        .routes(routes!(authzen::configuration))
}
