//! `/v1/console/*`: the product owner's console behind `GET /`.
//!
//! A product owner changes rights on the page; the page sends the changes as [`Edit`]s of
//! `roles.toml` and the console answers what they do before anything is saved: the file's text
//! diff, the matrix cells and fixture outcomes that change (`portcullis diff`'s engine), and on
//! request whether the folder's properties still hold (`portcullis verify`'s prover). A save
//! writes the file the way a person would (comments, order and layout kept), only when the
//! result builds, and reloads it like any other edit; the last [`HISTORY`] saves can be undone.
//! The page also tries the folder as one of its users: the fixtures' users, decided against
//! their fixture file's entities, or (through the decision API) the stored users.
//!
//! Off unless `console` is set; guarded by the service API key like the decision API (a
//! server beyond loopback always has one). Edits are checked against the version the page
//! saw: a save over a folder that changed since answers 409, never overwrites.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_engine::diff;
use portcullis_engine::properties;
use portcullis_engine::roles::edit::{self, Edit};
use portcullis_engine::{fixtures, Diagnostics, EntityRef, Slot, Snapshot};
use portcullis_engine::{SourceLimits, SourceSet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::policy::rfc3339;
use crate::console::{Save, HISTORY};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::openapi::{ConsoleRefused, ErrorResponse};
use crate::state::AppState;

/// How long a proof may take (the request timeout, when longer, wins).
pub const PROVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Most edits in one request.
pub const MAX_EDITS: usize = 200;
/// The file the console edits.
const ROLES: &str = "roles.toml";

/// The body of preview, prove and save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConsoleEdits)]
pub struct EditsBody {
    /// The policy version the page shows (from `GET /v1/policy`): edits apply to it.
    pub base: String,
    /// The changes, in order (at most 200).
    #[schema(max_items = 200)]
    pub edits: Vec<Edit>,
}

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "console_disabled",
        "the console is off; start the server with `--console` (or `console = true`, `PORTCULLIS_CONSOLE=true`)",
    )
}

fn enabled(app: &AppState) -> Result<(), ApiError> {
    if app.config.console {
        Ok(())
    } else {
        Err(disabled())
    }
}

fn stale(served: &str, base: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "stale_version",
        format!("the edits were made on version {base}, but version {served} is served now; reload the page to see the changes"),
    )
}

/// The edited folder: the new `roles.toml` text and its build.
struct Edited {
    old_text: String,
    new_text: String,
    built: Result<Snapshot, Diagnostics>,
}

/// Applies the edits to the served folder's `roles.toml` and builds the result.
async fn edited(app: &Arc<AppState>, body: &EditsBody) -> Result<(Arc<Snapshot>, Edited), ApiError> {
    enabled(app)?;
    if body.edits.len() > MAX_EDITS {
        return Err(ApiError::bad_request(
            "invalid_edit",
            format!("at most {MAX_EDITS} edits at once"),
        ));
    }
    let served = app.served();
    let snapshot = served.snapshot.clone();
    if snapshot.version() != body.base {
        return Err(stale(snapshot.version(), &body.base));
    }
    let sources = snapshot.sources().clone();
    let edits = body.edits.clone();
    let built = tokio::task::spawn_blocking(move || build_edited(sources, &edits))
        .await
        .map_err(ApiError::internal)??;
    Ok((snapshot, built))
}

fn build_edited(mut sources: SourceSet, edits: &[Edit]) -> Result<Edited, ApiError> {
    let Some(roles) = sources.roles.as_mut() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_roles_file",
            "this folder has no roles.toml, so it has no matrix to edit",
        ));
    };
    let old_text = roles.text.clone();
    let new_text =
        edit::apply(&old_text, edits).map_err(|e| ApiError::bad_request("invalid_edit", e.to_string()))?;
    roles.text = new_text.clone();
    Ok(Edited {
        old_text,
        new_text,
        built: Snapshot::build(sources),
    })
}

fn build_failed(d: &Diagnostics) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": {
            "code": "build_failed",
            "message": format!("the edited folder does not build: {}", d.render_human("").lines().next().unwrap_or_default()),
            "diagnostics": d,
            "text": d.render_human(""),
        }})),
    )
        .into_response()
}

