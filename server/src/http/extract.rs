//! `ApiQuery<T>` and `ApiPath<T>`: axum's query-string and path extractors with every
//! rejection answered as an [`ApiError`].
//!
//! Input: the request's URI. Output: the deserialized query or path parameters, or a 400 in
//! the JSON envelope (`invalid_query`, `invalid_path`) instead of axum's plain-text rejection,
//! so a client sending `?limit=x` or a path segment that is not UTF-8 gets the same error
//! shape as for a bad body.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Query-string parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(e) => Err(ApiError::new(
                e.status(),
                "invalid_query",
                crate::lower_first(&e.body_text()),
            )),
        }
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(ApiPath(p)),
            // A route whose handler asks for parameters it does not declare is our bug (500,
            // logged); anything else is the client's path.
            Err(e) if e.status().is_server_error() => Err(ApiError::internal(e.body_text())),
            Err(e) => Err(ApiError::new(
                e.status(),
                "invalid_path",
                crate::lower_first(&e.body_text()),
            )),
        }
    }
}
