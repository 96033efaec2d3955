//! The handlers of the sign-in adapter: `/v1/auth/…` for users themselves, and the governed
//! `/v1/users/{id}/unlock` and `/v1/users/{id}/sessions` for admins. Thin: each handler parses,
//! calls [`crate::auth::Auth`] or the [`crate::manage::Gate`], and maps errors to the envelope.

use std::sync::Arc;

use axum::extract::State;

use crate::http::extract::ApiPath;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use portcullis_store::{Audit, Session, StoreError, User};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::auth::{rules, AuthError, Credentials, PasskeyAnswer, SignedIn};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::manage::governance::{
    ListUserSessions, ManageCompanyLink, Resource, RevokeUserSessions, SwitchCustomer, UnlockUser,
};
use crate::manage::targets::{decide_on_user, parts};
use crate::manage::{manage, store_error, Caller, Manage};
use crate::state::{AppState, Served};

/// The sign-in routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/session", get(current))
        .route("/v1/auth/sessions", get(my_sessions))
        .route("/v1/auth/sessions/{id}", delete(revoke_mine))
        .route("/v1/auth/sessions/revoke-others", post(revoke_others))
        .route("/v1/auth/password", post(change_password))
        .route("/v1/auth/password-reset", post(request_reset))
        .route("/v1/auth/password-reset/confirm", post(confirm_reset))
        .route("/v1/auth/email/confirm", post(confirm_email))
        .route("/v1/auth/totp/enrol", post(totp_enrol))
        .route("/v1/auth/totp/confirm", post(totp_confirm))
        .route("/v1/auth/totp/disable", post(totp_disable))
        .route(
            "/v1/auth/passkeys",
            get(my_passkeys).post(passkey_register_finish),
        )
        .route("/v1/auth/passkeys/register", post(passkey_register_start))
        .route("/v1/auth/passkeys/{id}", delete(passkey_remove))
        .route("/v1/auth/passkey/challenge", post(passkey_challenge))
        .route("/v1/auth/passkey/login", post(passkey_login))
        .route("/v1/auth/link", post(link_login))
        .route("/v1/auth/switch", post(switch_customer))
        .route("/v1/companies/{id}/links", post(create_link))
        .route("/v1/companies/{id}/links/{link}", delete(revoke_link))
        .route("/v1/users/{id}/unlock", post(unlock))
        .route(
            "/v1/users/{id}/sessions",
            get(user_sessions).delete(revoke_user_sessions),
        )
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
            }
            AuthError::MfaRequired => ApiError::new(StatusCode::UNAUTHORIZED, "mfa_required", message),
            AuthError::Weak(_) => ApiError::bad_request("weak_password", message),
            AuthError::InvalidToken => ApiError::bad_request("invalid_token", message),
            AuthError::Passkey(_) => ApiError::bad_request("invalid_passkey", message),
            AuthError::Expired => ApiError::new(StatusCode::GONE, "expired", message),
            AuthError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            AuthError::Internal(m) => ApiError::internal(m),
        }
    }
}

fn session_of(caller: &Caller) -> Result<&Session, ApiError> {
    caller.session.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "this call needs a signed-in session (`Authorization: Bearer pcs_…`), not an API key",
        )
    })
}

async fn me(m: &Manage, caller: &Caller) -> Result<User, ApiError> {
    m.gate.read().get_user(&caller.id).await.map_err(store_error)
}

/// The body of `POST /v1/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Login name.
    pub login: String,
    /// Password.
    pub password: String,
    /// A TOTP code or a recovery code, when two-factor is on.
    #[serde(default)]
    pub code: Option<String>,
    /// Or a passkey's answer to `POST /v1/auth/passkey/challenge`, as the second factor.
    #[serde(default)]
    pub passkey: Option<PasskeyAnswer>,
    /// A label for the device ("MacBook", "Chrome on Windows").
    #[serde(default)]
    pub device: String,
}