/// The console's overview: role model, actions, fixture worlds and their users, stored users, saves
///
/// What the page builds its forms from.
#[utoipa::path(get, path = "/v1/console",
    responses((status = 200, description = "the overview", body = Object), ConsoleRefused))]
pub async fn overview(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    enabled(&app)?;
    let served = app.served();
    let s = served.snapshot.clone();
    let worlds = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || worlds(&s))
            .await
            .map_err(ApiError::internal)?
    };
    let mut stored = Vec::new();
    if let Some(m) = app.manage.get() {
        let q = portcullis_store::UserQuery {
            limit: Some(500),
            ..Default::default()
        };
        let page = m.gate.read().list_users(&q).await.map_err(ApiError::internal)?;
        let user_type = s.user_type();
        for u in page.items {
            stored.push(json!({
                "uid": format!("{user_type}::{}", Value::String(u.id.clone())),
                "id": u.id,
                "name": u.name,
                "login": u.login,
                "company": u.company,
                "role": u.role,
            }));
        }
    }
    let mut by_action: BTreeMap<String, (cedar_policy::EntityUid, Vec<String>, Vec<String>)> =
        BTreeMap::new();
    for env in s.schema().request_envs() {
        let id = env.action().id().unescaped().to_owned();
        let e = by_action
            .entry(id)
            .or_insert_with(|| (env.action().clone(), Vec::new(), Vec::new()));
        let (p, r) = (env.principal().to_string(), env.resource().to_string());
        if !e.1.contains(&p) {
            e.1.push(p);
        }
        if !e.2.contains(&r) {
            e.2.push(r);
        }
    }
    let actions: Vec<Value> = by_action
        .into_iter()
        .map(|(id, (uid, principals, resources))| {
            json!({ "id": id, "principals": principals, "resources": resources, "context": s.context_fields(&uid) })
        })
        .collect();
    let history: Vec<Save> = app
        .console
        .history
        .lock()
        .map(|h| h.iter().cloned().collect())
        .unwrap_or_default();
    Ok(Json(json!({
        "version": s.version(),
        "user_type": s.user_type(),
        "model": s.model().map(model_json),
        "actions": actions,
        "worlds": worlds,
        "stored_users": stored,
        "history": history,
    })))
}

fn model_json(m: &portcullis_engine::roles::model::RoleModel) -> Value {
    json!({
        "roles": m.roles.iter().map(|r| json!({ "name": r.name, "title": r.title, "rank": r.rank, "manages": r.manages })).collect::<Vec<_>>(),
        "features": m.features.iter().map(|f| json!({ "name": f.name, "title": f.title, "actions": f.actions.iter().map(|a| &a.value).collect::<Vec<_>>() })).collect::<Vec<_>>(),
        "account_types": m.account_types.iter().map(|a| json!({ "name": a.name, "title": a.title, "roles": a.roles })).collect::<Vec<_>>(),
        "flags": m.flags.iter().map(|f| json!({ "name": f.name, "title": f.title, "max_rank": f.max_rank, "owned_only": f.owned_only })).collect::<Vec<_>>(),
        "groups": m.groups.iter().map(|g| json!({ "name": g.name, "title": g.title })).collect::<Vec<_>>(),
    })
}

/// Each fixture file whose entities load: its users and its other entities by type.
fn worlds(s: &Snapshot) -> Vec<Value> {
    let user_type = s.user_type();
    s.sources()
        .fixtures
        .iter()
        .filter_map(|f| {
            let (entities, _) = fixtures::environment(s, &f.path).ok()?;
            let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for e in entities.iter() {
                let uid = e.uid();
                let ty = uid.type_name().to_string();
                if ty.ends_with("Action") {
                    continue;
                }
                by_type
                    .entry(ty)
                    .or_default()
                    .push(uid.id().unescaped().to_owned());
            }
            let users = by_type.remove(&user_type).unwrap_or_default();
            (!users.is_empty()).then(|| json!({ "file": f.path, "users": users, "entities": by_type }))
        })
        .collect()
}

