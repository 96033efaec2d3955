//! The handlers of the sign-in adapter: `/v1/auth/…` for users themselves, and the governed
//! `/v1/users/{id}/unlock`, `/v1/users/{id}/sessions` and `/v1/companies/{id}/links` for
//! admins. Thin: each handler parses, calls [`crate::auth::Auth`] or the
//! [`crate::manage::Gate`], and maps errors to the envelope.
//!
//! Each handler's `#[utoipa::path]` is its operation in the OpenAPI document (first doc line
//! the summary, the paragraphs after it the description) and registers it on the router. The
//! calls of a caller name their security (a session or a user API key); the anonymous ones an
//! empty one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_store::{Audit, CompanyLink, LockState, Session, StoreError, StoredPasskey, User};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::schemas::{user, AnonymousRefused, LinkSchema, LockStateSchema, PasskeySchema, SessionSchema};
use crate::auth::{rules, AuthError, Credentials, Enrolment, PasskeyAnswer, SignedIn};
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, ErrorResponse, SignInRefused};
use crate::manage::governance::{
    ListUserSessions, ManageCompanyLink, Resource, RevokeUserSessions, SwitchCustomer, UnlockUser,
};
use crate::manage::targets::{decide_on_user, parts};
use crate::manage::{manage, store_error, Caller, Manage};
use crate::state::{AppState, Served};

/// The sign-in routes, each with its operation of the document.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(current))
        .routes(routes!(my_sessions))
        .routes(routes!(revoke_mine))
        .routes(routes!(revoke_others))
        .routes(routes!(change_password))
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
        .routes(routes!(confirm_email))
        .routes(routes!(totp_enrol))
        .routes(routes!(totp_confirm))
        .routes(routes!(totp_disable))
        .routes(routes!(my_passkeys, passkey_register_finish))
        .routes(routes!(passkey_register_start))
        .routes(routes!(passkey_remove))
        .routes(routes!(passkey_challenge))
        .routes(routes!(passkey_login))
        .routes(routes!(link_login))
        .routes(routes!(switch_customer))
        .routes(routes!(create_link))
        .routes(routes!(revoke_link))
        .routes(routes!(unlock))
        .routes(routes!(user_sessions, revoke_user_sessions))
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
#[derive(Debug, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// The bearer token (`pcs_…`), shown once.
    pub token: String,
    /// The session.
    #[schema(value_type = SessionSchema)]
    pub session: Session,
    /// The user.
    #[schema(schema_with = user)]
    pub user: User,
    /// The user must use a second factor and this session has not passed one: it can only
    /// enrol one, show itself and sign out.
    pub mfa_setup_required: bool,
}

/// Sign in: a session token, shown once
///
/// Unknown logins, wrong passwords, locked and deactivated accounts all answer 401
/// `invalid_credentials`; with two-factor on and no code, 401 `mfa_required`. A user who must
/// use a second factor and has none gets `mfa_setup_required` and a session that can only
/// enrol one.
#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginBody,
    responses((status = 200, description = "the session and its token", body = LoginAnswer),
        AnonymousRefused, (status = 401, response = ErrorResponse)),
    security())]
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

/// End the caller's session
#[utoipa::path(post, path = "/v1/auth/logout",
    responses((status = 204, description = "the session has ended"), SignInRefused))]
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

/// The caller's session and its user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAndUser {
    /// The session.
    #[schema(value_type = SessionSchema)]
    pub session: Session,
    /// Its user.
    #[schema(schema_with = user)]
    pub user: User,
    /// The user must use a second factor and this session has not passed one: it can only
    /// enrol one, show itself and sign out; every other call answers 403
    /// `mfa_enrollment_required`.
    pub mfa_setup_required: bool,
}

/// The caller's session and user
///
/// And whether the session can only enrol a second factor until it has
/// (`mfa_setup_required`).
#[utoipa::path(get, path = "/v1/auth/session",
    responses((status = 200, description = "the session and its user", body = SessionAndUser), SignInRefused))]
pub async fn current(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<SessionAndUser>, ApiError> {
    let (m, served) = parts(&app)?;
    let s = session_of(&caller)?;
    let user = me(&m, &caller).await?;
    let setup = !s.mfa && crate::auth::mfa_required(&rules(&served), &user);
    Ok(Json(SessionAndUser {
        session: s.clone(),
        user,
        mfa_setup_required: setup,
    }))
}

/// A user's live sessions, and which is the caller's.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The id of the caller's own session.
    pub current: String,
    /// The live sessions, newest first.
    #[schema(value_type = Vec<SessionSchema>)]
    pub sessions: Vec<Session>,
}

