//! `ApiJson<T>`: the JSON body extractor whose every rejection is an [`ApiError`] (query
//! strings and paths: `super::extract`).
//!
//! The body is read under the configured size limit (413 past it), its nesting depth is
//! checked before any parsing (400 `too_deep`, so a 100,000-deep array costs one linear scan
//! and no recursion), and it is then parsed (400 `malformed_json` for bad syntax,
//! `invalid_body` for a valid JSON value of the wrong shape).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::AppState;

/// A JSON body, parsed with the server's limits.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the request body is larger than the limit of {} bytes",
                        state.config.limits.max_body_bytes
                    ),
                )
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        parse(&bytes, state.config.limits.max_json_depth).map(ApiJson)
    }
}

/// Every request body of the API is a JSON object. serde would also build a struct from an
/// array of its fields in order (`["admin"]` as `{"role": "admin"}`), which no client means.
/// A body that is not JSON at all is left to [`parse`] to report as `malformed_json`; run it
/// after [`check_depth`], which bounds the look.
pub fn check_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => Ok(()),
        _ => Err(ApiError::bad_request(
            "invalid_body",
            "the request body must be a JSON object",
        )),
    }
}

/// Parses a body after checking its depth and that it is an object.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, ApiError> {
    check_depth(bytes, max_depth)?;
    check_object(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "malformed_json",
            Category::Data => "invalid_body",
        };
        ApiError::bad_request(code, crate::lower_first(&e.to_string()))
    })
}

/// Fails when arrays and objects nest deeper than `max`, ignoring brackets inside strings.
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError::bad_request(
                        "too_deep",
                        format!("the request nests JSON deeper than the limit of {max} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_depth, check_object};

    #[test]
    fn a_body_must_be_an_object() {
        assert!(check_object(br#" {"role": "admin"}"#).is_ok());
        assert!(check_object(br#"["admin"]"#).is_err());
        assert!(check_object(b"[null, null]").is_err());
        assert!(check_object(b"null").is_err());
        // Not JSON: left to the parser's `malformed_json`.
        assert!(check_object(b"[1,").is_ok());
        assert!(check_object(b"").is_ok());
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(check_depth(br#"{"a": "[[[[[[", "b": [[1]]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a": [[[1]]]}"#, 3).is_err());
        assert!(check_depth(br#"{"a": "\"[[[["}"#, 1).is_ok());
    }
}