/// The answer of a preview.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConsolePreview)]
pub struct Preview {
    /// The version the edits were made on.
    base: String,
    /// Whether the edited folder builds.
    builds: bool,
    /// The version the edited folder would have.
    version: Option<String>,
    /// `roles.toml`'s unified diff.
    text_diff: String,
    /// Why it does not build.
    #[schema(value_type = Option<Vec<Object>>)]
    diagnostics: Option<Diagnostics>,
    /// The same, as text.
    diagnostics_text: Option<String>,
    /// The matrix cells that change.
    #[schema(value_type = Vec<Object>)]
    cells: Vec<diff::CellChange>,
    /// The fixture outcomes that change.
    #[schema(value_type = Vec<Object>)]
    outcomes: Vec<diff::OutcomeChange>,
    /// What else the edits open or close.
    notes: Vec<String>,
    /// The folder's fixtures run on the edited folder.
    fixtures: Option<FixtureCount>,
    /// Whether the folder has properties to prove.
    has_properties: bool,
}

/// Fixture cases passed and failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FixtureCount {
    passed: usize,
    failed: usize,
}

/// What edits of roles.toml would change: text diff, matrix cells, fixture outcomes; nothing is saved
#[utoipa::path(post, path = "/v1/console/preview", request_body = EditsBody,
    responses((status = 200, description = "the preview", body = Preview), ConsoleRefused))]
pub async fn preview(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<EditsBody>,
) -> Result<Json<Preview>, ApiError> {
    let (old, e) = edited(&app, &body).await?;
    let text_diff = edit::unified_diff(ROLES, &e.old_text, &e.new_text);
    let has_properties = app.config.policies.join(properties::PROPERTIES_DIR).is_dir();
    let p = match e.built {
        Err(d) => Preview {
            base: body.base,
            builds: false,
            version: None,
            text_diff,
            diagnostics_text: Some(d.render_human("")),
            diagnostics: Some(d),
            cells: Vec::new(),
            outcomes: Vec::new(),
            notes: Vec::new(),
            fixtures: None,
            has_properties,
        },
        Ok(new) => {
            let (d, count) = tokio::task::spawn_blocking(move || {
                let d = diff::compare(&old, &new);
                let count = fixtures::run(&new).ok().map(|r| FixtureCount {
                    passed: r.passed(),
                    failed: r.failed(),
                });
                (d, count)
            })
            .await
            .map_err(ApiError::internal)?;
            Preview {
                base: body.base,
                builds: true,
                version: Some(d.new_version),
                text_diff,
                diagnostics: None,
                diagnostics_text: None,
                cells: d.cells,
                outcomes: d.outcomes,
                notes: d.notes,
                fixtures: count,
                has_properties,
            }
        }
    };
    Ok(Json(p))
}

/// Whether the folder's properties hold with the edits (cvc5)
///
/// The folder's properties and the built-in ones, each refuted one with its counterexample.
/// Properties that compare with another version of the folder are left out (run `portcullis
/// verify` for them).
#[utoipa::path(post, path = "/v1/console/prove", request_body = EditsBody,
    responses((status = 200, description = "one verdict per property", body = Object), ConsoleRefused, (status = 422, response = ErrorResponse)))]
pub async fn prove(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<EditsBody>,
) -> Result<Response, ApiError> {
    let _one = app.console.proving.lock().await;
    let (_, e) = edited(&app, &body).await?;
    let new = match e.built {
        Ok(s) => s,
        Err(d) => return Ok(build_failed(&d)),
    };
    let folder = app.config.policies.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut props = properties::built_in(&new);
        let written = properties::load(&folder, &new).map_err(|errors| errors.join("; "))?;
        let (kept, skipped): (Vec<_>, Vec<_>) = written.into_iter().partition(|p| p.claim.other().is_none());
        props.extend(kept);
        let verdicts = crate::verify::prove(&new, &props, &crate::verify::Others::new()).map_err(|e| e.to_string())?;
        Ok::<_, String>(json!({
            "verdicts": verdicts,
            "skipped": skipped.iter().map(|p| json!({ "name": p.name, "source": p.source })).collect::<Vec<_>>(),
        }))
    })
    .await
    .map_err(ApiError::internal)?;
    match answer {
        Ok(v) => Ok(Json(v).into_response()),
        Err(message) => Err(ApiError::new(StatusCode::CONFLICT, "cannot_prove", message)),
    }
}

