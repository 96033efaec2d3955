//! The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`: the decision
//! adapter's document with the management and sign-in adapters' parts merged in.
//!
//! Each part is written by hand next to the routes it describes; tests check that every
//! route of the router appears in it.

use axum::Json;
use serde_json::Value;

use super::{decision, manage, signin};

/// The whole document.
pub fn openapi() -> Value {
    let mut doc = decision::openapi::openapi();
    manage::openapi::extend(&mut doc);
    signin::openapi::extend(&mut doc);
    doc
}

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(openapi())
}
