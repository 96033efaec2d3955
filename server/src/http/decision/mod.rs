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
pub mod openapi;
pub mod page;
pub mod policy;
pub mod search;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The routes that need the service API key (the composition root, [`crate::http`], adds
/// the guard).
pub fn guarded() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/authorize", post(decide::authorize))
        .route("/v1/authorize/batch", post(decide::batch))
        .route("/v1/permissions", post(decide::permissions))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/subject", post(search::subject))
        .route("/access/v1/search/resource", post(search::resource))
        .route("/access/v1/search/action", post(search::action))
        .route("/v1/policy/reload", post(policy::reload))
        .route("/v1/console", get(console::overview))
        .route("/v1/console/preview", post(console::preview))
        .route("/v1/console/prove", post(console::prove))
        .route("/v1/console/save", post(console::save))
        .route("/v1/console/undo", post(console::undo))
        .route("/v1/console/try", post(console::try_as))
}

/// The routes open to anyone who reaches the server.
pub fn open() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(page::page))
        .route("/v1/policy", get(policy::policy))
        .route("/healthz", get(policy::healthz))
        .route("/readyz", get(policy::readyz))
        .route("/metrics", get(policy::metrics))
        .route("/.well-known/authzen-configuration", get(authzen::configuration))
}
