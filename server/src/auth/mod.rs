//! The sign-in service: account security behind `/v1/auth/` (its HTTP handlers are the
//! adapter [`crate::http::signin`]): passwords (argon2id), lockout, reset links ([`resets`]),
//! TOTP with recovery codes, sessions, and customers' token links (the service portal).
//!
//! A service: it may import the other services ([`crate::manage`], [`crate::decision`],
//! [`crate::state`]), the error envelope ([`crate::http::error`]), the store and the engine;
//! never an HTTP adapter (`crate::http::{decision,manage,signin}`);
//! `tests/integration/layers.rs` checks.
//!
//! Input: the user store (through [`crate::manage::Gate::sign_in`]) and the policy folder's
//! `[sign_in]` rules from the snapshot being served. Output: opaque session tokens that
//! management calls (`Authorization: Bearer pcs_…`) and decisions (`"session"` in
//! `POST /v1/authorize`) accept in place of a principal.
//!
//! ```text
//! login ─> begin_sign_in(user id, or unknown:<sha-256 of the login>) ─Locked─> dummy verify ─┐
//!             └─Proceed─> known and active? ─no─> dummy verify ──────────────────────────────┤
//!                           └─yes─> verify ─wrong──────────────────────────────────> 401 invalid_credentials
//!                                     └─right─> TOTP on? ─> code ok? ─> session (mfa)
//! ```
//!
//! Unknown logins, wrong passwords, locked and deactivated accounts take the same steps (one
//! counted attempt, one argon2 verification, one audit row) and get the same answer, so neither
//! the body, the time nor the lockout tells them apart.

pub mod passkey;
pub mod password;
pub mod resets;
pub mod totp;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_engine::SignIn;
use portcullis_store::{Attempt, Clock, Lockout, NewSession, Secret, Session, StoreError, User};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::SignInConfig;
use crate::manage::governance::SignInAccess;
use crate::state::Served;
use password::{HashParams, Hasher};
use totp::Sealer;

/// The folder's sign-in rules (the defaults when it has no `roles.toml`).
pub fn rules(served: &Served) -> SignIn {
    served
        .snapshot
        .model()
        .map(|m| m.sign_in.clone())
        .unwrap_or_default()
}

/// Everything sign-in needs besides the s.store.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Password hashing.
    pub hasher: Hasher,
    sealer: Option<Sealer>,
    passkeys: Option<passkey::Passkeys>,
    clock: Arc<dyn Clock>,
    /// The server's sign-in settings.
    pub config: SignInConfig,
    /// Where failed sign-ins and lockouts are counted.
    metrics: Arc<crate::metrics::Metrics>,
}

/// Why a sign-in step failed, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong login or password, or locked, or deactivated: one answer for all.
    #[error("the login or password is wrong")]
    InvalidCredentials,
    /// The password was right; a second factor is needed.
    #[error("a two-factor code is required")]
    MfaRequired,
    /// The new password breaks the folder's rule.
    #[error("{0}")]
    Weak(String),
    /// The token is unknown, used or revoked.
    #[error("the token is not valid")]
    InvalidToken,
    /// An authenticator's answer to a passkey registration was not accepted.
    #[error("{0}")]
    Passkey(String),
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// A step that does not fit the account's state.
    #[error("{0}")]
    Conflict(String),
    /// The store or the hasher failed.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The bearer token (shown once).
    pub token: Secret,
    /// The session.
    pub session: Session,
    /// The user.
    pub user: User,
    /// The user must enrol a second factor (its role or its account requires one).
    pub mfa_setup_required: bool,
}

/// The sign-in request.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Login name.
    pub login: String,
    /// Password (zeroized when dropped).
    pub password: Zeroizing<String>,
    /// A TOTP code or a recovery code.
    pub code: Option<String>,
    /// Or a passkey's answer to a sign-in ceremony, as the second factor.
    pub passkey: Option<PasskeyAnswer>,
    /// A label for the device.
    pub device: String,
}

