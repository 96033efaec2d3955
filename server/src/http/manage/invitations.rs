//! `/v1/invitations…`: invite (`user.invite`, decided on the prospective user with the
//! pre-assigned role, flags and scope), list, revoke (decided as the invitation it revokes),
//! and accept: the one call without an API key, whose credential is the single-use token.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_store::{Acceptance, NewInvitation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::records::{self, Invitation, User};
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::json::ApiJson;
use crate::http::openapi::{ErrorResponse, ManageRefused};
use crate::manage::governance::{InviteUser, RevokeInvitation};
use crate::manage::reads::Reads;
use crate::manage::targets::{assignment, facts, invited_facts, parts, prospective};
use crate::manage::{store_error, Caller};
use crate::state::AppState;

/// `POST /v1/invitations` body: who is invited, with the role, flags and scope the user will
/// have.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewInvitation)]
pub struct NewInvitationBody {
    /// The company to join; the caller's when absent (filled in before the body is read).
    #[schema(required = false, min_length = 1)]
    pub company: String,
    /// Who is invited.
    #[schema(format = Email)]
    pub email: String,
    /// Pre-assigned role.
    #[schema(min_length = 1)]
    pub role: String,
    /// Pre-assigned flags.
    #[serde(default)]
    #[schema(schema_with = records::names)]
    pub flags: Vec<String>,
    /// Pre-assigned add-ons.
    #[serde(default)]
    #[schema(schema_with = records::names)]
    pub addons: Vec<String>,
    /// Pre-assigned group (the default group when absent).
    #[serde(default)]
    #[schema(min_length = 1)]
    pub group: Option<String>,
    /// The stored attributes the folder's schema declares (Cedar JSON).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attrs: Map<String, Value>,
}

impl From<NewInvitationBody> for NewInvitation {
    fn from(b: NewInvitationBody) -> Self {
        // The life of the link is the folder's, set by the handler.
        NewInvitation {
            company: b.company,
            email: b.email,
            role: b.role,
            flags: b.flags,
            addons: b.addons,
            group: b.group,
            attrs: b.attrs,
            ttl: None,
        }
    }
}

/// An invitation just made, with its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The token of the invitation link, shown once.
    pub token: String,
}

/// Invite someone with a pre-assigned role; the token is answered once
///
/// `POST /v1/invitations`: a `NewInvitation` (company defaults to the caller's), decided with
/// the user as it will be. Answers the invitation and its token, shown once.
#[utoipa::path(post, path = "/v1/invitations", description = super::decided("user.invite"), request_body = NewInvitationBody,
    responses((status = 201, description = "done", body = IssuedInvitation), ManageRefused))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<IssuedInvitation>), ApiError> {
    let (m, served) = parts(&app)?;
    if let Some(o) = body.as_object_mut() {
        o.entry("company").or_insert_with(|| json!(caller.company));
    }
    let mut new: NewInvitation = serde_json::from_value::<NewInvitationBody>(body)
        .map_err(|e| ApiError::bad_request("invalid_body", crate::lower_first(&e.to_string())))?
        .into();
    // The folder's `[settings] invitation_expiry_days` (the customs portal: 7, the load planner:
    // 14) is the link's life.
    new.ttl = served
        .snapshot
        .model()
        .map(|m| time::Duration::days(i64::from(m.settings.invitation_expiry_days)));
    let f = facts(
        &new.company,
        &new.role,
        &new.flags,
        &new.addons,
        &new.group,
        &new.attrs,
        &new.email,
    );
    let r = prospective(&m, &served, &format!("invitation:{}", new.email), &f).await?;
    let ctx = assignment(&served, &f);
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, InviteUser { new }, r, ctx)
        .await?;
    let issued = m.gate.invite(&m.cache, ok).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedInvitation {
            invitation: issued.invitation.into(),
            token: issued.token.expose().to_owned(),
        }),
    ))
}

/// `GET /v1/invitations?include_closed=` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include accepted, revoked and expired invitations.
    #[serde(default)]
    pub include_closed: bool,
}

/// Invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// The invitations the caller may read, newest first.
    pub invitations: Vec<Invitation>,
}

/// The caller's company's invitations it may read, as the users they would make (`?include_closed=true` for all)
///
/// `GET /v1/invitations`: the caller's company's invitations, newest first, each decided as
/// `user.read` of the user it would make.
#[utoipa::path(get, path = "/v1/invitations", description = super::decided("user.read"), params(ListQuery),
    responses((status = 200, description = "done", body = InvitationList), ManageRefused))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<InvitationList>, ApiError> {
    let reads = Reads::new(&app, &caller).await?;
    let items = reads
        .m
        .gate
        .read()
        .list_invitations(&caller.company, q.include_closed)
        .await
        .map_err(store_error)?;
    Ok(Json(InvitationList {
        invitations: records::all(reads.invitations(items).await?),
    }))
}

/// Revoke a pending invitation
///
/// `DELETE /v1/invitations/{id}`: revokes a pending invitation.
#[utoipa::path(delete, path = "/v1/invitations/{id}", description = super::decided("user.revoke_invitation"),
    params(("id" = String, Path, description = "the invitation")),
    responses((status = 200, description = "done", body = Invitation), ManageRefused))]
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Invitation>, ApiError> {
    let (m, served) = parts(&app)?;
    let inv = Reads::new(&app, &caller).await?.invitation(&id).await?;
    let f = invited_facts(&inv);
    let r = prospective(&m, &served, &format!("invitation:{}", inv.email), &f).await?;
    let ctx = assignment(&served, &f);
    let ok = m
        .gate
        .decide(&served, &m.cache, &caller, RevokeInvitation { id }, r, ctx)
        .await?;
    Ok(Json(m.gate.revoke_invitation(&m.cache, ok).await?.into()))
}

/// `POST /v1/invitations/accept` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Acceptance)]
pub struct AcceptBody {
    /// The token of the invitation link.
    pub token: String,
    /// User id; a random UUID when absent.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub user_id: Option<String>,
    /// Login; the invited email when absent.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub login: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The first password, checked against the folder's rule before anything is written.
    #[serde(default)]
    pub password: Option<String>,
}

/// Accept an invitation by its token (the token is the credential; no API key)
///
/// `POST /v1/invitations/accept`: creates the invited user, once, before expiry, within the
/// company's user limit. A taken id, login or email (409 `already_exists`, `login_taken`,
/// `email_taken`) closes the invitation, so a token answers that question once: it is no
/// oracle of the logins that exist.
#[utoipa::path(post, path = "/v1/invitations/accept", request_body = AcceptBody,
    responses((status = 201, description = "the new user", body = User), ManageRefused, (status = 410, response = ErrorResponse)),
    security())]
pub async fn accept(
    State(app): State<Arc<AppState>>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (m, served) = parts(&app)?;
    let phc = match body.password {
        Some(p) => {
            let rules = crate::auth::rules(&served);
            let context = [body.login.as_deref().unwrap_or("")];
            Some(
                m.auth
                    .new_password(&rules, zeroize::Zeroizing::new(p), &context)
                    .await?,
            )
        }
        None => None,
    };
    let acceptance = Acceptance {
        user_id: body.user_id,
        login: body.login,
        name: body.name,
    };
    let mut user = m
        .gate
        .accept_invitation(&m.cache, &body.token, acceptance)
        .await
        .map_err(|mut e| {
            // The store closed the invitation: say so, since the token is now spent.
            if e.status == StatusCode::CONFLICT && e.code != "limit_reached" {
                e.message
                    .push_str("; the invitation is now closed: ask for a new one");
            }
            e
        })?;
    if let Some(phc) = phc {
        let audit = portcullis_store::Audit::by(user.id.clone()).in_company(user.company.clone());
        m.gate
            .sign_in()
            .store
            .change_password(&user.id, phc, None, &audit)
            .await
            .map_err(crate::manage::store_error)?;
        user.has_password = true;
    }
    Ok((StatusCode::CREATED, Json(user.into())))
}
