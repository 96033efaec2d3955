//! The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json`, derived from the
//! handlers with utoipa.
//!
//! Each handler's `#[utoipa::path]` names its method, path, parameters, request body and
//! answers, and `utoipa_axum::routes!` registers the handler on the router from that same
//! attribute: a route cannot be missing from the document, nor stand at another path there.
//! Bodies and query strings are the handlers' own types (`ToSchema`, `IntoParams`). This
//! module adds what no handler owns: the title, the security schemes, the error envelope and
//! unique operation ids.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema};

use super::error::{ErrorEnvelope, ErrorFields};
use crate::state::AppState;

/// A router whose routes carry their part of the document.
pub type ApiRouter = utoipa_axum::router::OpenApiRouter<Arc<AppState>>;

/// The whole document.
pub fn openapi() -> Value {
    DOCUMENT.0.clone()
}

/// The document, built once: as a value, and as the bytes `GET /openapi.json` answers.
static DOCUMENT: LazyLock<(Value, Bytes)> = LazyLock::new(|| {
    let mut api = super::routes().into_openapi();
    complete(&mut api);
    let doc = serde_json::to_value(&api).unwrap_or_default();
    let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    (doc, bytes)
});

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn document() -> axum::response::Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.1.clone()).into_response()
}

/// The routes that take the service API key, when one is configured: the document says a
/// call may be answered without one, or with one as a bearer token or `X-Api-Key` (the
/// composition root puts the guard on exactly these routes).
pub fn key_when_configured(routes: ApiRouter) -> ApiRouter {
    with_security(routes, true)
}

/// The routes that need a caller: a session or an API key as a bearer token, or an API key as
/// `X-Api-Key`. An operation that says otherwise (`security()`: anyone) keeps its own.
pub fn caller_required(routes: ApiRouter) -> ApiRouter {
    with_security(routes, false)
}

fn with_security(mut routes: ApiRouter, optional: bool) -> ApiRouter {
    use utoipa::openapi::security::SecurityRequirement;
    let mut requirements = vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("apiKey", Vec::<String>::new()),
    ];
    if optional {
        requirements.insert(0, SecurityRequirement::default());
    }
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        for (_, op) in operations(item) {
            op.security.get_or_insert_with(|| requirements.clone());
        }
    }
    routes
}

/// The operations of a path, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// Adds what no handler owns: the title and version, the security schemes, the error
/// envelope, and an operation id per operation made of its method and path (handlers of
/// different adapters share names such as `list`).
fn complete(api: &mut OpenApi) {
    api.info.title = "Portcullis API".to_owned();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.info.description = Some(
        "Decisions (`/v1/authorize`, AuthZEN), the policy console, the management API and \
         sign-in of a Portcullis server."
            .to_owned(),
    );
    api.info.license = None;
    api.info.contact = None;
    let components = api.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".to_owned(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build(),
        )),
    );
    components.security_schemes.insert(
        "apiKey".to_owned(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
            "X-Api-Key",
        )))),
    );
    components
        .schemas
        .insert("Error".to_owned(), ErrorEnvelope::schema());
    components
        .schemas
        .insert("ErrorFields".to_owned(), ErrorFields::schema());
    components.responses.insert(
        "Error".to_owned(),
        RefOr::T(
            ResponseBuilder::new()
                .description("the error envelope: a stable code and a message")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build(),
                )
                .build(),
        ),
    );
    for (path, item) in api.paths.paths.iter_mut() {
        let slug: String = path
            .trim_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        for (method, op) in operations(item) {
            op.operation_id = Some(format!("{method}_{slug}").replace("__", "_"));
        }
    }
}

/// The error envelope under each of `codes`.
pub fn envelope(codes: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    codes
        .iter()
        .map(|c| (c.to_string(), RefOr::Ref(Ref::from_response_name("Error"))))
        .collect()
}

/// What a decision call may answer besides its result: a bad body (400), no or a bad key
/// (401), too slow (408), too large (413).
pub struct Refused;

impl IntoResponses for Refused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        envelope(&[400, 401, 408, 413])
    }
}

/// What a console call may answer besides its result: a bad body (400), no or a bad key
/// (401), the console off (403), too slow (408), a stale version (409), too large (413).
pub struct ConsoleRefused;

impl IntoResponses for ConsoleRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        envelope(&[400, 401, 403, 408, 409, 413])
    }
}

/// What a sign-in call of a caller (a session, or a user API key) may answer besides its
/// result: a bad body (400), no or a bad session or key (401), refused (403: a key where a
/// session is needed, a session that must first enrol a second factor, a decision denied), not
/// found (404), a conflict (409), too large (413), no user store (503).
pub struct SignInRefused;

impl IntoResponses for SignInRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        envelope(&[400, 401, 403, 404, 409, 413, 503])
    }
}

/// What a management call may answer besides its result: a bad body or query (400), no or a
/// bad key (401), a denial (403), an unknown record (404), a conflict such as a taken login or
/// the user limit (409), a body over the limit (413) or not JSON (415), a host this server
/// does not answer for (421), attributes that would not fit the folder's schema (422), no
/// store (503).
pub struct ManageRefused;

impl IntoResponses for ManageRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        envelope(&[400, 401, 403, 404, 409, 413, 415, 421, 422, 503])
    }
}

/// The error envelope alone, for one more status beside a set (`(status = 422, response =
/// ErrorResponse)`).
pub struct ErrorResponse;

impl utoipa::ToResponse<'static> for ErrorResponse {
    fn response() -> (&'static str, RefOr<Response>) {
        ("Error", RefOr::Ref(Ref::from_response_name("Error")))
    }
}