/// Writes `text` as the folder's `roles.toml`: a temporary file beside it, synced, renamed
/// over it, so a reader sees the old file or the new one, never half of one.
fn write_roles(folder: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = folder.join(format!(".{ROLES}.console-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, folder.join(ROLES))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The `roles.toml` on disk now.
async fn on_disk(app: &AppState) -> Result<String, ApiError> {
    let folder = app.config.policies.clone();
    tokio::task::spawn_blocking(move || SourceSet::read(&folder, SourceLimits::default()))
        .await
        .map_err(ApiError::internal)?
        .map_err(|d| {
            ApiError::new(
                StatusCode::CONFLICT,
                "folder_unreadable",
                format!("the policy folder cannot be read: {}", d.render_human("")),
            )
        })?
        .roles
        .map(|f| f.text)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_roles_file",
                "the folder has no roles.toml",
            )
        })
}

/// Writes `text`, reloads, and answers the installed version.
async fn write_and_reload(app: &Arc<AppState>, text: &str) -> Result<crate::state::Installed, ApiError> {
    let folder = app.config.policies.clone();
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || write_roles(&folder, &text))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::new(
                StatusCode::CONFLICT,
                "write_failed",
                format!("roles.toml cannot be written: {e}"),
            )
        })?;
    app.reload().await.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            format!(
                "roles.toml was written but the folder did not reload: {}",
                e.summary()
            ),
        )
    })
}

async fn audit(app: &AppState, action: &str, details: Value) {
    let Some(m) = app.manage.get() else { return };
    let details: Map<String, Value> = match details {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let entry = portcullis_store::NewAuditEntry {
        actor: Some("console".to_owned()),
        company: None,
        action: action.to_owned(),
        target: Some(format!("policy:{ROLES}")),
        outcome: portcullis_store::Outcome::Success,
        details,
    };
    if let Err(e) = m.gate.record_decision(entry).await {
        tracing::warn!(error = %e, "the console's audit row was not written");
    }
}

/// Write the edits to roles.toml when the result builds, and reload
///
/// Answers the new version; 409 when the folder changed since `base`, 422 with the
/// diagnostics when the result does not build.
#[utoipa::path(post, path = "/v1/console/save", request_body = EditsBody,
    responses((status = 200, description = "the installed version and the save", body = Object), ConsoleRefused, (status = 422, response = ErrorResponse)))]
pub async fn save(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<EditsBody>,
) -> Result<Response, ApiError> {
    enabled(&app)?;
    let _one = app.console.saving.lock().await;
    let (served, e) = edited(&app, &body).await?;
    // What is on disk must be what is served: an edit saved in an editor and not yet reloaded
    // is never overwritten.
    if on_disk(&app).await? != e.old_text {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_version",
            "roles.toml changed on disk since this version was served; reload the page once the server has reloaded it",
        ));
    }
    if e.new_text == e.old_text {
        return Err(ApiError::bad_request("invalid_edit", "the edits change nothing"));
    }
    if let Err(d) = &e.built {
        return Ok(build_failed(d));
    }
    let installed = write_and_reload(&app, &e.new_text).await?;
    let save = Save {
        id: app
            .console
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1,
        at: rfc3339(SystemTime::now()),
        before_version: served.version().to_owned(),
        after_version: installed.version.to_string(),
        edits: body.edits,
        text_diff: edit::unified_diff(ROLES, &e.old_text, &e.new_text),
        before: e.old_text,
        after: e.new_text,
    };
    audit(
        &app,
        "policy.console_save",
        json!({ "save": save.id, "before_version": save.before_version, "after_version": save.after_version, "edits": save.edits }),
    )
    .await;
    if let Ok(mut h) = app.console.history.lock() {
        h.push_front(save.clone());
        h.truncate(HISTORY);
    }
    Ok(
        Json(json!({ "version": installed.version, "generation": installed.generation, "save": save }))
            .into_response(),
    )
}

/// Put roles.toml back as it was before the last save
///
/// Only when the file is still as that save left it (else 409: undo never overwrites a later
/// edit).
#[utoipa::path(post, path = "/v1/console/undo",
    responses((status = 200, description = "the installed version and the save undone", body = Object), ConsoleRefused, (status = 422, response = ErrorResponse)))]