/// A passkey's answer to a sign-in ceremony (`POST /v1/auth/passkey/challenge`).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyAnswer {
    /// The ceremony's `pkc_…` token.
    pub ceremony: String,
    /// The PublicKeyCredential `navigator.credentials.get()` answered: id, rawId, type and
    /// response {authenticatorData, clientDataJSON, signature, userHandle}, binary fields in
    /// base64url.
    #[schema(value_type = Object)]
    pub credential: webauthn_rs::prelude::PublicKeyCredential,
}

/// A started TOTP enrolment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The secret in base32, for manual entry.
    pub secret: String,
    /// The `otpauth://` URI for a QR code.
    pub otpauth_uri: String,
}

/// The lockout rules of a folder.
pub fn lockout(rules: &SignIn) -> Lockout {
    Lockout {
        max_failures: rules.lockout_attempts,
        lock_for: time::Duration::minutes(i64::from(rules.lockout_minutes)),
    }
}

/// Whether a user must use a second factor: by its role, or by its own stored attribute that
/// the folder names in `sign_in.require_mfa_attribute`.
pub fn mfa_required(rules: &SignIn, user: &User) -> bool {
    rules.require_mfa_roles.contains(&user.role)
        || rules
            .require_mfa_attribute
            .as_deref()
            .is_some_and(|a| user.attrs.get(a).and_then(serde_json::Value::as_bool) == Some(true))
}