/// The caller's live sessions, newest first
#[utoipa::path(get, path = "/v1/auth/sessions",
    responses((status = 200, description = "the sessions", body = SessionList), SignInRefused))]
pub async fn my_sessions(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<SessionList>, ApiError> {
    let m = manage(&app)?;
    let current = session_of(&caller)?.id.clone();
    let sessions = m
        .auth
        .sessions(&m.gate.sign_in(), &caller.id)
        .await
        .map_err(store_error)?;
    Ok(Json(SessionList { current, sessions }))
}

/// End one of the caller's sessions
///
/// Someone else's session is answered 404, as a missing one.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}",
    params(("id" = String, Path, description = "the session's id")),
    responses((status = 204, description = "the session has ended"), SignInRefused))]
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

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// The number of sessions ended.
    pub revoked: u64,
}

/// End every session of the caller but this one
#[utoipa::path(post, path = "/v1/auth/sessions/revoke-others",
    responses((status = 200, description = "how many sessions ended", body = Revoked), SignInRefused))]
pub async fn revoke_others(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Revoked>, ApiError> {
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
    Ok(Json(Revoked { revoked: n }))
}

/// The body of `POST /v1/auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ChangePassword)]
pub struct ChangePasswordBody {
    /// The password now.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// Change the caller's password (other sessions end)
///
/// The current password is checked again; a wrong one counts towards the lockout. The new one
/// must pass the folder's password rules (400 `weak_password`).
#[utoipa::path(post, path = "/v1/auth/password", request_body = ChangePasswordBody,
    responses((status = 204, description = "the password is changed"), SignInRefused))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResetRequest)]
pub struct ResetRequestBody {
    /// The login (an email address, for self-service).
    pub login: String,
}

/// The answer to a reset request, whatever the login.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// `accepted`.
    pub status: String,
    /// What happens next, for a human.
    pub message: String,
}

/// Ask for a password-reset link: always 202 with the same body
///
/// The link goes to the configured `password_reset_command`, only for logins that are email
/// addresses (the service portal), one live link per login (a request while one is valid sends
/// nothing). The login is queued and its link made and handed to the command by one
/// background task, so neither the body nor the time of the answer says whether the login
/// exists. A folder that declares the action `user.password_reset` decides it too (principal
/// and resource: the user).
#[utoipa::path(post, path = "/v1/auth/password-reset", request_body = ResetRequestBody,
    responses((status = 202, description = "accepted, whatever the login", body = Accepted), AnonymousRefused),
    security())]
pub async fn request_reset(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ResetRequestBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let m = manage(&app)?;
    if m.resets.try_send(body.login.trim().to_owned()).is_err() {
        tracing::warn!("the password-reset queue is full; a request was dropped");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "accepted".to_owned(),
            message: "if the login exists and is an email address, a reset link is on its way".to_owned(),
        }),
    ))
}

/// The body of `POST /v1/auth/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The token from the link.
    pub token: String,
    /// The new password.
    pub password: String,
}

/// A password set with a reset token.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordSet {
    /// The user's id.
    pub user: String,
    /// `password set`.
    pub status: String,
}

/// Set a new password with a reset token
///
/// Once, before it expires (410 `expired`; an unknown or used token is 400 `invalid_token`);
/// unlocks the account, ends its sessions and revokes the API keys they made.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", request_body = ResetBody,
    responses((status = 200, description = "the password is set", body = PasswordSet),
        AnonymousRefused, (status = 410, response = ErrorResponse)),
    security())]
pub async fn confirm_reset(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<PasswordSet>, ApiError> {
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
    Ok(Json(PasswordSet {
        user: user.id,
        status: "password set".to_owned(),
    }))
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfirmBody {
    /// The token of the link sent to the new address.
    pub token: String,
}

/// Put a changed e-mail address in force with the token of the link sent to it
///
/// For folders with `sign_in.verify_email_changes`: once, before it expires (410 `expired`),
/// while no other user has the address (409); a login that was the old address follows it.
/// The token is the credential: no key or session is needed.
#[utoipa::path(post, path = "/v1/auth/email/confirm", request_body = EmailConfirmBody,
    responses((status = 200, description = "the user with its new address", body = ref("#/components/schemas/User")),
        AnonymousRefused, (status = 404, response = ErrorResponse), (status = 409, response = ErrorResponse),
        (status = 410, response = ErrorResponse)),
    security())]
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