pub async fn undo(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    enabled(&app)?;
    let _one = app.console.saving.lock().await;
    let last = app.console.history.lock().ok().and_then(|h| h.front().cloned());
    let Some(last) = last else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_undo",
            "no save of this console to undo",
        ));
    };
    if on_disk(&app).await? != last.after {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "changed_since",
            format!(
                "roles.toml was changed after save {}; undoing it would overwrite that change",
                last.id
            ),
        ));
    }
    let installed = write_and_reload(&app, &last.before).await?;
    if let Ok(mut h) = app.console.history.lock() {
        if h.front().is_some_and(|s| s.id == last.id) {
            h.pop_front();
        }
    }
    audit(
        &app,
        "policy.console_undo",
        json!({ "save": last.id, "version": installed.version.to_string() }),
    )
    .await;
    Ok(Json(
        json!({ "version": installed.version, "generation": installed.generation, "undone": last }),
    ))
}

/// The body of `POST /v1/console/try`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConsoleTry)]
pub struct TryBody {
    /// The fixture file whose world the user lives in, e.g. `fixtures/common.toml`.
    pub world: String,
    /// The user's id.
    pub user: String,
    /// One decision: the action…
    #[serde(default)]
    pub action: Option<String>,
    /// …and the resource (`Type::"id"`).
    #[serde(default)]
    pub resource: Option<String>,
    /// The request context.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
}

/// A fixture user's rights per resource type, or one decision explained
///
/// A fixture user of the served folder, decided against its fixture file's entities: without
/// `action`, what it may do on a new record of each resource type (the matrix's features, by
/// title); with `action` and `resource`, that one decision, explained.
#[utoipa::path(post, path = "/v1/console/try", request_body = TryBody,
    responses((status = 200, description = "rights per resource type, or the explanation", body = Object), ConsoleRefused))]
pub async fn try_as(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<TryBody>,
) -> Result<Json<Value>, ApiError> {
    enabled(&app)?;
    let s = app.served().snapshot.clone();
    tokio::task::spawn_blocking(move || try_blocking(&s, body))
        .await
        .map_err(ApiError::internal)?
}

fn try_blocking(s: &Snapshot, body: TryBody) -> Result<Json<Value>, ApiError> {
    let (entities, policies) = fixtures::environment(s, &body.world)
        .map_err(|d| ApiError::bad_request("invalid_world", d.render_human("")))?;
    let principal = s.resolve(&EntityRef::Text(body.user.clone()), Slot::Principal)?;
    if entities.get(&principal).is_none() {
        return Err(ApiError::bad_request(
            "unknown_user",
            format!("no user `{}` in {}", body.user, body.world),
        ));
    }
    match (&body.action, &body.resource) {
        (Some(action), Some(resource)) => {
            let action = s.resolve(&EntityRef::Text(action.clone()), Slot::Action)?;
            let resource = s.resolve(&EntityRef::Text(resource.clone()), Slot::Resource)?;
            let prepared = s.prepare_with(principal, action, resource, body.context, entities)?;
            let x = s.explain_with(&prepared, &policies);
            Ok(Json(json!({ "explanation": x, "text": x.render() })))
        }
        (None, None) => {
            let mut types: Vec<cedar_policy::EntityTypeName> = s
                .schema()
                .request_envs()
                .filter(|e| e.principal() == principal.type_name())
                .map(|e| e.resource().clone())
                .collect();
            types.sort_by_key(ToString::to_string);
            types.dedup();
            let mut out = Vec::new();
            for ty in types {
                let p =
                    s.permissions_for_type(&principal, &ty, &body.context, entities.clone(), &policies)?;
                out.push(json!({
                    "resource_type": ty.to_string(),
                    "allowed": p.allowed,
                    "features": p.features.iter().filter(|f| f.allowed).map(|f| json!({ "feature": f.feature, "title": f.title })).collect::<Vec<_>>(),
                }));
            }
            Ok(Json(
                json!({ "user": body.user, "world": body.world, "by_type": out }),
            ))
        }
        _ => Err(ApiError::bad_request(
            "invalid_body",
            "give both `action` and `resource` for a decision, or neither for what the user may do",
        )),
    }
}
