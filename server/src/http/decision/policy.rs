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
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::http::openapi::{ErrorResponse, Refused};
use crate::state::{AppState, BuildError};

/// RFC 3339 UTC, to the millisecond (`time`'s formatting, as the user store's times).
pub fn rfc3339(t: SystemTime) -> String {
    let at = time::OffsetDateTime::from(t);
    // Milliseconds, as the user store writes its times.
    let at = at.replace_millisecond(at.millisecond()).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What `GET /v1/policy` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyStatus {
    /// The version served (a digest of the folder).
    pub version: String,
    /// How many builds this server has installed.
    pub generation: u64,
    /// When the served folder was read.
    pub loaded_at: String,
    /// When it began serving.
    pub installed_at: String,
    /// The policy folder.
    pub folder: String,
    /// The Cedar files served.
    pub files: Vec<PolicyFile>,
    /// How many policies.
    pub policies: usize,
    /// The entities file, if any, and how many entities it holds.
    pub entities: EntitiesFile,
    /// When a reload was last tried.
    pub last_reload_at: Option<String>,
    /// Why the last reload failed, while the version before it keeps serving.
    pub last_error: Option<ReloadError>,
}

/// One Cedar file of the folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyFile {
    /// Its path in the folder.
    pub path: String,
    /// Its size.
    pub bytes: usize,
}

/// The entities the server holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntitiesFile {
    /// `--entities`, when given.
    pub file: Option<String>,
    /// How many entities.
    pub count: usize,
}

/// A failed build.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadError {
    /// When.
    pub at: String,
    /// The first error.
    pub message: String,
    /// Every diagnostic, at `file:line:col`.
    #[schema(value_type = Vec<Object>)]
    pub diagnostics: portcullis_engine::Diagnostics,
}

impl ReloadError {
    fn new(at: SystemTime, e: &BuildError) -> Self {
        Self {
            at: rfc3339(at),
            message: e.summary(),
            diagnostics: e.diagnostics.clone(),
        }
    }
}

/// The policy served and the last reload error
#[utoipa::path(get, path = "/v1/policy", responses((status = 200, description = "policy status", body = PolicyStatus)))]
pub async fn policy(State(app): State<Arc<AppState>>) -> Json<PolicyStatus> {
    let served = app.served();
    let s = &served.snapshot;
    let files = s
        .sources()
        .policy_files()
        .map(|f| PolicyFile {
            path: f.path.to_string(),
            bytes: f.text.len(),
        })
        .collect();
    let status = app.reload_status();
    Json(PolicyStatus {
        version: s.version().to_owned(),
        generation: served.generation,
        loaded_at: rfc3339(s.loaded_at()),
        installed_at: rfc3339(served.installed_at),
        folder: app.config.policies.display().to_string(),
        files,
        policies: s.policies().len(),
        entities: EntitiesFile {
            file: app.config.entities.as_ref().map(|p| p.display().to_string()),
            count: served.entities.entities.len(),
        },
        last_reload_at: status.last_attempt.map(rfc3339),
        last_error: status.last_error.as_ref().map(|(at, e)| ReloadError::new(*at, e)),
    })
}

/// The version now served.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// The version.
    pub version: String,
    /// Its generation.
    pub generation: u64,
}

/// Rebuild the policy folder now
///
/// 200 with the version, or 422 with the first error (the version before keeps serving).
#[utoipa::path(post, path = "/v1/policy/reload",
    responses((status = 200, description = "the new version", body = Reloaded), Refused, (status = 422, response = ErrorResponse)))]
pub async fn reload(State(app): State<Arc<AppState>>) -> Result<Json<Reloaded>, ApiError> {
    match app.reload().await {
        Ok(i) => Ok(Json(Reloaded {
            version: i.version.to_string(),
            generation: i.generation,
        })),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            e.summary(),
        )),
    }
}

/// Liveness, or readiness with its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness), `ready`, `draining` or `store_unavailable`.
    pub status: &'static str,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The version served.
    #[schema(value_type = String)]
    pub version: Arc<str>,
}

/// Liveness
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok", body = Health)))]
pub async fn healthz(State(app): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        message: None,
        version: app.served().snapshot.version_arc(),
    })
}

/// Readiness: policies built, user store answering, not draining
///
/// 200 when this instance should get traffic: its policies are built (always, once it
/// listens), its user store answers within a second, and it is not draining after SIGTERM;
/// else 503 with the reason. `GET /healthz` stays liveness only.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready", body = Health),
    (status = 503, description = "not ready: draining, or the store does not answer", body = Health)))]
pub async fn readyz(State(app): State<Arc<AppState>>) -> axum::response::Response {
    let version = app.served().snapshot.version_arc();
    let not_ready = |status: &'static str, message: String| {
        let body = Health {
            status,
            message: Some(message),
            version: version.clone(),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
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
    Json(Health {
        status: "ready",
        message: None,
        version,
    })
    .into_response()
}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
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