/// Start two-factor enrolment: a TOTP secret and its otpauth URI
///
/// A session that must still enrol a second factor may call it.
#[utoipa::path(post, path = "/v1/auth/totp/enrol",
    responses((status = 200, description = "the secret, to confirm with a first code", body = Enrolment), SignInRefused))]
pub async fn totp_enrol(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Enrolment>, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let user = me(m, &caller).await?;
    let e = m.auth.enrol(&m.gate.sign_in(), &user, "Portcullis").await?;
    Ok(Json(e))
}

/// The body of `POST /v1/auth/totp/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// A code from the authenticator app.
    pub code: String,
}

/// The recovery codes of a new two-factor enrolment, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, each one accepted once in place of a TOTP code.
    pub recovery_codes: Vec<String>,
}

/// Turn two-factor on with a first code; answers ten recovery codes, shown once
///
/// The current session then counts as having passed a second factor.
#[utoipa::path(post, path = "/v1/auth/totp/confirm", request_body = CodeBody,
    responses((status = 200, description = "the recovery codes", body = RecoveryCodes), SignInRefused))]
pub async fn totp_confirm(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Json<RecoveryCodes>, ApiError> {
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
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// The body of `POST /v1/auth/totp/disable`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    /// The password.
    pub password: String,
    /// A TOTP code or a recovery code.
    pub code: String,
}

/// Turn two-factor off (password and a code)
///
/// A wrong password or code counts towards the lockout (the customs portal); 409
/// `mfa_required_by_policy` for a user the folder requires a second factor of.
#[utoipa::path(post, path = "/v1/auth/totp/disable", request_body = DisableBody,
    responses((status = 204, description = "two-factor is off"), SignInRefused))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    /// The customer profile to act for.
    pub customer: String,
}

/// Act for another customer profile (a forwarder acting for its customers)
///
/// Decided as `customer.switch` on that profile as the server's entities file
/// (`serve --entities`) holds it (the customs portal); the session's decisions then carry it
/// in the folder's `sign_in.switch_attribute`. The profile is the server's, never the
/// caller's: 404 when the server does not hold it, as for any id the caller cannot see.
#[utoipa::path(post, path = "/v1/auth/switch", request_body = SwitchBody,
    responses((status = 200, description = "the session, acting for the profile", body = SessionSchema), SignInRefused))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The token of the customer's link.
    pub token: String,
    /// A label for the device.
    #[serde(default)]
    pub device: String,
}

/// A session opened with a customer's token link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkAnswer {
    /// The bearer token (`pcs_…`), shown once.
    pub token: String,
    /// The session.
    #[schema(value_type = SessionSchema)]
    pub session: Session,
    /// The customer's token-link user.
    #[schema(schema_with = user)]
    pub user: User,
}

/// Sign in with a customer's token link (the service portal)
///
/// A session as the customer's token-link user, only while the customer has no portal user of
/// its own: refused (401 `link_superseded`) once it has; 401 `invalid_link` for a link that is
/// not valid, 409 when the customer has no active token-link user.
#[utoipa::path(post, path = "/v1/auth/link", request_body = LinkBody,
    responses((status = 200, description = "the session and its token", body = LinkAnswer),
        AnonymousRefused, (status = 401, response = ErrorResponse), (status = 409, response = ErrorResponse)),
    security())]
pub async fn link_login(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<LinkAnswer>, ApiError> {
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
    Ok(Json(LinkAnswer {
        token: issued.token.expose().to_owned(),
        session: issued.session,
        user,
    }))
}

/// A new token link and its token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedLink {
    /// The link.
    #[schema(value_type = LinkSchema)]
    pub link: CompanyLink,
    /// The link's token (`pcl_…`), shown once.
    pub token: String,
}

/// Create a customer's token link; the token is answered once
///
/// Decided as `link.create` on the customer's token-link user, as it will be (with the
/// folder's `sign_in.token_link_role`; 409 without one).
#[utoipa::path(post, path = "/v1/companies/{id}/links",
    params(("id" = String, Path, description = "the customer company's id")),
    responses((status = 201, description = "the link and its token", body = IssuedLink), SignInRefused))]
