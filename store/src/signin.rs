//! Sign-in state: failed attempts and lockout, sessions, password-reset links, two-factor
//! (a sealed TOTP secret, the last step used, hashed recovery codes), passkeys (WebAuthn
//! credentials, and the single-use state of a registration or sign-in ceremony in progress) and
//! customers' token links.
//!
//! Input comes from the server's sign-in endpoints, which hash passwords, seal TOTP secrets and
//! verify passkeys before they get here; output is [`Session`]s the server turns into
//! principals. These writes do not move the change version: nothing in them is a fact the engine
//! decides on, so a sign-in never empties the facts caches of the instances.
//!
//! The lockout, for `max` failures and a lock of `lock_for`:
//!
//! ```text
//!            begin_sign_in: failures += 1           failures == max
//!   open ──────────────────────────────────> open ─────────────────> locked until now + lock_for
//!    ^  <── sign_in_succeeded (failures = 0)          │                   │
//!    └──────────────── unlock_user / reset_password ──┴── time passes ────┘
//! ```
//!
//! An attempt is counted *before* the password is verified, in one transaction, so concurrent
//! guesses cannot run more than `max` verifications before the lock holds.
//!
//! The implementation is written once, `impl<D: Dialect> SignInStore for SqlStore<D>`, over
//! the statements of its `sql` module, which both databases run as written. The one that
//! differs is the read of an attempts row for the read-check-write of an attempt,
//! [`Dialect::LOCK_ATTEMPTS`]: with a row lock on PostgreSQL, plain on SQLite, whose single
//! writer connection already serialises writes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json;
use sqlx::{Encode, Executor, Type};
use time::{Duration, OffsetDateTime};

use crate::clock::{from_millis, to_millis};
use crate::dialect::{Affected, Column, Conn, Db, Dialect, Param, Row, SqlStore};
use crate::error::{Result, StoreError};
use crate::model::{Attrs, Audit, EntityRef, Outcome, User};
use crate::secret::{hash_token, random_token, same_hash, Secret};
use crate::store::UserStore;

/// The lockout rules of a sign-in attempt (from the policy folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failures in a row that lock the account.
    pub max_failures: u32,
    /// How long the lock lasts.
    pub lock_for: Duration,
}

/// Whether a sign-in attempt may verify the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; this attempt is failure number `failures` unless it succeeds.
    Proceed {
        /// The count including this attempt.
        failures: u32,
        /// This attempt locked the account (it was the last one allowed).
        locked: bool,
    },
    /// The account is locked; do not verify.
    Locked {
        /// When the lock ends.
        until: OffsetDateTime,
    },
}

/// The lockout state of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LockState {
    /// Failures in a row.
    pub failures: u32,
    /// When the current lock ends, if the account is locked now.
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

/// A signed-in session (its token is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id, to list and revoke it (not a credential).
    pub id: String,
    /// The user it signs in.
    pub user: String,
    /// A label for the device, from the client.
    pub device: String,
    /// Whether the sign-in passed a second factor.
    pub mfa: bool,
    /// The id of the entity the session acts for (the folder's `sign_in.switch_attribute` or
    /// `switch_context` says which type), changed by a governed switch.
    pub switched_to: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last used.
    #[serde(with = "time::serde::rfc3339")]
    pub last_active_at: OffsetDateTime,
    /// When it ends whatever the activity.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// What it takes to open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The user.
    pub user: String,
    /// A label for the device.
    pub device: String,
    /// Whether a second factor was checked.
    pub mfa: bool,
    /// The id of the entity the session starts acting for.
    pub switched_to: Option<String>,
    /// The absolute lifetime.
    pub lifetime: Duration,
}

/// A session and its token, returned once.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    /// The session.
    pub session: Session,
    /// The bearer token (stored only as a digest).
    pub token: Secret,
}

/// A user's two-factor state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totp {
    /// The TOTP secret, sealed by the server (never plaintext here).
    pub sealed: Option<String>,
    /// Whether enrolment was confirmed with a first code.
    pub enabled: bool,
    /// The last time step accepted (no code is accepted twice).
    pub last_step: Option<i64>,
}

/// A customer's token link (the service portal): signs in as the customer's token-link user while the customer
/// has no portal user of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyLink {
    /// Its id.
    pub id: String,
    /// The company it opens.
    pub company: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A passkey (WebAuthn credential) a user registered. The credential is the relying party's
/// verified record of it (public key, signature counter, flags) as the server serialises it;
/// the store keeps it opaque.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPasskey {
    /// Its id, to list and remove it (not a credential).
    pub id: String,
    /// The user it signs in.
    pub user: String,
    /// The WebAuthn user handle the authenticator returns for it (random, one per user, the
    /// same for all of a user's passkeys).
    #[serde(skip)]
    pub handle: String,
    /// The credential id, base64url without padding (unique across users).
    pub credential_id: String,
    /// A label the user gave it.
    pub name: String,
    /// The verified credential, serialised by the server.
    #[serde(skip)]
    pub credential: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last signed in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// What it takes to register a passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPasskey {
    /// The user.
    pub user: String,
    /// The user's WebAuthn user handle.
    pub handle: String,
    /// The credential id, base64url without padding.
    pub credential_id: String,
    /// A label.
    pub name: String,
    /// The verified credential, serialised.
    pub credential: String,
}

/// Audit actions of sign-in.
pub mod actions {
    /// A sign-in (outcome success or failed).
    pub const LOGIN: &str = "auth.login";
    /// An account locked after too many failures.
    pub const LOCK: &str = "auth.lock";
    /// An account unlocked by an admin.
    pub const UNLOCK: &str = "auth.unlock";
    /// A session revoked.
    pub const SESSION_REVOKE: &str = "auth.session_revoke";
    /// A password changed by its user.
    pub const PASSWORD_CHANGE: &str = "auth.password_change";
    /// A password-reset link issued.
    pub const RESET_REQUEST: &str = "auth.password_reset_request";
    /// A password set through a reset link.
    pub const RESET: &str = "auth.password_reset";
    /// An e-mail change asked for: a link sent to the new address.
    pub const EMAIL_CHANGE_REQUEST: &str = "auth.email_change_request";
    /// An e-mail change confirmed through its link.
    pub const EMAIL_CHANGE: &str = "auth.email_change";
    /// Two-factor enrolment started, confirmed or disabled.
    pub const TOTP: &str = "auth.totp";
    /// Recovery codes issued.
    pub const RECOVERY_CODES: &str = "auth.recovery_codes";
    /// A token link created or revoked.
    pub const LINK: &str = "auth.link";
    /// A passkey registered or removed.
    pub const PASSKEY: &str = "auth.passkey";
}