impl Auth {
    /// Sign-in with these settings; `sealer` is `None` when no key is configured (TOTP
    /// enrolment is then refused).
    pub fn new(
        config: SignInConfig,
        sealer: Option<Sealer>,
        clock: Arc<dyn Clock>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, String> {
        let params = HashParams {
            memory_kib: config.argon2_memory_kib,
            iterations: config.argon2_iterations,
            lanes: config.argon2_lanes,
        };
        let hasher = Hasher::new(params, config.max_concurrent_hashes).map_err(|e| e.to_string())?;
        let passkeys = config.passkeys.as_ref().map(passkey::Passkeys::new).transpose()?;
        Ok(Auth {
            hasher,
            sealer,
            passkeys,
            clock,
            config,
            metrics,
        })
    }

    /// Counts an attempt towards the lockout (`begin_sign_in` of the store), and a lockout
    /// in the metrics when this attempt is the one that locks.
    async fn attempt(
        &self,
        s: &SignInAccess<'_>,
        subject: &str,
        rules: &SignIn,
    ) -> Result<Attempt, AuthError> {
        let attempt = s.store.begin_sign_in(subject, lockout(rules)).await?;
        if let Attempt::Proceed { locked: true, .. } = attempt {
            self.metrics.locked_out();
        }
        Ok(attempt)
    }

    /// The one answer to a refused sign-in, counted.
    fn refused(&self) -> AuthError {
        self.metrics.sign_in_failed();
        AuthError::InvalidCredentials
    }

    fn now_unix(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// How long a session may go unused.
    pub fn idle(&self) -> time::Duration {
        time::Duration::try_from(self.config.session_idle).unwrap_or(time::Duration::MAX)
    }

    fn lifetime(&self) -> time::Duration {
        time::Duration::try_from(self.config.session_lifetime).unwrap_or(time::Duration::MAX)
    }

    /// Opens a session for a user who has proved who it is (a sign-in, a token link).
    pub async fn open_session(
        &self,
        s: &SignInAccess<'_>,
        user: &User,
        device: String,
        mfa: bool,
    ) -> Result<portcullis_store::IssuedSession, StoreError> {
        let audit = portcullis_store::Audit::by(user.id.clone()).in_company(user.company.clone());
        let new = NewSession {
            user: user.id.clone(),
            device,
            mfa,
            switched_to: None,
            lifetime: self.lifetime(),
        };
        s.store.create_session(new, &audit).await
    }

    /// The live session of a token.
    pub async fn session(&self, s: &SignInAccess<'_>, token: &str) -> Result<Session, StoreError> {
        s.store.resolve_session(token, self.idle()).await
    }

    /// A user's live sessions.
    pub async fn sessions(&self, s: &SignInAccess<'_>, user: &str) -> Result<Vec<Session>, StoreError> {
        s.store.list_sessions(user, self.idle()).await
    }

    /// Signs in: see the module diagram.
    pub async fn login(
        &self,
        s: &SignInAccess<'_>,
        rules: &SignIn,
        c: Credentials,
    ) -> Result<SignedIn, AuthError> {
        let found = match s.read.credentials(&c.login).await {
            Ok(f) => Some(f),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        // One path for every failure: count the attempt, run one verification (against the
        // dummy hash when there is nothing to verify), audit, answer the same.
        let subject = match &found {
            Some((u, _)) => u.id.clone(),
            None => portcullis_store::unknown_subject(&c.login),
        };
        let attempt = self.attempt(s, &subject, rules).await?;
        let (phc, reason) = match (&found, attempt) {
            (None, _) => (None, "unknown login"),
            (Some(_), Attempt::Locked { .. }) => (None, "locked"),
            (Some((u, _)), _) if !u.active => (None, "deactivated"),
            (Some((_, phc)), Attempt::Proceed { .. }) => (phc.clone(), "wrong password"),
        };
        let verified = self.hasher.verify(phc, c.password).await;
        let (user, company) = match &found {
            Some((u, _)) => (Some(u.id.as_str()), Some(u.company.as_str())),
            None => (None, None),
        };
        if !verified {
            s.store.audit_sign_in_failure(user, company, reason).await?;
            return Err(self.refused());
        }
        let Some((user, _)) = found else {
            return Err(self.refused());
        };
        let fail = |reason: &'static str| {
            let (uid, company) = (user.id.clone(), user.company.clone());
            async move {
                s.store
                    .audit_sign_in_failure(Some(&uid), Some(&company), reason)
                    .await
                    .map_err(AuthError::from)?;
                Err::<SignedIn, AuthError>(self.refused())
            }
        };
        let two_factor =
            s.store.totp(&user.id).await?.enabled || !s.store.passkeys(&user.id).await?.is_empty();
        let mut mfa = false;
        if two_factor {
            let code = c.code.as_deref().filter(|c| !c.trim().is_empty());
            match (code, &c.passkey) {
                (Some(code), _) => {
                    if !self.check_code(s, &user.id, code).await? {
                        return fail("wrong two-factor code").await;
                    }
                }
                (None, Some(answer)) => match self
                    .passkeys()?
                    .verify(s, &answer.ceremony, &answer.credential)
                    .await
                {
                    Ok(p) if p.user == user.id => {}
                    Ok(_) => return fail("passkey of another user").await,
                    Err(passkey::Refused::Because { reason, .. }) => return fail(reason).await,
                    Err(passkey::Refused::Store(e)) => return Err(e.into()),
                },
                (None, None) => return Err(AuthError::MfaRequired),
            }
            mfa = true;
        }
        s.store.sign_in_succeeded(&user.id).await?;
        let issued = self.open_session(s, &user, c.device, mfa).await?;
        Ok(SignedIn {
            token: issued.token,
            session: issued.session,
            mfa_setup_required: !mfa && mfa_required(rules, &user),
            user,
        })
    }

    /// The relying party, or why passkeys are off.
    pub fn passkeys(&self) -> Result<&passkey::Passkeys, AuthError> {
        self.passkeys.as_ref().ok_or_else(|| {
            AuthError::Conflict(
                "passkeys are not set up on this server (`passkey_rp_id` and `passkey_origins`)".to_owned(),
            )
        })
    }

    /// Signs in with a passkey alone: the passkey's answer proves the user and a second
    /// factor at once (user verification is required). A deactivated or locked account is
    /// refused like a wrong answer, and every refusal is audited.
    pub async fn passkey_login(
        &self,
        s: &SignInAccess<'_>,
        answer: &PasskeyAnswer,
        device: String,
    ) -> Result<SignedIn, AuthError> {
        let refuse = |reason: &'static str, user: Option<User>| async move {
            let (id, company) = match &user {
                Some(u) => (Some(u.id.as_str()), Some(u.company.as_str())),
                None => (None, None),
            };
            s.store.audit_sign_in_failure(id, company, reason).await?;
            Err::<SignedIn, AuthError>(self.refused())
        };
        let stored = match self
            .passkeys()?
            .verify(s, &answer.ceremony, &answer.credential)
            .await
        {
            Ok(p) => p,
            Err(passkey::Refused::Because { reason, user }) => {
                let user = match user {
                    Some(id) => s.read.get_user(&id).await.ok(),
                    None => None,
                };
                return refuse(reason, user).await;
            }
            Err(passkey::Refused::Store(e)) => return Err(e.into()),
        };
        let user = s.read.get_user(&stored.user).await?;
        if !user.active {
            return refuse("deactivated", Some(user)).await;
        }
        if s.store.lock_state(&user.id).await?.locked_until.is_some() {
            return refuse("locked", Some(user)).await;
        }
        let issued = self.open_session(s, &user, device, true).await?;
        Ok(SignedIn {
            token: issued.token,
            session: issued.session,
            mfa_setup_required: false,
            user,
        })
    }

    /// A TOTP code (each step once, ±1 step) or a recovery code (once).
    pub async fn check_code(&self, s: &SignInAccess<'_>, user: &str, code: &str) -> Result<bool, AuthError> {
        let t = s.store.totp(user).await?;
        let secret = t
            .sealed
            .as_deref()
            .zip(self.sealer.as_ref())
            .and_then(|(sealed, sealer)| sealer.open(sealed));
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            let Some(secret) = secret else {
                return Ok(false);
            };
            return match totp::matching_step(&secret, &digits, self.now_unix()) {
                Some(step) => Ok(s.store.use_totp_step(user, step).await?),
                None => Ok(false),
            };
        }
        Ok(s.store.use_recovery_code(user, code).await?)
    }