/// A new session.
#[derive(Debug, Serialize)]
pub struct LoginAnswer {
    /// The bearer token, shown once.
    pub token: String,
    /// The session.
    pub session: Session,
    /// The user.
    pub user: User,
    /// The user must enrol a second factor before anything a policy guards with MFA.
    pub mfa_setup_required: bool,
}

/// `POST /v1/auth/login`.
pub async fn login(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let (m, served) = parts(&app)?;
    let c = Credentials {
        login: body.login,
        password: Zeroizing::new(body.password),
        code: body.code,
        passkey: body.passkey,
        device: body.device,
    };
    let ok = m.auth.login(&m.gate.sign_in(), &rules(&served), c).await?;
    Ok(Json(LoginAnswer::from(ok)))
}

impl From<SignedIn> for LoginAnswer {
    fn from(ok: SignedIn) -> Self {
        LoginAnswer {
            token: ok.token.expose().to_owned(),
            session: ok.session,
            user: ok.user,
            mfa_setup_required: ok.mfa_setup_required,
        }
    }
}

/// `POST /v1/auth/logout`: ends the caller's session.
pub async fn logout(State(app): State<Arc<AppState>>, caller: Caller) -> Result<StatusCode, ApiError> {
    let m = manage(&app)?;
    let s = session_of(&caller)?;
    m.gate
        .sign_in()
        .store
        .revoke_session(
            &s.id,
            &Audit::by(caller.id.clone()).in_company(caller.company.clone()),
        )
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/session`: the caller's session and user, and whether the session can only
/// enrol a second factor until it has (`mfa_setup_required`).
pub async fn current(State(app): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let (m, served) = parts(&app)?;
    let s = session_of(&caller)?;
    let user = me(&m, &caller).await?;
    let setup = !s.mfa && crate::auth::mfa_required(&rules(&served), &user);
    Ok(Json(
        json!({ "session": s, "user": user, "mfa_setup_required": setup }),
    ))
}

/// `GET /v1/auth/sessions`: the caller's live sessions, newest first.
pub async fn my_sessions(State(app): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    let current = session_of(&caller)?.id.clone();
    let list = m
        .auth
        .sessions(&m.gate.sign_in(), &caller.id)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "current": current, "sessions": list })))
}

/// `DELETE /v1/auth/sessions/{id}`: ends one of the caller's sessions.
pub async fn revoke_mine(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let store = m.gate.sign_in().store;
    // Someone else's session is answered as a missing one: ids are not probed.
    match store.get_session(&id).await {
        Ok(s) if s.user == caller.id => {}
        Ok(_) | Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found()),
        Err(e) => return Err(store_error(e)),
    }
    store
        .revoke_session(
            &id,
            &Audit::by(caller.id.clone()).in_company(caller.company.clone()),
        )
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/sessions/revoke-others`: signs the caller out everywhere else.
pub async fn revoke_others(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    let s = session_of(&caller)?;
    let audit = Audit::by(caller.id.clone()).in_company(caller.company.clone());
    let n = m
        .gate
        .sign_in()
        .store
        .revoke_sessions(&caller.id, Some(&s.id), &audit)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "revoked": n })))
}

/// The body of `POST /v1/auth/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// The password now.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// `POST /v1/auth/password`: the signed-in user changes its password; its other sessions end.
pub async fn change_password(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<StatusCode, ApiError> {
    let (m, served) = parts(&app)?;
    let s = session_of(&caller)?.id.clone();
    let user = me(&m, &caller).await?;
    let r = rules(&served);
    let access = m.gate.sign_in();
    m.auth
        .reverify(&access, &r, &user, Zeroizing::new(body.current_password))
        .await?;
    let context = [user.login.as_str(), user.email.as_deref().unwrap_or("")];
    let phc = m
        .auth
        .new_password(&r, Zeroizing::new(body.new_password), &context)
        .await?;
    let audit = Audit::by(caller.id.clone()).in_company(caller.company.clone());
    access
        .store
        .change_password(&user.id, phc, Some(&s), &audit)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /v1/auth/password-reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    /// The login (an email address, for self-service).
    pub login: String,
}

/// `POST /v1/auth/password-reset`: always the same 202. The login is queued and its link made
/// and handed to the `password_reset_command` by one background task, so neither the body nor
/// the time of the answer says whether the login exists. Only logins that are email addresses
/// can self-serve (the service portal); a folder that declares the action `user.password_reset` decides it too
/// (principal and resource: the user).
pub async fn request_reset(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ResetRequestBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let m = manage(&app)?;
    if m.resets.try_send(body.login.trim().to_owned()).is_err() {
        tracing::warn!("the password-reset queue is full; a request was dropped");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "accepted",
            "message": "if the login exists and is an email address, a reset link is on its way",
        })),
    ))
}

