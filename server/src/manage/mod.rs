//! The management service: the user store behind the server, decisions by stored user id,
//! and the governed writes the management API (`/v1/` users, invitations, visitor grants,
//! audit; its HTTP handlers are the adapter [`crate::http::manage`]) and sign-in make.
//!
//! A service: it may import the other services ([`crate::auth`], [`crate::decision`],
//! [`crate::state`]), the error envelope ([`crate::http::error`]), the store and the engine;
//! never an HTTP adapter (`crate::http::{decision,manage,signin}`);
//! `tests/integration/layers.rs` checks. [`targets`] holds what both the management and the
//! sign-in adapters decide on (a stored user, a prospective one, a company).
//!
//! Input: the store named by `Config::database_url` (opened and migrated at start by
//! [`attach`]). Output: [`Manage`] in `AppState::manage`, whose [`cache::FactsCache`] feeds
//! `POST /v1/authorize` with stored principals, and whose [`governance::Gate`] is the only way
//! to write: every write takes an [`governance::Authorized`] proof that only an Allow decision
//! of the engine produces.
//!
//! ```text
//! API key ─> Caller ─> Gate::decide(op, resource, context) ─Allow─> Authorized<Op> ─> Gate write ─> cache cleared
//!                                                         └─Deny──> 403 + audit row (denied)
//! ```

pub mod cache;
pub mod entities;
pub mod governance;
pub mod reads;
pub mod targets;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use portcullis_store::{StoreError, StoreLimits, SystemClock, UserStore};

use crate::http::error::ApiError;
use crate::state::AppState;

pub use cache::FactsCache;
pub use governance::{Authorized, Gate};

/// How often the change feed is polled, besides PostgreSQL notifications.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a server prunes the change feed (`ChangeRetention::default()`: rows both
/// 100,000 versions behind and a day old go). Caches here clear fully whenever the version
/// moves, so no cursor of theirs can fall behind the horizon.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// The store, its gate and its cache.
#[derive(Debug)]
pub struct Manage {
    /// The only path to store writes.
    pub gate: Gate,
    /// Stored users' facts, cleared by every write.
    pub cache: FactsCache,
    /// Sign-in: hashing, sessions, two-factor.
    pub auth: crate::auth::Auth,
    /// Logins whose reset link is to be made and delivered, by one background task.
    pub resets: tokio::sync::mpsc::Sender<String>,
}

/// Opens a store by URL (`postgres://…` or a SQLite file) and migrates it; with PostgreSQL
/// also returns the concrete store, for `LISTEN`.
pub async fn open_store(
    url: &str,
) -> Result<(Arc<dyn UserStore>, Option<Arc<portcullis_store::PgStore>>), StoreError> {
    let clock = Arc::new(SystemClock);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = Arc::new(portcullis_store::PgStore::connect(url, clock, StoreLimits::default()).await?);
        pg.migrate().await?;
        let store: Arc<dyn UserStore> = pg.clone();
        Ok((store, Some(pg)))
    } else {
        let store = portcullis_store::open(url, clock, StoreLimits::default()).await?;
        store.migrate().await?;
        Ok((store, None))
    }
}

/// Opens the configured store, migrates it, installs [`Manage`] in the state and starts the
/// invalidation tasks. Without a `database_url` it does nothing.
pub async fn attach(state: &Arc<AppState>) -> Result<(), String> {
    let Some(url) = state.config.database_url.clone() else {
        return Ok(());
    };
    let (store, pg) = open_store(&url).await.map_err(|e| e.to_string())?;
    sync_groups(&*store, state).await?;
    let start = store.version().await.map_err(|e| e.to_string())?;
    let sign_in = state.config.sign_in.clone();
    let sealer = crate::auth::load_key(&sign_in, &url)?;
    let auth = crate::auth::Auth::new(sign_in, sealer, Arc::new(SystemClock), state.metrics.clone())?;
    let (resets, queue) = tokio::sync::mpsc::channel(crate::auth::resets::RESET_QUEUE);
    let manage = Arc::new(Manage {
        gate: Gate::new(store),
        cache: FactsCache::new(state.config.caches.users),
        auth,
        resets,
    });
    crate::auth::resets::spawn_resets(Arc::downgrade(state), queue);
    let _ = state.manage.set(manage.clone());
    cache::spawn_invalidation(Arc::downgrade(&manage), pg, start);
    let weak = Arc::downgrade(&manage);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PRUNE_INTERVAL).await;
            let Some(m) = weak.upgrade() else { return };
            match m.gate.prune_changes().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned the change feed"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the change feed"),
            }
        }
    });
    Ok(())
}

