//! Passkeys (WebAuthn, through `webauthn-rs`): a signed-in user registers them, lists and
//! removes them; anyone signs in with one alone (a discoverable credential: no login typed, so
//! nothing tells whether an account exists) or uses one as the second factor after a password.
//!
//! Each ceremony has two calls. The first answers the options the browser hands to
//! `navigator.credentials.create()` / `.get()` and a single-use `pkc_…` token naming the
//! server's state of the ceremony, which waits in the store (so any instance may finish it) for
//! [`CEREMONY_TTL`]. The second takes that state once and verifies the authenticator's answer
//! against it: the challenge, the origin (one of `passkey_origins`), the relying party id
//! (`passkey_rp_id`), user verification (a PIN or a biometric, always required: a passkey is a
//! second factor by itself) and the signature counter.
//!
//! ```text
//! register:  POST /v1/auth/passkeys/register ─> options + pkc_ ─> browser create() ─> POST /v1/auth/passkeys
//! sign in:   POST /v1/auth/passkey/challenge ─> options + pkc_ ─> browser get() ─> POST /v1/auth/passkey/login
//!                                                                                └─> POST /v1/auth/login {passkey}
//! ```

use data_encoding::BASE64URL_NOPAD;
use portcullis_store::{Audit, NewPasskey, Secret, StoreError, StoredPasskey, User};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::AuthError;
use crate::manage::governance::SignInAccess;

/// How long a started ceremony may be finished.
pub const CEREMONY_TTL: time::Duration = time::Duration::minutes(5);

/// The store's name for a registration ceremony.
const REGISTER: &str = "passkey.register";
/// The store's name for a sign-in ceremony.
const SIGN_IN: &str = "passkey.sign_in";

/// The relying party: who the passkeys are for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PasskeyConfig {
    /// The relying party id: the domain the passkeys are bound to (`portal.example.com`); the
    /// pages that use them are served from it or a subdomain of it.
    pub rp_id: String,
    /// The origins of those pages (`https://portal.example.com`); the first is the main one.
    pub origins: Vec<String>,
    /// The name authenticators show (`Acme customs portal`).
    pub rp_name: String,
}

/// A started ceremony: the options for the browser and the token that finishes it.
#[derive(Debug)]
pub struct Started {
    /// The single-use token (`pkc_…`).
    pub ceremony: Secret,
    /// `{"publicKey": {…}}`, for `navigator.credentials.create()` or `.get()` once its
    /// base64url fields are decoded.
    pub options: Value,
}

/// The relying party's verifier.
#[derive(Debug, Clone)]
pub struct Passkeys {
    webauthn: std::sync::Arc<Webauthn>,
}

impl Passkeys {
    /// Builds the verifier; a clear message when the configuration cannot work.
    pub fn new(config: &PasskeyConfig) -> Result<Self, String> {
        let parse = |o: &str| Url::parse(o).map_err(|e| format!("passkey_origins: `{o}` is not a URL ({e})"));
        let Some((first, rest)) = config.origins.split_first() else {
            return Err("passkey_origins: at least one origin is needed with passkey_rp_id".to_owned());
        };
        let first = parse(first)?;
        let mut builder = WebauthnBuilder::new(&config.rp_id, &first)
            .map_err(|e| {
                format!(
                    "passkey_rp_id `{}` does not fit origin `{first}`: {e}",
                    config.rp_id
                )
            })?
            .rp_name(&config.rp_name);
        for o in rest {
            builder = builder.append_allowed_origin(&parse(o)?);
        }
        let webauthn = builder
            .build()
            .map_err(|e| format!("the passkey settings do not work together: {e}"))?;
        Ok(Passkeys {
            webauthn: std::sync::Arc::new(webauthn),
        })
    }