/// The body of `POST /v1/auth/password-reset/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The token from the link.
    pub token: String,
    /// The new password.
    pub password: String,
}

/// `POST /v1/auth/password-reset/confirm`: sets the password once, unlocks, ends every
/// session and revokes the API keys those sessions made.
pub async fn confirm_reset(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<Value>, ApiError> {
    let (m, served) = parts(&app)?;
    let phc = m
        .auth
        .new_password(&rules(&served), Zeroizing::new(body.password), &[])
        .await?;
    let user = m
        .gate
        .sign_in()
        .store
        .reset_password(&body.token, phc, &Audit::system())
        .await
        .map_err(token_error)?;
    Ok(Json(json!({ "user": user.id, "status": "password set" })))
}

/// A link's token refused by the store: unknown or used (400 `invalid_token`), expired (410).
fn token_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => AuthError::InvalidToken.into(),
        StoreError::Expired { .. } => AuthError::Expired.into(),
        e => store_error(e),
    }
}

/// The body of `POST /v1/auth/email/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfirmBody {
    /// The token of the link sent to the new address.
    pub token: String,
}

/// `POST /v1/auth/email/confirm`: the link sent to a new e-mail address puts it in force
/// (once, before it expires, while no other user has taken the address). The token is the
/// credential: no key or session is needed.
pub async fn confirm_email(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<EmailConfirmBody>,
) -> Result<Json<User>, ApiError> {
    let m = manage(&app)?;
    let user = m
        .gate
        .sign_in()
        .store
        .confirm_email_change(&body.token, &Audit::system())
        .await
        .map_err(token_error)?;
    m.cache.clear();
    Ok(Json(user))
}

/// `POST /v1/auth/totp/enrol`: a new TOTP secret for the signed-in user.
pub async fn totp_enrol(State(app): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let user = me(m, &caller).await?;
    let e = m.auth.enrol(&m.gate.sign_in(), &user, "Portcullis").await?;
    Ok(Json(json!(e)))
}

/// The body of `POST /v1/auth/totp/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// A code from the authenticator app.
    pub code: String,
}

/// `POST /v1/auth/totp/confirm`: turns TOTP on with a first code; answers the recovery codes
/// (shown once) and marks the current session as MFA-verified.
pub async fn totp_confirm(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    let s = session_of(&caller)?.clone();
    let user = me(m, &caller).await?;
    let access = m.gate.sign_in();
    let codes = m.auth.confirm(&access, &user, &body.code).await?;
    access
        .store
        .update_session(&s.id, true, s.switched_to.clone())
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// The body of `POST /v1/auth/totp/disable`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    /// The password.
    pub password: String,
    /// A TOTP code or a recovery code.
    pub code: String,
}

