//! `GET /v1/policy`, `POST /v1/policy/reload`, `GET /healthz` and `GET /metrics`.
//!
//! What is served (version, load time, files, entities) and how the last reload went, with
//! every diagnostic of a failed build at `file:line:col`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::state::{AppState, BuildError};

/// RFC 3339 UTC, to the millisecond (`time`'s formatting, as the user store's times).
pub fn rfc3339(t: SystemTime) -> String {
    let at = time::OffsetDateTime::from(t);
    // Milliseconds, as the user store writes its times.
    let at = at.replace_millisecond(at.millisecond()).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn error_json(at: SystemTime, e: &BuildError) -> Value {
    json!({
        "at": rfc3339(at),
        "message": e.summary(),
        "diagnostics": e.diagnostics,
    })
}

/// `GET /v1/policy`.
pub async fn policy(State(app): State<Arc<AppState>>) -> Json<Value> {
    let served = app.served();
    let s = &served.snapshot;
    let files: Vec<Value> = s
        .sources()
        .policy_files()
        .map(|f| json!({ "path": f.path, "bytes": f.text.len() }))
        .collect();
    let status = app.reload_status();
    Json(json!({
        "version": s.version(),
        "generation": served.generation,
        "loaded_at": rfc3339(s.loaded_at()),
        "installed_at": rfc3339(served.installed_at),
        "folder": app.config.policies.display().to_string(),
        "files": files,
        "policies": s.policies().len(),
        "entities": {
            "file": app.config.entities.as_ref().map(|p| p.display().to_string()),
            "count": served.entities.entities.len(),
        },
        "last_reload_at": status.last_attempt.map(rfc3339),
        "last_error": status.last_error.as_ref().map(|(at, e)| error_json(*at, e)),
    }))
}

/// `POST /v1/policy/reload`: rebuilds now; 200 with the version, or 422 with the first error.
pub async fn reload(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    match app.reload().await {
        Ok(i) => Ok(Json(json!({ "version": i.version, "generation": i.generation }))),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            e.summary(),
        )),
    }
}

/// `GET /healthz`.
pub async fn healthz(State(app): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "version": app.served().snapshot.version() }))
}

/// `GET /readyz`: 200 when this instance should get traffic: its policies are built (always,
/// once it listens), its user store answers within a second, and it is not draining after
/// SIGTERM; else 503 with the reason. `GET /healthz` stays liveness only.
pub async fn readyz(State(app): State<Arc<AppState>>) -> axum::response::Response {
    let version = app.served().snapshot.version_arc();
    let not_ready = |status: &str, message: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status, "message": message, "version": version })),
        )
            .into_response()
    };
    if app.is_draining() {
        return not_ready("draining", "the server is shutting down".to_owned());
    }
    if let Some(m) = app.manage.get() {
        let read = m.gate.read();
        match tokio::time::timeout(std::time::Duration::from_secs(1), read.version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return not_ready(
                    "store_unavailable",
                    format!("the user store answers with an error: {e}"),
                )
            }
            Err(_) => {
                return not_ready(
                    "store_unavailable",
                    "the user store did not answer within 1 s".to_owned(),
                )
            }
        }
    }
    Json(json!({ "status": "ready", "version": version })).into_response()
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.tls.get().map(|t| t.reload_counts())),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(super::rfc3339(t), "2023-11-14T22:13:20.123Z");
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_120_999_999);
        assert_eq!(super::rfc3339(t), "2023-11-14T22:13:20.12Z", "to the millisecond");
        assert_eq!(super::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
