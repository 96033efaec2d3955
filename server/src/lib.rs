//! Portcullis server: the decision API over HTTP, hot reload, and what the `portcullis`
//! binary runs.
//!
//! Data flow: [`config::Config`] (layered settings) → [`state::AppState`] (the served bundle
//! behind an `ArcSwap`, rebuilt by [`reload`]) → [`http`] (axum routes; decisions go through
//! [`slice`] and the engine) → [`listen`] (hyper with slow-client limits and graceful
//! shutdown), tied together by [`server::Server`].
//!
//! Layers: the HTTP adapters ([`http::decision`], [`http::manage`], [`http::signin`]) sit above
//! the services ([`decision`] and [`state`], [`manage`], [`auth`]), which sit above the store
//! and the engine; no adapter imports another and no service imports an adapter (see
//! [`http`]).

pub mod auth;
pub mod cache;
pub mod config;
pub mod console;
pub mod decision;
pub mod http;
pub mod listen;
pub mod manage;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod slice;
pub mod state;
pub mod tls;
pub mod verify;

pub use config::{Config, Limits};
pub use server::{Server, StartError};
pub use state::{AppState, Installed, Served};

pub(crate) use portcullis_engine::error::{error_text, lower_first};