/// The sign-in half of the store; every [`crate::UserStore`] is one.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// Counts an attempt before its password is verified, locking the subject when it is the
    /// last one allowed; refuses while a lock holds. A lock that has run out is cleared. The
    /// subject is a user id, or [`unknown_subject`] of a login that names no user.
    async fn begin_sign_in(&self, subject: &str, rules: Lockout) -> Result<Attempt>;

    /// Clears the failure count after a verified sign-in.
    async fn sign_in_succeeded(&self, user: &str) -> Result<()>;

    /// Audits a failed attempt (`user` is `None` for an unknown login); never stores the
    /// password.
    async fn audit_sign_in_failure(
        &self,
        user: Option<&str>,
        company: Option<&str>,
        reason: &str,
    ) -> Result<()>;

    /// The lockout state of a user.
    async fn lock_state(&self, user: &str) -> Result<LockState>;

    /// Clears a lock at once (an admin's governed action).
    async fn unlock_user(&self, user: &str, audit: &Audit) -> Result<()>;

    /// Opens a session; its token is returned once.
    async fn create_session(&self, new: NewSession, audit: &Audit) -> Result<IssuedSession>;

    /// The live session a token belongs to: not revoked, not past its absolute end, used within
    /// `idle`, of an active user. Records the use. Unknown, dead and malformed tokens are all
    /// `NotFound`.
    async fn resolve_session(&self, token: &str, idle: Duration) -> Result<Session>;

    /// A session by id.
    async fn get_session(&self, id: &str) -> Result<Session>;

    /// A user's live sessions, newest first.
    async fn list_sessions(&self, user: &str, idle: Duration) -> Result<Vec<Session>>;

    /// Revokes one session.
    async fn revoke_session(&self, id: &str, audit: &Audit) -> Result<Session>;

    /// Revokes all of a user's sessions but `except`; returns how many.
    async fn revoke_sessions(&self, user: &str, except: Option<&str>, audit: &Audit) -> Result<u64>;

    /// Changes what a session carries: its MFA state and its active customer.
    async fn update_session(&self, id: &str, mfa: bool, switched_to: Option<String>) -> Result<Session>;

    /// Sets a user's password (a PHC string) and revokes its other sessions.
    async fn change_password(&self, user: &str, phc: String, keep: Option<&str>, audit: &Audit)
        -> Result<()>;

    /// Issues a single-use password-reset token valid for `ttl`; `None` while an earlier
    /// token of the user is still unused and valid (one live link per login, so repeated
    /// requests send no new mail).
    async fn create_reset_token(&self, user: &str, ttl: Duration, audit: &Audit) -> Result<Option<Secret>>;

    /// Starts a change of a user's e-mail address: a single-use token for `new_email`, valid for
    /// `ttl`, replacing any change still pending. The address in force does not change until
    /// [`SignInStore::confirm_email_change`]. `Conflict` when another user has that address.
    async fn request_email_change(
        &self,
        user: &str,
        new_email: &str,
        ttl: Duration,
        audit: &Audit,
    ) -> Result<Secret>;

    /// Confirms a pending e-mail change with its token: once, before it expires, while the
    /// address is still free; answers the user with its new address.
    async fn confirm_email_change(&self, token: &str, audit: &Audit) -> Result<User>;

    /// Uses a reset token: once, before it expires. Sets the password, clears any lock,
    /// revokes every session and the API keys made with them, in one transaction.
    async fn reset_password(&self, token: &str, phc: String, audit: &Audit) -> Result<User>;

    /// A user's two-factor state.
    async fn totp(&self, user: &str) -> Result<Totp>;

    /// Stores (or with `None` removes) a user's sealed TOTP secret and whether it is confirmed;
    /// removing it also removes the recovery codes.
    async fn set_totp(&self, user: &str, sealed: Option<String>, enabled: bool, audit: &Audit) -> Result<()>;

    /// Accepts a time step for a user's TOTP only if it is later than the last one accepted.
    async fn use_totp_step(&self, user: &str, step: i64) -> Result<bool>;

    /// Replaces a user's recovery codes (given in plaintext, stored as digests).
    async fn set_recovery_codes(&self, user: &str, codes: &[Secret], audit: &Audit) -> Result<()>;

    /// Uses a recovery code, once.
    async fn use_recovery_code(&self, user: &str, code: &str) -> Result<bool>;

    /// How many unused recovery codes a user has.
    async fn recovery_codes_left(&self, user: &str) -> Result<u32>;

    /// Creates a token link for a company; its token is returned once.
    async fn create_company_link(&self, company: &str, audit: &Audit) -> Result<(CompanyLink, Secret)>;

    /// The live link a token belongs to.
    async fn resolve_company_link(&self, token: &str) -> Result<CompanyLink>;

    /// Revokes a token link.
    async fn revoke_company_link(&self, id: &str, audit: &Audit) -> Result<CompanyLink>;

    /// A user's passkeys, oldest first (`NotFound` for an unknown user).
    async fn passkeys(&self, user: &str) -> Result<Vec<StoredPasskey>>;

    /// Registers a passkey, audited (`auth.passkey`, state `registered`). `Conflict` when its
    /// credential id is registered already (to anyone), `NotFound` for an unknown user.
    async fn add_passkey(&self, new: NewPasskey, audit: &Audit) -> Result<StoredPasskey>;

    /// The passkey a credential id names, whoever it belongs to.
    async fn passkey_by_credential(&self, credential_id: &str) -> Result<StoredPasskey>;

    /// Records a sign-in with a passkey: its updated credential (the signature counter) and
    /// the time.
    async fn passkey_used(&self, id: &str, credential: String) -> Result<()>;

    /// Removes one of a user's passkeys, audited (state `removed`); `NotFound` when the user
    /// has no passkey with that id.
    async fn remove_passkey(&self, user: &str, id: &str, audit: &Audit) -> Result<StoredPasskey>;

    /// Keeps the server's state of a started WebAuthn ceremony (`kind`: what it may finish)
    /// for `ttl`; answers the single-use token that names it (stored as a digest). Ceremonies
    /// past their time are dropped here.
    async fn begin_ceremony(
        &self,
        kind: &str,
        user: Option<&str>,
        state: String,
        ttl: Duration,
    ) -> Result<Secret>;

    /// Takes a ceremony's state once: the user it was started for and the state. An unknown,
    /// used or other-kind token is `NotFound`; one past its time is `Expired`. Taken, it is gone
    /// either way.
    async fn take_ceremony(&self, kind: &str, token: &str) -> Result<(Option<String>, String)>;
}