pub async fn create_link(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<IssuedLink>), ApiError> {
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
        Json(IssuedLink {
            link,
            token: token.expose().to_owned(),
        }),
    ))
}

/// Revoke a customer's token link
///
/// Decided as the link's creation is (`link.create` on the token-link user).
#[utoipa::path(delete, path = "/v1/companies/{id}/links/{link}",
    params(("id" = String, Path, description = "the customer company's id"),
        ("link" = String, Path, description = "the link's id")),
    responses((status = 200, description = "the link, revoked", body = LinkSchema), SignInRefused))]
pub async fn revoke_link(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath((id, link)): ApiPath<(String, String)>,
) -> Result<Json<CompanyLink>, ApiError> {
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
    Ok(Json(m.gate.revoke_link(&m.cache, ok, &link).await?))
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

/// Clear a sign-in lock (decided as `user.update`)
///
/// At once (the customs portal).
#[utoipa::path(post, path = "/v1/users/{id}/unlock",
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 200, description = "the lock state now", body = LockStateSchema), SignInRefused))]
pub async fn unlock(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LockState>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, UnlockUser { id: id.clone() }).await?;
    m.gate.unlock(&m.cache, ok).await?;
    let state = m
        .gate
        .sign_in()
        .store
        .lock_state(&id)
        .await
        .map_err(store_error)?;
    Ok(Json(state))
}

/// A user's live sessions and its lock state.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSessions {
    /// The live sessions.
    #[schema(value_type = Vec<SessionSchema>)]
    pub sessions: Vec<Session>,
    /// The lock state.
    #[schema(value_type = LockStateSchema)]
    pub lock: LockState,
}

/// A user's live sessions and lock state (decided as `user.read`)
#[utoipa::path(get, path = "/v1/users/{id}/sessions",
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 200, description = "the sessions and the lock state", body = UserSessions), SignInRefused))]
pub async fn user_sessions(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserSessions>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, ListUserSessions { id: id.clone() }).await?;
    let sessions = m.gate.user_sessions(ok, m.auth.idle()).await?;
    let lock = m
        .gate
        .sign_in()
        .store
        .lock_state(&id)
        .await
        .map_err(store_error)?;
    Ok(Json(UserSessions { sessions, lock }))
}

/// End every session of a user (decided as `user.update`)
#[utoipa::path(delete, path = "/v1/users/{id}/sessions",
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 200, description = "how many sessions ended", body = Revoked), SignInRefused))]
pub async fn revoke_user_sessions(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Revoked>, ApiError> {
    let (m, ok) = decide_on_user(&app, &caller, &id, RevokeUserSessions { id: id.clone() }).await?;
    let n = m.gate.revoke_user_sessions(&m.cache, ok).await?;
    Ok(Json(Revoked { revoked: n }))
}

/// A started passkey ceremony: the options for the browser and the token that finishes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyCeremony {
    /// The ceremony's token (`pkc_…`), single use, valid 5 minutes.
    pub ceremony: String,
    /// `{"publicKey": …}` for `navigator.credentials.create()` or `.get()`, binary fields in
    /// base64url.
    #[schema(value_type = Object)]
    pub options: Value,
}

/// A started passkey ceremony, as answered.
fn started(s: crate::auth::passkey::Started) -> Json<PasskeyCeremony> {
    Json(PasskeyCeremony {
        ceremony: s.ceremony.expose().to_owned(),
        options: s.options,
    })
}

/// Start registering a passkey
///
/// The options for `navigator.credentials.create()` (binary fields in base64url) and a
/// single-use `ceremony` token, valid 5 minutes; 409 when the server has no passkey settings
/// (`passkey_rp_id`, `passkey_origins`). A session that must still enrol a second factor may
/// call it.
#[utoipa::path(post, path = "/v1/auth/passkeys/register",
    responses((status = 200, description = "the ceremony", body = PasskeyCeremony), SignInRefused))]
pub async fn passkey_register_start(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let user = me(m, &caller).await?;
    let passkeys = m.auth.passkeys()?;
    Ok(started(
        passkeys.start_registration(&m.gate.sign_in(), &user).await?,
    ))
}

/// The body of `POST /v1/auth/passkeys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistrationBody {
    /// The `pkc_…` token of `POST /v1/auth/passkeys/register`.
    pub ceremony: String,
    /// The PublicKeyCredential `navigator.credentials.create()` answered: id, rawId, type and
    /// response {attestationObject, clientDataJSON}, binary fields in base64url.
    #[schema(value_type = Object)]
    pub credential: webauthn_rs::prelude::RegisterPublicKeyCredential,
    /// A label for it ("YubiKey", "iPhone"); at most 100 characters.
    #[serde(default)]
    pub name: String,
}

