//! The one error type of the HTTP API and its envelope `{ "error": { "code", "message" } }`.
//!
//! Handlers, extractors and middleware all answer through [`ApiError`]; bad input is a 4xx
//! with a stable code, and a 5xx is logged in full but sent as a bare "internal error".

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_engine::RequestError;
use serde::Serialize;
use utoipa::ToSchema;

/// The error envelope every failure answers: `{ "error": { "code", "message" } }`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorFields,
}

/// The fields of the error envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorFields {
    /// A stable, machine-readable code (`invalid_body`, `forbidden`, …).
    pub code: String,
    /// What is wrong, for a human.
    pub message: String,
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// What is wrong, for a human.
    pub message: String,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500: the detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    /// 404 for an unknown route.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// The envelope's fields.
    pub fn fields(&self) -> ErrorFields {
        ErrorFields {
            code: self.code.to_owned(),
            message: self.message.clone(),
        }
    }

    /// The envelope.
    pub fn body(&self) -> ErrorEnvelope {
        ErrorEnvelope { error: self.fields() }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self::bad_request(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme that would be accepted.
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
        }
        r
    }
}