    fn sealer(&self) -> Result<&Sealer, AuthError> {
        self.sealer.as_ref().ok_or_else(|| {
            AuthError::Conflict(
                "two-factor authentication needs the server's secret key (`secret_key_file`)".to_owned(),
            )
        })
    }

    /// Starts TOTP enrolment: a fresh secret, stored sealed and not yet enabled.
    pub async fn enrol(
        &self,
        s: &SignInAccess<'_>,
        user: &User,
        issuer: &str,
    ) -> Result<Enrolment, AuthError> {
        if s.store.totp(&user.id).await?.enabled {
            return Err(AuthError::Conflict(
                "two-factor authentication is already on".to_owned(),
            ));
        }
        let secret = totp::random::<{ totp::SECRET_BYTES }>().map_err(AuthError::Internal)?;
        let sealed = self
            .sealer()?
            .seal(secret.as_ref())
            .map_err(AuthError::Internal)?;
        let audit = portcullis_store::Audit::by(user.id.clone()).in_company(user.company.clone());
        s.store.set_totp(&user.id, Some(sealed), false, &audit).await?;
        Ok(Enrolment {
            secret: totp::base32(secret.as_ref()),
            otpauth_uri: totp::otpauth_uri(issuer, &user.login, secret.as_ref()),
        })
    }

    /// Confirms enrolment with a first code; returns the ten recovery codes (shown once).
    pub async fn confirm(
        &self,
        s: &SignInAccess<'_>,
        user: &User,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        let t = s.store.totp(&user.id).await?;
        let Some(sealed) = t.sealed.filter(|_| !t.enabled) else {
            return Err(AuthError::Conflict(
                "no two-factor enrolment is waiting for a code".to_owned(),
            ));
        };
        let secret = self.sealer()?.open(&sealed).ok_or_else(|| {
            AuthError::Internal("the TOTP secret cannot be opened with this key".to_owned())
        })?;
        let Some(step) = totp::matching_step(&secret, code, self.now_unix()) else {
            return Err(AuthError::InvalidCredentials);
        };
        let audit = portcullis_store::Audit::by(user.id.clone()).in_company(user.company.clone());
        s.store.set_totp(&user.id, Some(sealed), true, &audit).await?;
        s.store.use_totp_step(&user.id, step).await?;
        let codes = totp::recovery_codes().map_err(AuthError::Internal)?;
        let secrets: Vec<Secret> = codes.iter().map(Secret::new).collect();
        s.store.set_recovery_codes(&user.id, &secrets, &audit).await?;
        Ok(codes)
    }

