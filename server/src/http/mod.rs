//! The HTTP layer, and its composition root: the whole router (the three adapters' routes),
//! the API-key guard, the request timeout, panic catching; [`openapi`] composes the document.
//!
//! Input: an [`AppState`]. Output: an axum `Router` whose every failure, from a bad route to
//! a panic, is the JSON error envelope. Decision endpoints and the reload endpoint require
//! the service API key when one is configured.
//!
//! Layers, imports running down only:
//!
//! ```text
//! http (this module: router, middleware; openapi)   composition root: names the adapters
//!   decision/   manage/   signin/                   adapters: never import one another
//!   error, extract, json                            plumbing every adapter uses
//! crate::{decision, state}, crate::manage, crate::auth   services: never import an adapter
//! portcullis_store, portcullis_engine
//! ```
//!
//! `tests/integration/layers.rs` reads the sources and fails when an adapter imports another
//! or a service imports an adapter.

pub mod decision;
pub mod error;
pub mod extract;
pub mod json;
pub mod manage;
pub mod openapi;
pub mod signin;

use std::any::Any;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use self::error::ApiError;
use crate::state::AppState;

/// The whole API.
pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new())
}

/// Every route of the three adapters and the document's own, those that need the service API
/// key apart: the router and the OpenAPI document ([`openapi`]) are both made from these.
fn adapters() -> (openapi::ApiRouter, openapi::ApiRouter) {
    let open = decision::open()
        .routes(utoipa_axum::routes!(openapi::document))
        .merge(openapi::caller_required(manage::router()))
        .merge(openapi::caller_required(signin::router()));
    (open, openapi::key_when_configured(decision::guarded()))
}

/// The routes, for the document.
fn routes() -> openapi::ApiRouter {
    let (open, guarded) = adapters();
    open.merge(guarded)
}

/// The whole API plus `extra` routes (given the same guards and layers), for tests.
pub fn router_with(state: Arc<AppState>, extra: Router<Arc<AppState>>) -> Router {
    let (open, guarded) = adapters();
    let guarded = guarded
        .merge(extra.into())
        .route_layer(middleware::from_fn_with_state(state.clone(), api_key));
    let limits = state.config.limits;
    let (routes, _) = open.merge(guarded).split_for_parts();
    routes
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// What every request goes through before its route, in one layer (each layer of its own
/// costs a boxed service and a clone of the stack below it per request):
///
/// - its request id: the client's `X-Request-ID`, or a new one, set on the request and echoed
///   on every response;
/// - its span, which every log line written while answering it carries;
/// - [`host_refusal`] and [`media_refusal`];
/// - the time bound ([`time_limit`]);
/// - the count of answers by status class (`portcullis_http_responses_total`), refusals,
///   timeouts and panics included.
async fn front(State(app): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(REQUEST_ID) {
        Some(given) => given.clone(),
        None => {
            let made = HeaderValue::from_str(&crate::decision::decision_id())
                .unwrap_or_else(|_| HeaderValue::from_static("-"));
            req.headers_mut().insert(REQUEST_ID, made.clone());
            made
        }
    };
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %id.to_str().unwrap_or_default(),
    );
    let answer = async {
        if let Some(refused) = host_refusal(&app, &req).or_else(|| media_refusal(&req)) {
            return refused;
        }
        let limit = time_limit(&app, &req);
        match tokio::time::timeout(limit, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!("the request took longer than {} ms", limit.as_millis()),
            )
            .into_response(),
        }
    };
    let mut response = answer.instrument(span).await;
    app.metrics.response(response.status());
    response.headers_mut().entry(REQUEST_ID).or_insert(id);
    response
}

/// The request id header.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Requires the API key, when configured, as `Authorization: Bearer KEY` or `X-Api-Key`, and
/// with `tls_client_ca` a verified client certificate.
async fn api_key(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // Mutual TLS: the decision API needs a verified client certificate as well.
    let mutual = app.config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if mutual && req.extensions().get::<crate::tls::ClientCertificate>().is_none() {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "client_certificate_required",
            "the decision API requires a client certificate signed by a CA of `tls_client_ca`",
        )
        .into_response();
    }
    let Some(key) = &app.config.api_key else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()));
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(key.expose().as_bytes())));
    if ok {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required",
        )
        .into_response()
    }
}

/// Answers only requests whose `Host` names this server (`Config::allowed_hosts`): a page
/// that rebinds its own name to a loopback address reaches nothing, so it reads nothing.
/// HTTP/2 requests carry the host in the URI's authority instead.
fn host_refusal(app: &AppState, req: &Request) -> Option<Response> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(h) if app.config.host_allowed(h) => None,
        _ => Some(
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "this server does not answer for host `{}` (see `allowed_hosts`)",
                    host.unwrap_or_default()
                ),
            )
            .into_response(),
        ),
    }
}

/// Request bodies are JSON only: a `POST`, `PUT` or `PATCH` with a body must say
/// `Content-Type: application/json` (or a `+json` type). A browser sends `text/plain` and
/// form bodies cross-site without asking first; JSON it does not.
fn media_refusal(req: &Request) -> Option<Response> {
    use axum::http::Method;
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let is_json = |v: &str| {
        let mime = v
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    };
    let typed = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !writes || typed.is_some_and(is_json) || (typed.is_none() && !has_body) {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be JSON, sent with `Content-Type: application/json`",
        )
        .into_response(),
    )
}

/// The time bound of one request, body included.
fn time_limit(app: &AppState, req: &Request) -> std::time::Duration {
    // A proof runs a solver over every request kind of the folder: seconds, not milliseconds.
    if req.uri().path() == "/v1/console/prove" {
        app.config
            .limits
            .request_timeout
            .max(decision::console::PROVE_TIMEOUT)
    } else {
        app.config.limits.request_timeout
    }
}

fn on_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a handler panicked");
    ApiError::internal(format!("panic: {detail}")).into_response()
}