/// Statements both backends run as written (`$n` placeholders, which sqlx maps for SQLite too).
pub(crate) mod sql {
    pub const ENSURE_SECURITY: &str =
        "INSERT INTO user_security (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING";
    pub const GET_SECURITY: &str =
        "SELECT totp_secret, totp_enabled, totp_last_step FROM user_security WHERE user_id = $1";
    pub const ENSURE_ATTEMPTS: &str =
        "INSERT INTO sign_in_attempts (subject) VALUES ($1) ON CONFLICT (subject) DO NOTHING";
    pub const GET_ATTEMPTS: &str =
        "SELECT failed_logins, locked_until FROM sign_in_attempts WHERE subject = $1";
    pub const SET_LOCK: &str =
        "UPDATE sign_in_attempts SET failed_logins = $2, locked_until = $3 WHERE subject = $1";
    pub const SET_TOTP: &str = "UPDATE user_security SET totp_secret = $2, totp_enabled = $3, \
         totp_last_step = NULL WHERE user_id = $1";
    pub const USE_TOTP_STEP: &str = "UPDATE user_security SET totp_last_step = $2 \
         WHERE user_id = $1 AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $2)";
    pub const USER_EXISTS: &str = "SELECT company_id FROM users WHERE id = $1";

    pub const INSERT_SESSION: &str = "INSERT INTO sessions (id, token_hash, user_id, device, mfa, \
         switched_to, created_at, last_active_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)";
    pub const SESSION_BY_HASH: &str = "SELECT s.id, s.user_id, s.device, s.mfa, s.switched_to, s.created_at, s.last_active_at, s.expires_at, s.revoked_at, \
         s.token_hash, u.active FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1";
    pub const SESSION_BY_ID: &str = "SELECT s.id, s.user_id, s.device, s.mfa, s.switched_to, s.created_at, s.last_active_at, s.expires_at, s.revoked_at \
         FROM sessions s WHERE s.id = $1";
    pub const LIST_SESSIONS: &str = "SELECT s.id, s.user_id, s.device, s.mfa, s.switched_to, s.created_at, s.last_active_at, s.expires_at, s.revoked_at \
         FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
         AND s.last_active_at > $3 ORDER BY s.created_at DESC, s.id";
    pub const TOUCH_SESSION: &str = "UPDATE sessions SET last_active_at = $2 WHERE id = $1";
    pub const REVOKE_SESSION: &str =
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    pub const REVOKE_SESSIONS: &str = "UPDATE sessions SET revoked_at = $2 \
         WHERE user_id = $1 AND revoked_at IS NULL AND (CAST($3 AS TEXT) IS NULL OR id <> CAST($3 AS TEXT))";
    /// The live API keys made with a user's sessions.
    pub const REVOKE_SESSION_KEYS: &str = "UPDATE api_keys SET revoked_at = $2 \
         WHERE revoked_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE user_id = $1)";
    pub const UPDATE_SESSION: &str = "UPDATE sessions SET mfa = $2, switched_to = $3 WHERE id = $1";

    pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
    pub const INSERT_RESET: &str =
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
    pub const LIVE_RESETS: &str = "SELECT COUNT(*) FROM password_resets \
         WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2";
    pub const GET_RESET: &str =
        "SELECT token_hash, user_id, expires_at, used_at FROM password_resets WHERE token_hash = $1";
    pub const USE_RESET: &str =
        "UPDATE password_resets SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL";

    pub const DROP_EMAIL_CHANGES: &str = "DELETE FROM email_changes WHERE user_id = $1 AND used_at IS NULL";
    pub const INSERT_EMAIL_CHANGE: &str = "INSERT INTO email_changes (token_hash, user_id, new_email, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
    pub const GET_EMAIL_CHANGE: &str =
        "SELECT token_hash, user_id, new_email, expires_at, used_at FROM email_changes WHERE token_hash = $1";
    pub const USE_EMAIL_CHANGE: &str =
        "UPDATE email_changes SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL";
    pub const EMAIL_TAKEN: &str = "SELECT COUNT(*) FROM users WHERE email = $1 AND id <> $2";
    /// A login that was the old address follows it (the address is the login).
    pub const SET_EMAIL: &str = "UPDATE users SET email = $2, \
         login = CASE WHEN login = email THEN $2 ELSE login END, updated_at = $3 WHERE id = $1";

    pub const DELETE_RECOVERY: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
    pub const INSERT_RECOVERY: &str = "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)";
    pub const USE_RECOVERY: &str = "UPDATE recovery_codes SET used_at = $3 \
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
    pub const RECOVERY_LEFT: &str =
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";

    pub const INSERT_LINK: &str =
        "INSERT INTO company_links (id, token_hash, company_id, created_at) VALUES ($1, $2, $3, $4)";
    pub const LINK_BY_HASH: &str =
        "SELECT id, company_id, created_at, revoked_at, token_hash FROM company_links WHERE token_hash = $1";
    pub const LINK_BY_ID: &str =
        "SELECT id, company_id, created_at, revoked_at, token_hash FROM company_links WHERE id = $1";
    pub const REVOKE_LINK: &str = "UPDATE company_links SET revoked_at = $2 WHERE id = $1";

    pub const INSERT_PASSKEY: &str = "INSERT INTO passkeys (id, user_id, handle, credential_id, name, \
         credential, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const PASSKEY_BY_ID: &str = "SELECT id, user_id, handle, credential_id, name, credential, \
         created_at, last_used_at FROM passkeys WHERE id = $1";
    pub const PASSKEY_BY_CREDENTIAL: &str = "SELECT id, user_id, handle, credential_id, name, credential, \
         created_at, last_used_at FROM passkeys WHERE credential_id = $1";
    pub const LIST_PASSKEYS: &str = "SELECT id, user_id, handle, credential_id, name, credential, \
         created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, id";
    pub const USE_PASSKEY: &str = "UPDATE passkeys SET credential = $2, last_used_at = $3 WHERE id = $1";
    /// Only the user's own passkey goes.
    pub const DELETE_PASSKEY: &str = "DELETE FROM passkeys WHERE id = $1 AND user_id = $2 \
         RETURNING id, user_id, handle, credential_id, name, credential, created_at, last_used_at";