/// `POST /v1/auth/totp/disable`: needs the password and a code (the customs portal); a wrong one of
/// either counts towards the lockout.
pub async fn totp_disable(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<DisableBody>,
) -> Result<StatusCode, ApiError> {
    let (m, served) = parts(&app)?;
    session_of(&caller)?;
    let user = me(&m, &caller).await?;
    if crate::auth::mfa_required(&rules(&served), &user) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_required_by_policy",
            "this account must use a second factor (the policy folder's sign-in rules); it cannot be turned off",
        ));
    }
    let access = m.gate.sign_in();
    m.auth
        .reverify_with_code(
            &access,
            &rules(&served),
            &user,
            Zeroizing::new(body.password),
            &body.code,
        )
        .await?;
    let audit = Audit::by(caller.id.clone()).in_company(caller.company.clone());
    access
        .store
        .set_totp(&user.id, None, false, &audit)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /v1/auth/switch`: an id only. The profile itself (its company, its
/// attributes) comes from the entities the server holds, never from the caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    /// The customer profile to act for.
    pub customer: String,
}

/// `POST /v1/auth/switch` (the customs portal): the session acts for another customer profile, decided as
/// `customer.switch` on that profile as the server's entities file (`serve --entities`)
/// holds it; its decisions then carry it in the folder's `sign_in.switch_attribute`. A profile the server does not
/// hold cannot be switched to (404, as for any id the caller cannot see).
pub async fn switch_customer(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<SwitchBody>,
) -> Result<Json<Session>, ApiError> {
    let (m, served) = parts(&app)?;
    let session = session_of(&caller)?.id.clone();
    let s = &served.snapshot;
    let rules = rules(&served);
    let ty = rules
        .switch_attribute
        .and_then(|name| s.attribute_entity_type(&s.user_type(), &name).map(str::to_owned))
        .or_else(|| {
            let name = rules.switch_context?;
            s.context_entity_type(&name).map(str::to_owned)
        });
    let Some(ty) = ty else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_customer_profiles",
            "this policy folder has no `sign_in.switch_attribute` or `sign_in.switch_context` (an entity attribute of its users or of a context) to switch",
        ));
    };
    let uid = portcullis_engine::EntityRef::Object {
        ty: ty.clone(),
        id: body.customer.clone(),
    };
    let held = served
        .resolver
        .entity(s, &uid, portcullis_engine::Slot::Resource)
        .is_ok_and(|uid| served.entities.entities.holds(&uid));
    if !held {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "customer profile `{}` not found: switching needs the profile in the server's entities file (`portcullis serve --entities`)",
                body.customer
            ),
        ));
    }
    let resource = Resource {
        ty,
        id: body.customer.clone(),
        entities: Vec::new(),
        target: format!("customer:{}", body.customer),
    };
    let op = SwitchCustomer {
        session,
        customer: body.customer,
    };
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, op, resource, Map::new())
        .await?;
    Ok(Json(m.gate.switch_customer(ok).await?))
}

/// The body of `POST /v1/auth/link`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The token of the customer's link.
    pub token: String,
    /// A label for the device.
    #[serde(default)]
    pub device: String,
}

/// `POST /v1/auth/link` (the service portal): a session as the customer's token-link user, only while the
/// customer has no portal user of its own; otherwise the link alone is refused.
pub async fn link_login(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<Value>, ApiError> {
    let (m, served) = parts(&app)?;
    let refused = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid_link", "the link is not valid");
    let Some(role) = rules(&served).token_link_role else {
        return Err(refused());
    };
    let access = m.gate.sign_in();
    let link = access
        .store
        .resolve_company_link(&body.token)
        .await
        .map_err(|_| refused())?;
    let users = m
        .gate
        .read()
        .list_users(&portcullis_store::UserQuery {
            company: Some(link.company.clone()),
            ..portcullis_store::UserQuery::default()
        })
        .await
        .map_err(store_error)?;
    let link_user = format!("link.{}", link.company);
    let portal_users = users
        .items
        .iter()
        .filter(|u| u.active && u.role != role && u.id != link_user)
        .count();
    if portal_users > 0 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "link_superseded",
            "this customer has portal users: sign in with a login and password",
        ));
    }
    let Some(user) = users.items.into_iter().find(|u| u.id == link_user && u.active) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_link_user",
            format!(
                "the customer has no active token-link user `{link_user}` (create it with role `{role}`)"
            ),
        ));
    };
    let issued = m
        .auth
        .open_session(&access, &user, body.device, false)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({
        "token": issued.token.expose(),
        "session": issued.session,
        "user": user,
    })))
}

/// `POST /v1/companies/{id}/links`: creates the customer's token link (`link.create`, decided
/// on the token-link user there, as it will be).
pub async fn create_link(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (m, served) = parts(&app)?;
    let resource = link_target(&m, &served, &id).await?;
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            &caller,
            ManageCompanyLink { company: id },
            resource.0,
            resource.1,
        )
        .await?;
    let (link, token) = m.gate.create_link(&m.cache, ok).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "link": link, "token": token.expose() })),
    ))
}

/// `DELETE /v1/companies/{id}/links/{link}`.
pub async fn revoke_link(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, link)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (m, served) = parts(&app)?;
    let resource = link_target(&m, &served, &id).await?;
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            &caller,
            ManageCompanyLink { company: id },
            resource.0,
            resource.1,
        )
        .await?;
    Ok(Json(json!(m.gate.revoke_link(&m.cache, ok, &link).await?)))
}

/// The token-link user of a company as the resource of a link decision, with the context of
/// its creation (its role).
async fn link_target(
    m: &Manage,
    served: &Served,
    company: &str,
) -> Result<(Resource, Map<String, Value>), ApiError> {
    let Some(role) = rules(served).token_link_role else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_token_links",
            "the policy folder sets no `sign_in.token_link_role`",
        ));
    };
    let link_user = format!("link.{company}");
    let facts = portcullis_store::UserFacts {
        company: company.to_owned(),
        role: role.clone(),
        active: true,
        flags: Vec::new(),
        addons: Vec::new(),
        group: None,
        attrs: std::collections::BTreeMap::new(),
        login: Some(link_user.clone()),
        accessible: Vec::new(),
    };
    m.gate.read().get_company(company).await.map_err(store_error)?;
    let resource = crate::manage::targets::prospective(m, served, &link_user, &facts).await?;
    let context = crate::manage::targets::assignment(served, &facts);
    Ok((resource, context))
}

/// `POST /v1/users/{id}/unlock` (`user.update`): clears a sign-in lock at once (the customs portal).
pub async fn unlock(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, UnlockUser { id: id.clone() }).await?;
    m.gate.unlock(&m.cache, ok).await?;
    let state = m
        .gate
        .sign_in()
        .store
        .lock_state(&id)
        .await
        .map_err(store_error)?;
    Ok(Json(json!(state)))
}

/// `GET /v1/users/{id}/sessions` (`user.read`).
pub async fn user_sessions(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, ListUserSessions { id: id.clone() }).await?;
    let sessions = m.gate.user_sessions(ok, m.auth.idle()).await?;
    let lock = m
        .gate
        .sign_in()
        .store
        .lock_state(&id)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "sessions": sessions, "lock": lock })))
}

/// `DELETE /v1/users/{id}/sessions` (`user.update`): signs a user out everywhere.
pub async fn revoke_user_sessions(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, RevokeUserSessions { id: id.clone() }).await?;
    let n = m.gate.revoke_user_sessions(&m.cache, ok).await?;
    Ok(Json(json!({ "revoked": n })))
}

/// A started passkey ceremony, as answered.
fn started(s: crate::auth::passkey::Started) -> Json<Value> {
    Json(json!({ "ceremony": s.ceremony.expose(), "options": s.options }))
}

/// `POST /v1/auth/passkeys/register`: starts registering a passkey for the signed-in user
/// (a session that must still enrol a second factor may call it).
pub async fn passkey_register_start(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let user = me(m, &caller).await?;
    let passkeys = m.auth.passkeys()?;
    Ok(started(
        passkeys.start_registration(&m.gate.sign_in(), &user).await?,
    ))
}

/// The body of `POST /v1/auth/passkeys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistrationBody {
    /// The `pkc_…` token of `POST /v1/auth/passkeys/register`.
    pub ceremony: String,
    /// What `navigator.credentials.create()` answered, its binary fields in base64url.
    pub credential: webauthn_rs::prelude::RegisterPublicKeyCredential,
    /// A label for it ("YubiKey", "iPhone"); at most 100 characters.
    #[serde(default)]
    pub name: String,
}

