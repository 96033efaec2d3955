//! The sign-in adapter: `/v1/auth/…` for users themselves (passwords, sessions, TOTP,
//! passkeys, resets, sign-in links, switching customer), and the governed
//! `/v1/users/{id}/unlock`, `/v1/users/{id}/sessions` and `/v1/companies/{id}/links` for
//! admins, over HTTP.
//!
//! Thin: each handler parses the request, asks the sign-in service ([`crate::auth`]) or the
//! management service's gate ([`crate::manage::Gate`]) and answers JSON or the error
//! envelope. Each handler's `#[utoipa::path]` is its part of the OpenAPI document, and
//! registers it on the router ([`handlers::router`]); [`schemas`] holds what the document says
//! of the store's types the answers carry.
//!
//! May import: the HTTP plumbing ([`crate::http::error`], [`crate::http::extract`],
//! [`crate::http::json`]) and the document's shared parts ([`crate::http::openapi`]), the
//! services ([`crate::auth`], [`crate::manage`], [`crate::decision`], [`crate::state`]), the
//! store and the engine. Never another adapter ([`crate::http::decision`],
//! [`crate::http::manage`]); `tests/integration/layers.rs` checks.

pub mod handlers;
pub mod schemas;

pub use handlers::router;
