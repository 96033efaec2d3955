//! The sign-in adapter: `/v1/auth/…` for users themselves (passwords, sessions, TOTP,
//! passkeys, resets, sign-in links, switching customer), and the governed
//! `/v1/users/{id}/unlock`, `/v1/users/{id}/sessions` and `/v1/companies/{id}/links` for
//! admins, over HTTP.
//!
//! Thin: each handler parses the request, asks the sign-in service ([`crate::auth`]) or the
//! management service's gate ([`crate::manage::Gate`]) and answers JSON or the error
//! envelope.
//!
//! May import: the HTTP plumbing ([`crate::http::error`], [`crate::http::extract`],
//! [`crate::http::json`]), the services ([`crate::auth`], [`crate::manage`],
//! [`crate::decision`], [`crate::state`]), the store and the engine. Never another adapter
//! ([`crate::http::decision`], [`crate::http::manage`]); `tests/integration/layers.rs` checks.

pub mod handlers;
pub mod openapi;
pub mod schemas;

pub use handlers::router;
