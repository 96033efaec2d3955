//! Portcullis server: the decision API over HTTP, hot reload, and what the `portcullis`
//! binary runs.
//!
//! Data flow: [`config::Config`] (layered settings) → [`state::AppState`] (the served bundle
//! behind an `ArcSwap`, rebuilt by [`reload`]) → [`api`] (axum routes; decisions go through
//! [`slice`] and the engine) → [`listen`] (hyper with slow-client limits and graceful
//! shutdown), tied together by [`server::Server`].

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
pub mod decision;
pub mod listen;
pub mod manage;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod slice;
pub mod state;
pub mod tls;

pub use config::{Config, Limits};
pub use server::{Server, StartError};
pub use state::{AppState, Installed, Served};

/// Lowercases the first letter and drops a final period (Cedar's message style).
/// An error's message and the messages of its sources, joined by `: ` (Cedar's entity errors
/// say "does not conform to the schema" and give the attribute and types in their source),
/// with [`lower_first`] applied.
pub(crate) fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    lower_first(&text)
}

pub(crate) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        // An acronym (`EOF`, `JSON`) keeps its case.
        Some(f) if c.clone().next().is_some_and(char::is_uppercase) => {
            f.to_string() + c.as_str().trim_end_matches('.')
        }
        Some(f) => f
            .to_lowercase()
            .chain(c)
            .collect::<String>()
            .trim_end_matches('.')
            .to_owned(),
        None => String::new(),
    }
}