/// `POST /v1/auth/passkeys`: finishes a registration the caller started; the passkey is
/// stored, and the session counts as having passed a second factor (as after TOTP enrolment).
pub async fn passkey_register_finish(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<PasskeyRegistrationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let m = manage(&app)?;
    let s = session_of(&caller)?.clone();
    let name = body.name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a passkey's name is at most 100 characters, without control characters",
        ));
    }
    let name = if name.is_empty() { "Passkey" } else { name }.to_owned();
    let user = me(m, &caller).await?;
    let access = m.gate.sign_in();
    let passkey = m
        .auth
        .passkeys()?
        .finish_registration(&access, &user, &body.ceremony, &body.credential, name)
        .await?;
    access
        .store
        .update_session(&s.id, true, s.switched_to.clone())
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(json!(passkey))))
}

/// `GET /v1/auth/passkeys`: the caller's passkeys (names and dates; never key material).
pub async fn my_passkeys(State(app): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let list = m
        .gate
        .sign_in()
        .store
        .passkeys(&caller.id)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "passkeys": list })))
}

/// `DELETE /v1/auth/passkeys/{id}`: removes one of the caller's passkeys. Needs a session that
/// passed a second factor; refused while the folder requires one of this user and the passkey
/// is its last (no TOTP, no other passkey).
pub async fn passkey_remove(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let (m, served) = parts(&app)?;
    let s = session_of(&caller)?;
    let access = m.gate.sign_in();
    let mine = access.store.passkeys(&caller.id).await.map_err(store_error)?;
    // Someone else's passkey is answered as a missing one: ids are not probed.
    if !mine.iter().any(|p| p.id == id) {
        return Err(ApiError::not_found());
    }
    if !s.mfa {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_required",
            "removing a passkey needs a session signed in with a second factor (a passkey or a TOTP code)",
        ));
    }
    let user = me(&m, &caller).await?;
    let totp = access.store.totp(&user.id).await.map_err(store_error)?.enabled;
    if mine.len() == 1 && !totp && crate::auth::mfa_required(&rules(&served), &user) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_required_by_policy",
            "this account must use a second factor (the policy folder's sign-in rules) and this passkey is its last one",
        ));
    }
    let audit = Audit::by(caller.id.clone()).in_company(caller.company.clone());
    access
        .store
        .remove_passkey(&caller.id, &id, &audit)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/passkey/challenge`: starts a sign-in with a passkey, alone or as the
/// second factor of `POST /v1/auth/login`. Needs nothing and tells nothing about accounts.
pub async fn passkey_challenge(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let m = manage(&app)?;
    let passkeys = m.auth.passkeys()?;
    Ok(started(passkeys.start_sign_in(&m.gate.sign_in()).await?))
}

/// The body of `POST /v1/auth/passkey/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginBody {
    /// The `pkc_…` token of `POST /v1/auth/passkey/challenge`.
    pub ceremony: String,
    /// What `navigator.credentials.get()` answered, its binary fields in base64url.
    pub credential: webauthn_rs::prelude::PublicKeyCredential,
    /// A label for the device.
    #[serde(default)]
    pub device: String,
}

/// `POST /v1/auth/passkey/login`: signs in with a passkey alone; the session has passed a
/// second factor. Any refusal is the password sign-in's 401 `invalid_credentials`.
pub async fn passkey_login(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<PasskeyLoginBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let m = manage(&app)?;
    let answer = PasskeyAnswer {
        ceremony: body.ceremony,
        credential: body.credential,
    };
    let ok = m
        .auth
        .passkey_login(&m.gate.sign_in(), &answer, body.device)
        .await?;
    Ok(Json(LoginAnswer::from(ok)))
}