    /// Checks a password for a signed-in user's sensitive step (change, disabling TOTP),
    /// counting failures towards the lockout like a sign-in.
    pub async fn reverify(
        &self,
        s: &SignInAccess<'_>,
        rules: &SignIn,
        user: &User,
        password: Zeroizing<String>,
    ) -> Result<(), AuthError> {
        let (_, phc) = s.read.credentials(&user.login).await?;
        if let Attempt::Locked { .. } = self.attempt(s, &user.id, rules).await? {
            return Err(self.refused());
        }
        if !self.hasher.verify(phc, password).await {
            s.store
                .audit_sign_in_failure(Some(&user.id), Some(&user.company), "wrong password")
                .await?;
            return Err(self.refused());
        }
        s.store.sign_in_succeeded(&user.id).await?;
        Ok(())
    }

    /// Checks a password and a second-factor code together (turning two-factor off): one
    /// attempt towards the lockout, cleared only when both are right, so wrong codes count
    /// like wrong passwords.
    pub async fn reverify_with_code(
        &self,
        s: &SignInAccess<'_>,
        rules: &SignIn,
        user: &User,
        password: Zeroizing<String>,
        code: &str,
    ) -> Result<(), AuthError> {
        let (_, phc) = s.read.credentials(&user.login).await?;
        if let Attempt::Locked { .. } = self.attempt(s, &user.id, rules).await? {
            return Err(self.refused());
        }
        let reason = if !self.hasher.verify(phc, password).await {
            Some("wrong password")
        } else if !self.check_code(s, &user.id, code).await? {
            Some("wrong two-factor code")
        } else {
            None
        };
        if let Some(reason) = reason {
            s.store
                .audit_sign_in_failure(Some(&user.id), Some(&user.company), reason)
                .await?;
            return Err(self.refused());
        }
        s.store.sign_in_succeeded(&user.id).await?;
        Ok(())
    }

    /// Checks and hashes a new password.
    pub async fn new_password(
        &self,
        rules: &SignIn,
        password: Zeroizing<String>,
        context: &[&str],
    ) -> Result<String, AuthError> {
        password::check_rule(rules, &password, context).map_err(|e| AuthError::Weak(e.0))?;
        self.hasher
            .hash(password)
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// Hands a reset link to the configured mailer program (never to the logs).
    pub async fn deliver_reset(&self, user: &User, token: &Secret, valid_minutes: u32) {
        let email = user.email.clone().unwrap_or_default();
        self.deliver("password_reset", user, &email, token, valid_minutes)
            .await;
    }

    /// Hands an e-mail change link to the mailer program, for the new address `email`.
    pub async fn deliver_email_change(&self, user: &User, email: &str, token: &Secret, valid_minutes: u32) {
        self.deliver("email_change", user, email, token, valid_minutes)
            .await;
    }

    /// Runs `password_reset_command` (the application's mailer) with one link as JSON on its
    /// standard input: `{purpose, user, login, email, token, valid_minutes}`, `email` being
    /// where it goes.
    async fn deliver(&self, purpose: &str, user: &User, email: &str, token: &Secret, valid_minutes: u32) {
        let Some(program) = self.config.password_reset_command.clone() else {
            tracing::warn!(user = %user.id, purpose, "a link was issued but no `password_reset_command` delivers it");
            return;
        };
        let payload = serde_json::json!({
            "purpose": purpose,
            "user": user.id,
            "login": user.login,
            "email": email,
            "token": token.expose(),
            "valid_minutes": valid_minutes,
        });
        let payload = Zeroizing::new(payload.to_string());
        if let Err(e) = run_hook(&program, payload.as_bytes()).await {
            tracing::error!(user = %user.id, purpose, error = %e, "the mailer command failed");
        }
    }
}

async fn run_hook(program: &Path, input: &[u8]) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).await.map_err(|e| e.to_string())?;
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| "it did not finish within 30 seconds".to_owned())?
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("it exited with {status}"))
    }
}