    pub const DROP_EXPIRED_CEREMONIES: &str = "DELETE FROM passkey_ceremonies WHERE expires_at <= $1";
    pub const INSERT_CEREMONY: &str = "INSERT INTO passkey_ceremonies (token_hash, kind, user_id, state, \
         expires_at) VALUES ($1, $2, $3, $4, $5)";
    /// One statement finds and deletes: of two concurrent takes, one gets the row, the other none.
    pub const TAKE_CEREMONY: &str = "DELETE FROM passkey_ceremonies WHERE token_hash = $1 AND kind = $2 \
         RETURNING token_hash, user_id, state, expires_at";
}

#[derive(sqlx::FromRow)]
struct AttemptsRow {
    failed_logins: i64,
    locked_until: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SecurityRow {
    totp_secret: Option<String>,
    totp_enabled: bool,
    totp_last_step: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    device: String,
    mfa: bool,
    switched_to: Option<String>,
    created_at: i64,
    last_active_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl SessionRow {
    fn into_session(self) -> Session {
        Session {
            id: self.id,
            user: self.user_id,
            device: self.device,
            mfa: self.mfa,
            switched_to: self.switched_to,
            created_at: from_millis(self.created_at),
            last_active_at: from_millis(self.last_active_at),
            expires_at: from_millis(self.expires_at),
            revoked_at: self.revoked_at.map(from_millis),
        }
    }
}

#[derive(sqlx::FromRow)]
struct HashedSessionRow {
    #[sqlx(flatten)]
    session: SessionRow,
    token_hash: String,
    active: bool,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: String,
    company_id: String,
    created_at: i64,
    revoked_at: Option<i64>,
    token_hash: String,
}

impl LinkRow {
    fn into_link(self) -> CompanyLink {
        CompanyLink {
            id: self.id,
            company: self.company_id,
            created_at: from_millis(self.created_at),
            revoked_at: self.revoked_at.map(from_millis),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PasskeyRow {
    id: String,
    user_id: String,
    handle: String,
    credential_id: String,
    name: String,
    credential: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl PasskeyRow {
    fn into_passkey(self) -> StoredPasskey {
        StoredPasskey {
            id: self.id,
            user: self.user_id,
            handle: self.handle,
            credential_id: self.credential_id,
            name: self.name,
            credential: self.credential,
            created_at: from_millis(self.created_at),
            last_used_at: self.last_used_at.map(from_millis),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

/// The stored digest of a link token (`pcr_…`, `pce_…`) or ceremony token (`pkc_…`):
/// `NotFound` without its prefix.
fn link_digest(token: &str, prefix: &str, what: &'static str) -> Result<String> {
    let secret = token.trim().strip_prefix(prefix);
    secret
        .map(hash_token)
        .ok_or_else(|| StoreError::not_found(what, "(redacted)"))
}

// The `where` list of the four generic blocks (see `crate::dialect`).
impl<D> SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut Conn<D>: Executor<'c, Database = Db<D>>,
    for<'r> &'r str: sqlx::ColumnIndex<Row<D>>,
    usize: sqlx::ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, Db<D>> + Type<Db<D>>,
    for<'q> Option<&'q str>: Encode<'q, Db<D>>,
    i64: Column<Db<D>>,
    bool: Column<Db<D>>,
    String: Column<Db<D>>,
    Json<Attrs>: Column<Db<D>>,
    Json<Vec<String>>: Column<Db<D>>,
    Json<Vec<EntityRef>>: Column<Db<D>>,
    Option<i64>: Param<Db<D>>,
    Option<String>: Param<Db<D>>,
    for<'a> Json<&'a Attrs>: Param<Db<D>>,
    for<'a> Json<&'a Vec<String>>: Param<Db<D>>,
    for<'a> Json<&'a Vec<EntityRef>>: Param<Db<D>>,
{
    /// The company of a user, or `NotFound`.
    async fn company_of(conn: &mut Conn<D>, user: &str) -> Result<String> {
        sqlx::query_scalar::<_, String>(sql::USER_EXISTS)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("user", user))
    }

    /// Appends an audit row with its outcome (sign-in rows move no change version).
    #[expect(clippy::too_many_arguments, reason = "one audit row has that many columns")]
    async fn audit_row(
        conn: &mut Conn<D>,
        now: i64,
        audit: &Audit,
        action: &str,
        target: Option<String>,
        company: Option<&str>,
        outcome: Outcome,
        own: serde_json::Value,
    ) -> Result<()> {
        let company = audit.company.as_deref().or(company);
        sqlx::query(crate::backend::sql::INSERT_AUDIT)
            .bind(now)
            .bind(audit.actor.as_deref())
            .bind(company)
            .bind(action)
            .bind(target)
            .bind(outcome.as_str())
            .bind(Json(crate::backend::details(own, &audit.details)))
            .bind(Option::<i64>::None)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(())
    }

    /// The security row of a user, created if missing.
    async fn security(conn: &mut Conn<D>, user: &str) -> Result<SecurityRow> {
        sqlx::query(sql::ENSURE_SECURITY)
            .bind(user)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        sqlx::query_as::<_, SecurityRow>(sql::GET_SECURITY)
            .bind(user)
            .fetch_one(&mut *conn)
            .await
            .map_err(D::db_err)
    }

    /// The attempts row of a subject, created if missing and locked for the transaction.
    async fn attempts(conn: &mut Conn<D>, subject: &str) -> Result<AttemptsRow> {
        sqlx::query(sql::ENSURE_ATTEMPTS)
            .bind(subject)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        sqlx::query_as::<_, AttemptsRow>(D::LOCK_ATTEMPTS)
            .bind(subject)
            .fetch_one(&mut *conn)
            .await
            .map_err(D::db_err)
    }

    async fn clear_attempts(conn: &mut Conn<D>, subject: &str) -> Result<()> {
        sqlx::query(sql::SET_LOCK)
            .bind(subject)
            .bind(0_i64)
            .bind(Option::<i64>::None)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(())
    }

    /// Uses a link token once: its row `(digest, expires_at, used_at)` must match, be
    /// unused (`NotFound` otherwise, as for an unknown token) and unexpired (`Expired`);
    /// `use_sql` marks it used, and a concurrent use makes this one `NotFound`.
    async fn use_link(
        conn: &mut Conn<D>,
        given: &str,
        (hash, expires_at, used_at): (&str, i64, Option<i64>),
        use_sql: &str,
        now: i64,
        what: &'static str,
    ) -> Result<()> {
        let unknown = || StoreError::not_found(what, "(redacted)");
        if !same_hash(hash, given) || used_at.is_some() {
            return Err(unknown());
        }
        if expires_at <= now {
            return Err(StoreError::Expired { what });
        }
        let used = sqlx::query(use_sql)
            .bind(given)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        if used.rows_affected() != 1 {
            return Err(unknown());
        }
        Ok(())
    }

    /// `Conflict` (the users' e-mail constraint) when another user has `email`.
    async fn email_free(conn: &mut Conn<D>, email: &str, user: &str) -> Result<()> {
        let taken: i64 = sqlx::query_scalar(sql::EMAIL_TAKEN)
            .bind(email)
            .bind(user)
            .fetch_one(&mut *conn)
            .await
            .map_err(D::db_err)?;
        if taken > 0 {
            return Err(StoreError::Conflict {
                constraint: "users_email_key".to_owned(),
                message: format!("another user has the e-mail address `{email}`"),
            });
        }
        Ok(())
    }

    /// The company of a user, or `None` for a subject that is no user.
    async fn company_if_user(conn: &mut Conn<D>, subject: &str) -> Result<Option<String>> {
        sqlx::query_scalar::<_, String>(sql::USER_EXISTS)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)
    }

    async fn revoke_all(conn: &mut Conn<D>, user: &str, except: Option<&str>, now: i64) -> Result<u64> {
        let done = sqlx::query(sql::REVOKE_SESSIONS)
            .bind(user)
            .bind(now)
            .bind(except)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(done.rows_affected())
    }
}

/// Sign-in on any [`Dialect`] (with the same `where` list).
#[async_trait]
impl<D> SignInStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut Conn<D>: Executor<'c, Database = Db<D>>,
    for<'r> &'r str: sqlx::ColumnIndex<Row<D>>,
    usize: sqlx::ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, Db<D>> + Type<Db<D>>,
    for<'q> Option<&'q str>: Encode<'q, Db<D>>,
    i64: Column<Db<D>>,
    bool: Column<Db<D>>,
    String: Column<Db<D>>,
    Json<Attrs>: Column<Db<D>>,
    Json<Vec<String>>: Column<Db<D>>,
    Json<Vec<EntityRef>>: Column<Db<D>>,
    Option<i64>: Param<Db<D>>,
    Option<String>: Param<Db<D>>,
    for<'a> Json<&'a Attrs>: Param<Db<D>>,
    for<'a> Json<&'a Vec<String>>: Param<Db<D>>,
    for<'a> Json<&'a Vec<EntityRef>>: Param<Db<D>>,
{
    async fn begin_sign_in(&self, subject: &str, rules: Lockout) -> Result<Attempt> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_if_user(&mut tx, subject).await?;
        let row = Self::attempts(&mut tx, subject).await?;
        if let Some(until) = row.locked_until.filter(|u| *u > now) {
            return Ok(Attempt::Locked {
                until: from_millis(until),
            });
        }
        // A lock that ran out starts a fresh count.
        let before = if row.locked_until.is_some() {
            0
        } else {
            row.failed_logins
        };
        let failures = u32::try_from(before.saturating_add(1)).unwrap_or(u32::MAX);
        let locked = failures >= rules.max_failures;
        let until = locked.then(|| now.saturating_add(millis(rules.lock_for)));
        sqlx::query(sql::SET_LOCK)
            .bind(subject)
            .bind(i64::from(failures))
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        // Locks of real users are audited; an unknown login's is not worth a row.
        if let (Some(until), Some(company)) = (until, company) {
            let own = json!({ "failures": failures, "locked_until": from_millis(until).to_string() });
            let target = Some(format!("user:{subject}"));
            let audit = Audit::system();
            Self::audit_row(
                &mut tx,
                now,
                &audit,
                actions::LOCK,
                target,
                Some(&company),
                Outcome::Success,
                own,
            )
            .await?;
        }
        tx.commit().await.map_err(D::db_err)?;
        Ok(Attempt::Proceed { failures, locked })
    }

    async fn sign_in_succeeded(&self, user: &str) -> Result<()> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        Self::attempts(&mut tx, user).await?;
        Self::clear_attempts(&mut tx, user).await?;
        let audit = Audit::by(user.to_owned());
        let target = Some(format!("user:{user}"));
        Self::audit_row(
            &mut tx,
            now,
            &audit,
            actions::LOGIN,
            target,
            Some(&company),
            Outcome::Success,
            json!({}),
        )
        .await?;
        tx.commit().await.map_err(D::db_err)
    }

    async fn audit_sign_in_failure(
        &self,
        user: Option<&str>,
        company: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        let now = to_millis(self.clock.now());
        let mut conn = self.db.writer().acquire().await.map_err(D::db_err)?;
        let target = user.map(|u| format!("user:{u}"));
        let own = json!({ "reason": reason });
        Self::audit_row(
            &mut conn,
            now,
            &Audit::system(),
            actions::LOGIN,
            target,
            company,
            Outcome::Failed,
            own,
        )
        .await
    }

    async fn lock_state(&self, user: &str) -> Result<LockState> {
        let now = to_millis(self.clock.now());
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Self::company_of(&mut conn, user).await?;
        let row = sqlx::query_as::<_, AttemptsRow>(sql::GET_ATTEMPTS)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(match row {
            None => LockState {
                failures: 0,
                locked_until: None,
            },
            Some(r) => {
                let live = r.locked_until.filter(|u| *u > now);
                LockState {
                    failures: if r.locked_until.is_some() && live.is_none() {
                        0
                    } else {
                        u32::try_from(r.failed_logins).unwrap_or(u32::MAX)
                    },
                    locked_until: live.map(from_millis),
                }
            }
        })
    }

    async fn unlock_user(&self, user: &str, audit: &Audit) -> Result<()> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        let before = Self::attempts(&mut tx, user).await?;
        Self::clear_attempts(&mut tx, user).await?;
        let own = json!({ "was_locked": before.locked_until.is_some_and(|u| u > now) });
        let target = Some(format!("user:{user}"));
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::UNLOCK,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)
    }

    async fn create_session(&self, new: NewSession, audit: &Audit) -> Result<IssuedSession> {
        let l = &self.limits;
        let device = crate::backend::label(l, "device", &new.device)?;
        let now = to_millis(self.clock.now());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let token = random_token()?;
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, &new.user).await?;
        sqlx::query(sql::INSERT_SESSION)
            .bind(&id)
            .bind(hash_token(&token))
            .bind(&new.user)
            .bind(&device)
            .bind(new.mfa)
            .bind(&new.switched_to)
            .bind(now)
            .bind(now.saturating_add(millis(new.lifetime)))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let own = json!({ "session": id, "device": device, "mfa": new.mfa });
        let target = Some(format!("user:{}", new.user));
        Self::audit_row(
            &mut tx,
            now,
            audit,
            "auth.session_create",
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        let session = sqlx::query_as::<_, SessionRow>(sql::SESSION_BY_ID)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_session();
        tx.commit().await.map_err(D::db_err)?;
        Ok(IssuedSession {
            session,
            token: Secret::new(format!("pcs_{token}")),
        })
    }

    async fn resolve_session(&self, token: &str, idle: Duration) -> Result<Session> {
        let unknown = || StoreError::not_found("session", "(redacted)");
        let secret = token.trim().strip_prefix("pcs_").ok_or_else(unknown)?;
        let given = hash_token(secret);
        let now = to_millis(self.clock.now());
        let row = sqlx::query_as::<_, HashedSessionRow>(sql::SESSION_BY_HASH)
            .bind(&given)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .ok_or_else(unknown)?;
        let s = &row.session;
        let live = same_hash(&row.token_hash, &given)
            && row.active
            && s.revoked_at.is_none()
            && s.expires_at > now
            && s.last_active_at.saturating_add(millis(idle)) > now;
        if !live {
            return Err(unknown());
        }
        // Record the use, at most once a second per session (reads stay reads).
        if now - s.last_active_at >= 1000 {
            sqlx::query(sql::TOUCH_SESSION)
                .bind(&s.id)
                .bind(now)
                .execute(self.db.writer())
                .await
                .map_err(D::db_err)?;
        }
        let mut session = row.session.into_session();
        session.last_active_at = from_millis(now.max(to_millis(session.last_active_at)));
        Ok(session)
    }

    async fn get_session(&self, id: &str) -> Result<Session> {
        sqlx::query_as::<_, SessionRow>(sql::SESSION_BY_ID)
            .bind(id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .map(SessionRow::into_session)
            .ok_or_else(|| StoreError::not_found("session", id))
    }

    async fn list_sessions(&self, user: &str, idle: Duration) -> Result<Vec<Session>> {
        let now = to_millis(self.clock.now());
        let rows = sqlx::query_as::<_, SessionRow>(sql::LIST_SESSIONS)
            .bind(user)
            .bind(now)
            .bind(now.saturating_sub(millis(idle)))
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(SessionRow::into_session).collect())
    }

    async fn revoke_session(&self, id: &str, audit: &Audit) -> Result<Session> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let s = sqlx::query_as::<_, SessionRow>(sql::SESSION_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("session", id))?;
        let company = Self::company_of(&mut tx, &s.user_id).await?;
        sqlx::query(sql::REVOKE_SESSION)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let target = Some(format!("user:{}", s.user_id));
        let own = json!({ "session": id });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::SESSION_REVOKE,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        let after = sqlx::query_as::<_, SessionRow>(sql::SESSION_BY_ID)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_session();
        tx.commit().await.map_err(D::db_err)?;
        Ok(after)
    }

    async fn revoke_sessions(&self, user: &str, except: Option<&str>, audit: &Audit) -> Result<u64> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        let n = Self::revoke_all(&mut tx, user, except, now).await?;
        if n == 0 {
            // Nothing ended, nothing to record.
            tx.commit().await.map_err(D::db_err)?;
            return Ok(0);
        }
        let target = Some(format!("user:{user}"));
        let own = json!({ "sessions": n, "kept": except });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::SESSION_REVOKE,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        Ok(n)
    }

    async fn update_session(&self, id: &str, mfa: bool, switched_to: Option<String>) -> Result<Session> {
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let done = sqlx::query(sql::UPDATE_SESSION)
            .bind(id)
            .bind(mfa)
            .bind(&switched_to)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("session", id));
        }
        let s = sqlx::query_as::<_, SessionRow>(sql::SESSION_BY_ID)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_session();
        tx.commit().await.map_err(D::db_err)?;
        Ok(s)
    }

    async fn change_password(
        &self,
        user: &str,
        phc: String,
        keep: Option<&str>,
        audit: &Audit,
    ) -> Result<()> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        sqlx::query(sql::SET_PASSWORD)
            .bind(user)
            .bind(&phc)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let n = Self::revoke_all(&mut tx, user, keep, now).await?;
        let target = Some(format!("user:{user}"));
        let own = json!({ "sessions_revoked": n });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::PASSWORD_CHANGE,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)
    }

    async fn create_reset_token(&self, user: &str, ttl: Duration, audit: &Audit) -> Result<Option<Secret>> {
        let now = to_millis(self.clock.now());
        let token = random_token()?;
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        let live: i64 = sqlx::query_scalar(sql::LIVE_RESETS)
            .bind(user)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if live > 0 {
            tx.commit().await.map_err(D::db_err)?;
            return Ok(None);
        }
        sqlx::query(sql::INSERT_RESET)
            .bind(hash_token(&token))
            .bind(user)
            .bind(now)
            .bind(now.saturating_add(millis(ttl)))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let target = Some(format!("user:{user}"));
        let own = json!({ "valid_minutes": ttl.whole_minutes() });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::RESET_REQUEST,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        Ok(Some(Secret::new(format!("pcr_{token}"))))
    }

    async fn request_email_change(
        &self,
        user: &str,
        new_email: &str,
        ttl: Duration,
        audit: &Audit,
    ) -> Result<Secret> {
        let email = crate::backend::email(&self.limits, new_email)?;
        let now = to_millis(self.clock.now());
        let token = random_token()?;
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        Self::email_free(&mut tx, &email, user).await?;
        sqlx::query(sql::DROP_EMAIL_CHANGES)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        sqlx::query(sql::INSERT_EMAIL_CHANGE)
            .bind(hash_token(&token))
            .bind(user)
            .bind(&email)
            .bind(now)
            .bind(now.saturating_add(millis(ttl)))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let target = Some(format!("user:{user}"));
        let own = json!({ "new_email": email, "valid_minutes": ttl.whole_minutes() });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::EMAIL_CHANGE_REQUEST,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        Ok(Secret::new(format!("pce_{token}")))
    }

    async fn confirm_email_change(&self, token: &str, audit: &Audit) -> Result<User> {
        const WHAT: &str = "e-mail change token";
        let given = link_digest(token, "pce_", WHAT)?;
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let row: Option<(String, String, String, i64, Option<i64>)> = sqlx::query_as(sql::GET_EMAIL_CHANGE)
            .bind(&given)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let Some((hash, user, email, expires_at, used_at)) = row else {
            return Err(StoreError::not_found(WHAT, "(redacted)"));
        };
        Self::use_link(
            &mut tx,
            &given,
            (&hash, expires_at, used_at),
            sql::USE_EMAIL_CHANGE,
            now,
            WHAT,
        )
        .await?;
        // Taken meanwhile: refused, and the transaction, the token's use with it, undone.
        Self::email_free(&mut tx, &email, &user).await?;
        let company = Self::company_of(&mut tx, &user).await?;
        sqlx::query(sql::SET_EMAIL)
            .bind(&user)
            .bind(&email)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let target = Some(format!("user:{user}"));
        let own = json!({ "email": email });
        let audit = Audit {
            actor: audit.actor.clone().or_else(|| Some(user.clone())),
            ..audit.clone()
        };
        Self::audit_row(
            &mut tx,
            now,
            &audit,
            actions::EMAIL_CHANGE,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        self.get_user(&user).await
    }

    async fn reset_password(&self, token: &str, phc: String, audit: &Audit) -> Result<User> {
        const WHAT: &str = "reset token";
        let given = link_digest(token, "pcr_", WHAT)?;
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let row: Option<(String, String, i64, Option<i64>)> = sqlx::query_as(sql::GET_RESET)
            .bind(&given)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let Some((hash, user, expires_at, used_at)) = row else {
            return Err(StoreError::not_found(WHAT, "(redacted)"));
        };
        Self::use_link(
            &mut tx,
            &given,
            (&hash, expires_at, used_at),
            sql::USE_RESET,
            now,
            WHAT,
        )
        .await?;
        let company = Self::company_of(&mut tx, &user).await?;
        sqlx::query(sql::SET_PASSWORD)
            .bind(&user)
            .bind(&phc)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::attempts(&mut tx, &user).await?;
        Self::clear_attempts(&mut tx, &user).await?;
        let n = Self::revoke_all(&mut tx, &user, None, now).await?;
        // The keys those sessions made end with them: whoever held a session
        // before the reset keeps no way in.
        let keys = sqlx::query(sql::REVOKE_SESSION_KEYS)
            .bind(&user)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?
            .rows_affected();
        let target = Some(format!("user:{user}"));
        let own = json!({ "sessions_revoked": n, "api_keys_revoked": keys, "unlocked": true });
        let audit = Audit {
            actor: audit.actor.clone().or_else(|| Some(user.clone())),
            ..audit.clone()
        };
        Self::audit_row(
            &mut tx,
            now,
            &audit,
            actions::RESET,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        self.get_user(&user).await
    }

    async fn totp(&self, user: &str) -> Result<Totp> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Self::company_of(&mut conn, user).await?;
        let row = sqlx::query_as::<_, SecurityRow>(sql::GET_SECURITY)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(row.map_or_else(Totp::default, |r| Totp {
            sealed: r.totp_secret,
            enabled: r.totp_enabled,
            last_step: r.totp_last_step,
        }))
    }

    async fn set_totp(&self, user: &str, sealed: Option<String>, enabled: bool, audit: &Audit) -> Result<()> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        Self::security(&mut tx, user).await?;
        let removed = sealed.is_none();
        sqlx::query(sql::SET_TOTP)
            .bind(user)
            .bind(&sealed)
            .bind(enabled && !removed)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if removed {
            sqlx::query(sql::DELETE_RECOVERY)
                .bind(user)
                .execute(&mut *tx)
                .await
                .map_err(D::db_err)?;
        }
        let state = if removed {
            "disabled"
        } else if enabled {
            "enabled"
        } else {
            "enrolling"
        };
        let target = Some(format!("user:{user}"));
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::TOTP,
            target,
            Some(&company),
            Outcome::Success,
            json!({ "state": state }),
        )
        .await?;
        tx.commit().await.map_err(D::db_err)
    }

    async fn use_totp_step(&self, user: &str, step: i64) -> Result<bool> {
        let done = sqlx::query(sql::USE_TOTP_STEP)
            .bind(user)
            .bind(step)
            .execute(self.db.writer())
            .await
            .map_err(D::db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_recovery_codes(&self, user: &str, codes: &[Secret], audit: &Audit) -> Result<()> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, user).await?;
        sqlx::query(sql::DELETE_RECOVERY)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        for c in codes {
            sqlx::query(sql::INSERT_RECOVERY)
                .bind(user)
                .bind(hash_token(&normalize_code(c.expose())))
                .execute(&mut *tx)
                .await
                .map_err(D::db_err)?;
        }
        let target = Some(format!("user:{user}"));
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::RECOVERY_CODES,
            target,
            Some(&company),
            Outcome::Success,
            json!({ "codes": codes.len() }),
        )
        .await?;
        tx.commit().await.map_err(D::db_err)
    }

    async fn use_recovery_code(&self, user: &str, code: &str) -> Result<bool> {
        let now = to_millis(self.clock.now());
        let done = sqlx::query(sql::USE_RECOVERY)
            .bind(user)
            .bind(hash_token(&normalize_code(code)))
            .bind(now)
            .execute(self.db.writer())
            .await
            .map_err(D::db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, user: &str) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(sql::RECOVERY_LEFT)
            .bind(user)
            .fetch_one(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    async fn create_company_link(&self, company: &str, audit: &Audit) -> Result<(CompanyLink, Secret)> {
        let now = to_millis(self.clock.now());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let token = random_token()?;
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        sqlx::query(sql::INSERT_LINK)
            .bind(&id)
            .bind(hash_token(&token))
            .bind(company)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match D::db_err(e) {
                StoreError::Conflict { .. } => StoreError::not_found("company", company),
                other => other,
            })?;
        let target = Some(format!("company:{company}"));
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::LINK,
            target,
            Some(company),
            Outcome::Success,
            json!({ "link": id, "state": "created" }),
        )
        .await?;
        let link = sqlx::query_as::<_, LinkRow>(sql::LINK_BY_ID)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_link();
        tx.commit().await.map_err(D::db_err)?;
        Ok((link, Secret::new(format!("pcl_{token}"))))
    }

    async fn resolve_company_link(&self, token: &str) -> Result<CompanyLink> {
        let unknown = || StoreError::not_found("link", "(redacted)");
        let secret = token.trim().strip_prefix("pcl_").ok_or_else(unknown)?;
        let given = hash_token(secret);
        let row = sqlx::query_as::<_, LinkRow>(sql::LINK_BY_HASH)
            .bind(&given)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .ok_or_else(unknown)?;
        if !same_hash(&row.token_hash, &given) || row.revoked_at.is_some() {
            return Err(unknown());
        }
        Ok(row.into_link())
    }

    async fn revoke_company_link(&self, id: &str, audit: &Audit) -> Result<CompanyLink> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let row = sqlx::query_as::<_, LinkRow>(sql::LINK_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("link", id))?;
        if row.revoked_at.is_some() {
            return Err(StoreError::invalid(format!("link `{id}` is already revoked")));
        }
        sqlx::query(sql::REVOKE_LINK)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let target = Some(format!("company:{}", row.company_id));
        let company = row.company_id.clone();
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::LINK,
            target,
            Some(&company),
            Outcome::Success,
            json!({ "link": id, "state": "revoked" }),
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        let mut link = row.into_link();
        link.revoked_at = Some(from_millis(now));
        Ok(link)
    }

    async fn passkeys(&self, user: &str) -> Result<Vec<StoredPasskey>> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Self::company_of(&mut conn, user).await?;
        let rows = sqlx::query_as::<_, PasskeyRow>(sql::LIST_PASSKEYS)
            .bind(user)
            .fetch_all(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(PasskeyRow::into_passkey).collect())
    }

    async fn add_passkey(&self, new: NewPasskey, audit: &Audit) -> Result<StoredPasskey> {
        let name = crate::backend::label(&self.limits, "passkey name", &new.name)?;
        let now = to_millis(self.clock.now());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let company = Self::company_of(&mut tx, &new.user).await?;
        sqlx::query(sql::INSERT_PASSKEY)
            .bind(&id)
            .bind(&new.user)
            .bind(&new.handle)
            .bind(&new.credential_id)
            .bind(&name)
            .bind(&new.credential)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match D::db_err(e) {
                // Named by the credential only: whose it is stays unsaid.
                StoreError::Conflict { constraint, .. } if constraint == "passkeys_credential_id_key" => {
                    StoreError::Conflict {
                        message: format!(
                            "the passkey credential `{}` is registered already",
                            new.credential_id
                        ),
                        constraint,
                    }
                }
                // The user deleted meanwhile (PostgreSQL names the key, SQLite does not).
                StoreError::Conflict { constraint, .. }
                    if constraint == "passkeys_user_id_fkey" || constraint == "foreign_key" =>
                {
                    StoreError::not_found("user", new.user.as_str())
                }
                other => other,
            })?;
        let target = Some(format!("user:{}", new.user));
        let own = json!({ "passkey": id, "name": name, "state": "registered" });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::PASSKEY,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        let passkey = sqlx::query_as::<_, PasskeyRow>(sql::PASSKEY_BY_ID)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_passkey();
        tx.commit().await.map_err(D::db_err)?;
        Ok(passkey)
    }

    async fn passkey_by_credential(&self, credential_id: &str) -> Result<StoredPasskey> {
        sqlx::query_as::<_, PasskeyRow>(sql::PASSKEY_BY_CREDENTIAL)
            .bind(credential_id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .map(PasskeyRow::into_passkey)
            .ok_or_else(|| StoreError::not_found("passkey", credential_id))
    }

    async fn passkey_used(&self, id: &str, credential: String) -> Result<()> {
        let now = to_millis(self.clock.now());
        let done = sqlx::query(sql::USE_PASSKEY)
            .bind(id)
            .bind(&credential)
            .bind(now)
            .execute(self.db.writer())
            .await
            .map_err(D::db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("passkey", id));
        }
        Ok(())
    }

    async fn remove_passkey(&self, user: &str, id: &str, audit: &Audit) -> Result<StoredPasskey> {
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        // Found and deleted in one statement, and only if it is the user's.
        let passkey = sqlx::query_as::<_, PasskeyRow>(sql::DELETE_PASSKEY)
            .bind(id)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("passkey", id))?
            .into_passkey();
        let company = Self::company_of(&mut tx, user).await?;
        let target = Some(format!("user:{user}"));
        let own = json!({ "passkey": id, "name": passkey.name, "state": "removed" });
        Self::audit_row(
            &mut tx,
            now,
            audit,
            actions::PASSKEY,
            target,
            Some(&company),
            Outcome::Success,
            own,
        )
        .await?;
        tx.commit().await.map_err(D::db_err)?;
        Ok(passkey)
    }

    async fn begin_ceremony(
        &self,
        kind: &str,
        user: Option<&str>,
        state: String,
        ttl: Duration,
    ) -> Result<Secret> {
        let now = to_millis(self.clock.now());
        let token = random_token()?;
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        if let Some(user) = user {
            Self::company_of(&mut tx, user).await?;
        }
        sqlx::query(sql::DROP_EXPIRED_CEREMONIES)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        sqlx::query(sql::INSERT_CEREMONY)
            .bind(hash_token(&token))
            .bind(kind)
            .bind(user)
            .bind(&state)
            .bind(now.saturating_add(millis(ttl)))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        tx.commit().await.map_err(D::db_err)?;
        Ok(Secret::new(format!("pkc_{token}")))
    }

    async fn take_ceremony(&self, kind: &str, token: &str) -> Result<(Option<String>, String)> {
        const WHAT: &str = "passkey ceremony";
        let given = link_digest(token, "pkc_", WHAT)?;
        let now = to_millis(self.clock.now());
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        // One statement finds and deletes the row: a concurrent take finds none.
        let row: Option<(String, Option<String>, String, i64)> = sqlx::query_as(sql::TAKE_CEREMONY)
            .bind(&given)
            .bind(kind)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let Some((hash, user, state, expires_at)) = row else {
            return Err(StoreError::not_found(WHAT, "(redacted)"));
        };
        if !same_hash(&hash, &given) {
            // Dropping the transaction undoes the delete.
            return Err(StoreError::not_found(WHAT, "(redacted)"));
        }
        // Gone either way: an expired ceremony is not kept for another try.
        tx.commit().await.map_err(D::db_err)?;
        if expires_at <= now {
            return Err(StoreError::Expired { what: WHAT });
        }
        Ok((user, state))
    }
}

/// The lockout subject of a login that names no user: unknown logins lock like known ones.
pub fn unknown_subject(login: &str) -> String {
    format!(
        "unknown:{}",
        crate::secret::hash_token(&login.trim().to_lowercase())
    )
}

/// Recovery codes are compared without case, spaces or dashes.
pub(crate) fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