/// Finish registering a passkey
///
/// With what `navigator.credentials.create()` answered to the options of
/// `POST /v1/auth/passkeys/register`: 400 `invalid_passkey` when the answer is not accepted
/// (challenge, origin, relying party, user verification), 400 `invalid_token` for an unknown
/// or used ceremony, 410 when it ran out, 409 when the passkey is registered already. The
/// passkey is stored, and the session then counts as having passed a second factor (as after
/// TOTP enrolment).
#[utoipa::path(post, path = "/v1/auth/passkeys", request_body = PasskeyRegistrationBody,
    responses((status = 201, description = "the passkey", body = PasskeySchema),
        SignInRefused, (status = 410, response = ErrorResponse)))]
pub async fn passkey_register_finish(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<PasskeyRegistrationBody>,
) -> Result<(StatusCode, Json<StoredPasskey>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(passkey)))
}

/// A user's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// Names and dates, never key material.
    #[schema(value_type = Vec<PasskeySchema>)]
    pub passkeys: Vec<StoredPasskey>,
}

/// The caller's passkeys: names and dates, never key material
#[utoipa::path(get, path = "/v1/auth/passkeys",
    responses((status = 200, description = "the passkeys", body = PasskeyList), SignInRefused))]
pub async fn my_passkeys(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<PasskeyList>, ApiError> {
    let m = manage(&app)?;
    session_of(&caller)?;
    let list = m
        .gate
        .sign_in()
        .store
        .passkeys(&caller.id)
        .await
        .map_err(store_error)?;
    Ok(Json(PasskeyList { passkeys: list }))
}

/// Remove one of the caller's passkeys
///
/// Needs a session that passed a second factor (403 `mfa_required`); 409
/// `mfa_required_by_policy` for the last second factor (no TOTP, no other passkey) of a user
/// the folder requires one of. Someone else's passkey is answered 404, as a missing one.
#[utoipa::path(delete, path = "/v1/auth/passkeys/{id}",
    params(("id" = String, Path, description = "the passkey's id")),
    responses((status = 204, description = "the passkey is removed"), SignInRefused))]
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

/// Start a sign-in with a passkey
///
/// Alone with `POST /v1/auth/passkey/login`, or as the second factor of
/// `POST /v1/auth/login`: options for `navigator.credentials.get()` without any allowed
/// credential, so nothing tells whether an account exists, and a single-use `ceremony` token;
/// 409 when the server has no passkey settings. Needs nothing.
#[utoipa::path(post, path = "/v1/auth/passkey/challenge",
    responses((status = 200, description = "the ceremony", body = PasskeyCeremony),
        (status = 409, response = ErrorResponse), (status = 503, response = ErrorResponse)),
    security())]
pub async fn passkey_challenge(State(app): State<Arc<AppState>>) -> Result<Json<PasskeyCeremony>, ApiError> {
    let m = manage(&app)?;
    let passkeys = m.auth.passkeys()?;
    Ok(started(passkeys.start_sign_in(&m.gate.sign_in()).await?))
}

/// The body of `POST /v1/auth/passkey/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginBody {
    /// The `pkc_…` token of `POST /v1/auth/passkey/challenge`.
    pub ceremony: String,
    /// The PublicKeyCredential `navigator.credentials.get()` answered: id, rawId, type and
    /// response {authenticatorData, clientDataJSON, signature, userHandle}, binary fields in
    /// base64url.
    #[schema(value_type = Object)]
    pub credential: webauthn_rs::prelude::PublicKeyCredential,
    /// A label for the device.
    #[serde(default)]
    pub device: String,
}

/// Sign in with a passkey alone: the session has passed a second factor
///
/// A wrong, replayed or unknown answer, a used or expired ceremony, a deactivated or locked
/// account: all the password sign-in's 401 `invalid_credentials`; 409 when the server has no
/// passkey settings.
#[utoipa::path(post, path = "/v1/auth/passkey/login", request_body = PasskeyLoginBody,
    responses((status = 200, description = "the session and its token", body = LoginAnswer),
        AnonymousRefused, (status = 401, response = ErrorResponse), (status = 409, response = ErrorResponse)),
    security())]
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