/// The key that seals TOTP secrets: from `secret_key_file`, or for a SQLite store
/// `<database>.key`, created (mode 0600) on first start. `None` without either.
pub fn load_key(config: &SignInConfig, database_url: &str) -> Result<Option<Sealer>, String> {
    let (path, create) = match &config.secret_key_file {
        Some(p) => (p.clone(), false),
        None if database_url.starts_with("postgres") => return Ok(None),
        None => {
            let file = database_url
                .strip_prefix("sqlite://")
                .or_else(|| database_url.strip_prefix("sqlite:"))
                .unwrap_or(database_url);
            (PathBuf::from(format!("{file}.key")), true)
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = totp::random::<32>()?;
            write_private(&path, &hex::encode(key.as_slice()))?;
            return Ok(Some(Sealer::new(&key)));
        }
        Err(e) => return Err(format!("cannot read the secret key `{}`: {e}", path.display())),
    };
    let bytes = hex::decode(text.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| format!("the secret key `{}` must hold 64 hex characters", path.display()))?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    let sealer = Sealer::new(&key);
    zeroize::Zeroize::zeroize(&mut key);
    Ok(Some(sealer))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| format!("cannot create the secret key `{}`: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write the secret key `{}`: {e}", path.display()))
}

/// Resolves `"session"` in a decision request: the principal becomes the session's user.
/// An unknown, ended or revoked session is 401, the same for all three.
pub async fn session_principal(
    app: &crate::state::AppState,
    token: &str,
    q: &mut portcullis_engine::AuthzQuery,
) -> Result<Session, crate::http::error::ApiError> {
    let m = crate::manage::manage(app)?;
    let session = m
        .auth
        .session(&m.gate.sign_in(), token)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => crate::http::error::ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_session",
                "the session is not valid or has ended",
            ),
            e => crate::manage::store_error(e),
        })?;
    q.principal = portcullis_engine::EntityRef::Object {
        ty: app.served().snapshot.user_type(),
        id: session.user.clone(),
    };
    Ok(session)
}

/// The context attribute in which the folder's policies read whether the session passed a
/// second factor (`sign_in.mfa_context`), when the action's context declares it.
pub fn mfa_context(s: &portcullis_engine::Snapshot, action: &cedar_policy::EntityUid) -> Option<String> {
    let name = s.model()?.sign_in.mfa_context.clone()?;
    s.context_declares(action, &name).then_some(name)
}

/// What a session adds to a decision, after the stored entities are merged into `entities`:
/// the folder's `sign_in.mfa_context` attribute where the action's context declares it (a
/// caller-supplied value is overwritten: the session knows), and on its user's entity the
/// customer profile it acts for (the folder's `sign_in.switch_attribute`) where the schema declares it.
pub fn session_overlay(
    served: &crate::state::Served,
    session: &Session,
    action: &cedar_policy::EntityUid,
    context: &mut serde_json::Map<String, serde_json::Value>,
    entities: &mut [serde_json::Value],
) {
    let s = &served.snapshot;
    if let Some(name) = mfa_context(s, action) {
        context.insert(name, serde_json::Value::Bool(session.mfa));
    }
    // The switched customer profile in the context, where the folder carries it there.
    let switched = s.model().and_then(|m| m.sign_in.switch_context.clone());
    if let (Some(customer), Some(name)) = (&session.switched_to, switched) {
        if let Some(ty) = s.context_entity_type(&name) {
            if s.context_declares(action, &name) {
                let value = serde_json::json!({ "__entity": { "type": ty, "id": customer } });
                context.insert(name, value);
            }
        }
    }
    let user_type = s.user_type();
    let Some(customer) = &session.switched_to else {
        return;
    };
    let Some(name) = s.model().and_then(|m| m.sign_in.switch_attribute.clone()) else {
        return;
    };
    let Some(ty) = s.attribute_entity_type(&user_type, &name) else {
        return;
    };
    let value = serde_json::json!({ "__entity": { "type": ty, "id": customer } });
    for e in entities {
        let uid = e.get("uid");
        let is_principal = uid.and_then(|u| u.get("id")).and_then(serde_json::Value::as_str)
            == Some(session.user.as_str())
            && uid
                .and_then(|u| u.get("type"))
                .and_then(serde_json::Value::as_str)
                == Some(user_type.as_str());
        if is_principal {
            if let Some(attrs) = e.get_mut("attrs").and_then(serde_json::Value::as_object_mut) {
                attrs.insert(name.clone(), value.clone());
            }
        }
    }
}