/// The folder's permission groups (`[permission_groups.*]` of roles.toml) exist in the store,
/// so that users can be put in them: a group the store does not hold is created with the
/// folder's features, its initial definition; from then on the store's features define it
/// entirely (an admin edits them over `PATCH /v1/groups/{name}`). The folder's default group
/// becomes the store's default unless the store already has one (an admin's or an operator's
/// choice wins). Groups the store holds are left as they are, except those written before
/// stored features defined a group (they held what they added to the folder's): each is
/// defined once as the folder's features with its own. One another instance creates or
/// defines at the same moment is taken as it is.
async fn sync_groups(store: &dyn UserStore, state: &AppState) -> Result<(), String> {
    let served = state.served();
    let Some(model) = served.snapshot.model() else {
        return Ok(());
    };
    let existing = store.list_groups().await.map_err(|e| e.to_string())?;
    let mut has_default = existing.iter().any(|g| g.is_default);
    let audit = portcullis_store::Audit::system().with("via", "policy folder");
    for g in &model.groups {
        if existing.iter().any(|e| e.name == g.name) {
            continue;
        }
        let new = portcullis_store::NewGroup {
            name: g.name.clone(),
            description: g.title.clone(),
            features: g.features.clone(),
            is_default: g.default && !has_default,
        };
        match store.create_group(new, &audit).await {
            Ok(created) => has_default |= created.is_default,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(format!("cannot create permission group `{}`: {e}", g.name)),
        }
    }
    for g in store.undefined_groups().await.map_err(|e| e.to_string())? {
        let mut features = model
            .groups
            .iter()
            .find(|d| d.name == g.name)
            .map(|d| d.features.clone())
            .unwrap_or_default();
        for f in g.features {
            if !features.contains(&f) {
                features.push(f);
            }
        }
        store
            .define_group(&g.name, features, &audit)
            .await
            .map_err(|e| format!("cannot define permission group `{}`: {e}", g.name))?;
    }
    if !has_default {
        if let Some(g) = model.groups.iter().find(|g| g.default) {
            store
                .set_default_group(Some(&g.name), &audit)
                .await
                .map_err(|e| format!("cannot make `{}` the default group: {e}", g.name))?;
        }
    }
    Ok(())
}

/// The store of a server, or 503 when it runs without one.
pub fn manage(app: &AppState) -> Result<&Arc<Manage>, ApiError> {
    app.manage.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_store",
            "this server runs without a user store",
        )
    })
}

/// A store error as the API answers it; conflicts keep the name of their constraint.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        StoreError::Conflict {
            ref constraint,
            ref message,
        } => {
            let code = match constraint.as_str() {
                "users_login_key" => "login_taken",
                "users_email_key" => "email_taken",
                "users_pkey" | "companies_pkey" | "permission_groups_pkey" => "already_exists",
                "visitor_grants_company_check" => "grant_same_company",
                _ => "conflict",
            };
            ApiError::new(StatusCode::CONFLICT, code, format!("{message} ({constraint})"))
        }
        StoreError::LimitReached { .. } => {
            ApiError::new(StatusCode::CONFLICT, "limit_reached", e.to_string())
        }
        StoreError::Expired { .. } => ApiError::new(StatusCode::GONE, "expired", e.to_string()),
        StoreError::Invalid(m) => ApiError::bad_request("invalid", m),
        StoreError::Backend(m) => ApiError::internal(m),
    }
}

/// The authenticated user of a management call: an API key bound to a stored user, or a
/// signed-in session (`pcs_…`).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's id.
    pub id: String,
    /// The user's company.
    pub company: String,
    /// The key's id, or the session's.
    pub key: String,
    /// The session, when the caller signed in rather than using an API key.
    pub session: Option<portcullis_store::Session>,
}

impl Caller {
    /// Whether the caller's session passed a second factor (API keys have none).
    pub fn mfa(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.mfa)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The presented key: `Authorization: Bearer KEY` or `X-Api-Key: KEY`.
pub fn presented_key(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// What a session that has not passed a second factor may still call when its user must use
/// one (`sign_in.require_mfa_roles`, `sign_in.require_mfa_attribute`): enrol, look at itself,
/// sign out. Everything else answers 403 `mfa_enrollment_required`, decided on every request,
/// so a role change that makes a second factor required takes effect at once.
const ENROLMENT_PATHS: [&str; 6] = [
    "/v1/auth/totp/enrol",
    "/v1/auth/totp/confirm",
    "/v1/auth/passkeys/register",
    "/v1/auth/passkeys",
    "/v1/auth/session",
    "/v1/auth/logout",
];

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, ApiError> {
        let m = manage(app)?;
        let Some(key) = presented_key(parts) else {
            return Err(unauthorized("a user API key is required"));
        };
        let read = m.gate.read();
        if key.starts_with("pcs_") {
            let session = match m.auth.session(&m.gate.sign_in(), key).await {
                Ok(s) => s,
                Err(StoreError::NotFound { .. }) => {
                    return Err(unauthorized("the session is not valid or has ended"))
                }
                Err(e) => return Err(store_error(e)),
            };
            let user = read.get_user(&session.user).await.map_err(|e| match e {
                StoreError::NotFound { .. } => unauthorized("the session is not valid or has ended"),
                e => store_error(e),
            })?;
            if !user.active {
                return Err(unauthorized("the session is not valid or has ended"));
            }
            if !session.mfa
                && !ENROLMENT_PATHS.contains(&parts.uri.path())
                && crate::auth::mfa_required(&crate::auth::rules(&app.served()), &user)
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "mfa_enrollment_required",
                    "this account must use a second factor: enrol one (a passkey: POST /v1/auth/passkeys/register and \
                     /v1/auth/passkeys; or TOTP: POST /v1/auth/totp/enrol and /v1/auth/totp/confirm); until then this session can only do that, show itself and sign out",
                ));
            }
            return Ok(Caller {
                id: user.id,
                company: user.company,
                key: session.id.clone(),
                session: Some(session),
            });
        }
        let key = match read.resolve_api_key(key).await {
            Ok(k) => k,
            Err(StoreError::NotFound { .. }) => return Err(unauthorized("the API key is not valid")),
            Err(e) => return Err(store_error(e)),
        };
        let user = match read.get_user(&key.user).await {
            // A deactivated user's keys authenticate nothing, lists and reads included.
            Ok(u) if u.active => u,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Err(unauthorized("the API key is not valid")),
            Err(e) => return Err(store_error(e)),
        };
        Ok(Caller {
            id: user.id,
            company: user.company,
            key: key.id,
            session: None,
        })
    }
}
