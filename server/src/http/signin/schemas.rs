//! What sign-in's part of the OpenAPI document says of the types its answers carry that live
//! in the store (`portcullis_store`, which knows nothing of the document): schemas with the
//! same fields as those types serialise, under the names the document gives them. And the
//! errors its anonymous calls answer.
//!
//! These types are never built: they only describe.

use std::collections::BTreeMap;

use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::IntoResponses;

use crate::http::openapi::envelope;

/// A signed-in session (`portcullis_store::Session`); its token is never shown again.
#[derive(utoipa::ToSchema)]
#[schema(as = Session)]
#[allow(dead_code)]
pub struct SessionSchema {
    /// Its id, to list and revoke it (not a credential).
    id: String,
    /// The user it signs in.
    user: String,
    /// A label for the device, from the client.
    device: String,
    /// Whether the sign-in passed a second factor.
    mfa: bool,
    /// The id of the customer profile the session acts for (`POST /v1/auth/switch`).
    switched_to: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was last used.
    #[schema(format = DateTime)]
    last_active_at: String,
    /// When it ends whatever the activity.
    #[schema(format = DateTime)]
    expires_at: String,
    /// When it was revoked.
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

/// The lockout state of a user (`portcullis_store::LockState`).
#[derive(utoipa::ToSchema)]
#[schema(as = LockState)]
#[allow(dead_code)]
pub struct LockStateSchema {
    /// Failed sign-ins in a row.
    failures: u32,
    /// When the current lock ends, if the account is locked now.
    #[schema(format = DateTime)]
    locked_until: Option<String>,
}

/// A passkey a user registered (`portcullis_store::StoredPasskey`): names and dates, never
/// key material.
#[derive(utoipa::ToSchema)]
#[schema(as = Passkey)]
#[allow(dead_code)]
pub struct PasskeySchema {
    /// Its id, to remove it (not a credential).
    id: String,
    /// The user it signs in.
    user: String,
    /// The credential id, base64url without padding.
    credential_id: String,
    /// A label the user gave it.
    name: String,
    /// When it was registered.
    #[schema(format = DateTime)]
    created_at: String,
    /// When it last signed in.
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

/// A customer's token link (`portcullis_store::CompanyLink`, the service portal).
#[derive(utoipa::ToSchema)]
#[schema(as = Link)]
#[allow(dead_code)]
pub struct LinkSchema {
    /// Its id.
    id: String,
    /// The company it opens.
    company: String,
    /// When it was created.
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was revoked.
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

/// A user (`portcullis_store::User`), as the management API's part of the document describes
/// it (its `User` schema): sign-in answers carry the same.
pub fn user() -> Ref {
    Ref::from_schema_name("User")
}

/// What an anonymous sign-in call with a body may answer besides its result: a bad body
/// (400), too large (413), no user store (503).
pub struct AnonymousRefused;

impl IntoResponses for AnonymousRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        envelope(&[400, 413, 503])
    }
}