    /// Starts registering a passkey for a signed-in user: its passkeys so far are excluded
    /// (an authenticator registers once), and a discoverable credential is asked for so the
    /// passkey can later sign in alone.
    pub async fn start_registration(&self, s: &SignInAccess<'_>, user: &User) -> Result<Started, AuthError> {
        let existing = s.store.passkeys(&user.id).await?;
        let handle = match existing.first() {
            Some(p) => Uuid::parse_str(&p.handle).map_err(|e| AuthError::Internal(e.to_string()))?,
            None => Uuid::new_v4(),
        };
        let exclude = existing
            .iter()
            .filter_map(|p| BASE64URL_NOPAD.decode(p.credential_id.as_bytes()).ok())
            .collect();
        let display = if user.name.is_empty() {
            &user.login
        } else {
            &user.name
        };
        let (options, state) = self
            .webauthn
            .start_passkey_registration(handle, &user.login, display, Some(exclude))
            .map_err(|e| AuthError::Internal(format!("passkey registration could not start: {e}")))?;
        let mut options = serde_json::to_value(options).map_err(|e| AuthError::Internal(e.to_string()))?;
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = Value::from("preferred");
        }
        let state = serde_json::to_string(&RegistrationState {
            handle: handle.to_string(),
            state,
        })
        .map_err(|e| AuthError::Internal(e.to_string()))?;
        let ceremony = s
            .store
            .begin_ceremony(REGISTER, Some(&user.id), state, CEREMONY_TTL)
            .await?;
        Ok(Started { ceremony, options })
    }

    /// Finishes a registration the same user started: verifies the authenticator's answer and
    /// stores the passkey under `name`.
    pub async fn finish_registration(
        &self,
        s: &SignInAccess<'_>,
        user: &User,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        name: String,
    ) -> Result<StoredPasskey, AuthError> {
        let state = match s.store.take_ceremony(REGISTER, ceremony).await {
            Ok((Some(owner), state)) if owner == user.id => state,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Err(AuthError::InvalidToken),
            Err(StoreError::Expired { .. }) => return Err(AuthError::Expired),
            Err(e) => return Err(e.into()),
        };
        let state: RegistrationState =
            serde_json::from_str(&state).map_err(|e| AuthError::Internal(e.to_string()))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &state.state)
            .map_err(|e| AuthError::Passkey(format!("the authenticator's answer was not accepted: {e}")))?;
        let new = NewPasskey {
            user: user.id.clone(),
            handle: state.handle,
            credential_id: BASE64URL_NOPAD.encode(passkey.cred_id().as_ref()),
            name,
            credential: serde_json::to_string(&passkey).map_err(|e| AuthError::Internal(e.to_string()))?,
        };
        let audit = Audit::by(user.id.clone()).in_company(user.company.clone());
        match s.store.add_passkey(new, &audit).await {
            Err(StoreError::Conflict { .. }) => Err(AuthError::Conflict(
                "this passkey is registered already".to_owned(),
            )),
            other => Ok(other?),
        }
    }

    /// Starts a sign-in with a passkey: no login, no allowed credentials, the same answer for
    /// everyone.
    pub async fn start_sign_in(&self, s: &SignInAccess<'_>) -> Result<Started, AuthError> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| AuthError::Internal(format!("passkey sign-in could not start: {e}")))?;
        // The page chooses between a button (modal) and autofill (`mediation: "conditional"`).
        options.mediation = None;
        let options = serde_json::to_value(options).map_err(|e| AuthError::Internal(e.to_string()))?;
        let state = serde_json::to_string(&state).map_err(|e| AuthError::Internal(e.to_string()))?;
        let ceremony = s.store.begin_ceremony(SIGN_IN, None, state, CEREMONY_TTL).await?;
        Ok(Started { ceremony, options })
    }

    /// Verifies a sign-in ceremony's answer: the passkey it names, its user handle, its
    /// signature over the challenge with user verification. Answers the passkey, its counter
    /// recorded. Every failure is the one [`AuthError::InvalidCredentials`]; the reason is
    /// returned beside it for the audit trail, with the passkey's user when one was named.
    pub async fn verify(
        &self,
        s: &SignInAccess<'_>,
        ceremony: &str,
        credential: &PublicKeyCredential,
    ) -> Result<StoredPasskey, Refused> {
        let refused = |reason: &'static str, user: Option<&StoredPasskey>| Refused::Because {
            reason,
            user: user.map(|p| p.user.clone()),
        };
        let state = match s.store.take_ceremony(SIGN_IN, ceremony).await {
            Ok((_, state)) => state,
            Err(StoreError::NotFound { .. } | StoreError::Expired { .. }) => {
                return Err(refused("unknown or expired passkey ceremony", None))
            }
            Err(e) => return Err(Refused::Store(e)),
        };
        let state: DiscoverableAuthentication =
            serde_json::from_str(&state).map_err(|e| Refused::Store(StoreError::Backend(e.to_string())))?;
        let Ok((handle, id)) = self.webauthn.identify_discoverable_authentication(credential) else {
            return Err(refused("passkey answer without a user handle", None));
        };
        let stored = match s.store.passkey_by_credential(&BASE64URL_NOPAD.encode(id)).await {
            Ok(p) => p,
            Err(StoreError::NotFound { .. }) => return Err(refused("unknown passkey", None)),
            Err(e) => return Err(Refused::Store(e)),
        };
        if stored.handle != handle.to_string() {
            return Err(refused("passkey user handle does not match", Some(&stored)));
        }
        let mut passkey: Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| Refused::Store(StoreError::Backend(e.to_string())))?;
        let Ok(result) = self
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
        else {
            return Err(refused("passkey signature not verified", Some(&stored)));
        };
        passkey.update_credential(&result);
        let updated = serde_json::to_string(&passkey)
            .map_err(|e| Refused::Store(StoreError::Backend(e.to_string())))?;
        s.store
            .passkey_used(&stored.id, updated)
            .await
            .map_err(Refused::Store)?;
        Ok(stored)
    }
}

/// Why a passkey sign-in was refused.
#[derive(Debug)]
pub enum Refused {
    /// The answer did not prove anything: one answer to the caller, the reason for the audit.
    Because {
        /// For the audit trail.
        reason: &'static str,
        /// The user of the passkey the answer named, if any.
        user: Option<String>,
    },
    /// The store failed.
    Store(StoreError),
}

/// What waits in the store between the two calls of a registration.
#[derive(serde::Serialize, serde::Deserialize)]
struct RegistrationState {
    /// The user's WebAuthn user handle.
    handle: String,
    /// `webauthn-rs`'s state.
    state: PasskeyRegistration,
}
