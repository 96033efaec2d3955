//! `/v1/invitations…`: invite (`user.invite`, decided on the prospective user with the
//! pre-assigned role, flags and scope), list, revoke (decided as the invitation it revokes),
//! and accept: the one call without an API key, whose credential is the single-use token.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_store::{Acceptance, Invitation, NewInvitation, User};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::json::ApiJson;
use crate::manage::governance::{InviteUser, RevokeInvitation};
use crate::manage::reads::Reads;
use crate::manage::targets::{assignment, facts, invited_facts, parts, prospective};
use crate::manage::{store_error, Caller};
use crate::state::AppState;

/// `POST /v1/invitations`: a `NewInvitation` (company defaults to the caller's), decided with
/// the user as it will be. Answers the invitation and its token, shown once.
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (m, served) = parts(&app)?;
    if let Some(o) = body.as_object_mut() {
        o.entry("company").or_insert_with(|| json!(caller.company));
    }
    let mut new: NewInvitation = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request("invalid_body", crate::lower_first(&e.to_string())))?;
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
        Json(json!({ "invitation": issued.invitation, "token": issued.token.expose() })),
    ))
}

/// `GET /v1/invitations?include_closed=` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Include accepted, revoked and expired invitations.
    #[serde(default)]
    pub include_closed: bool,
}

/// `GET /v1/invitations`: the caller's company's invitations, newest first, each decided as
/// `user.read` of the user it would make.
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let reads = Reads::new(&app, &caller).await?;
    let items = reads
        .m
        .gate
        .read()
        .list_invitations(&caller.company, q.include_closed)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "invitations": reads.invitations(items).await? })))
}

/// `DELETE /v1/invitations/{id}`: revokes a pending invitation.
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
    Ok(Json(m.gate.revoke_invitation(&m.cache, ok).await?))
}

/// `POST /v1/invitations/accept` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The token of the invitation link.
    pub token: String,
    /// User id; a random UUID when absent.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Login; the invited email when absent.
    #[serde(default)]
    pub login: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The first password (checked against the folder's rule before anything is written).
    #[serde(default)]
    pub password: Option<String>,
}

/// `POST /v1/invitations/accept`: creates the invited user, once, before expiry, within the
/// company's user limit. A taken id, login or email (409 `already_exists`, `login_taken`,
/// `email_taken`) closes the invitation, so a token answers that question once: it is no
/// oracle of the logins that exist.
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
    Ok((StatusCode::CREATED, Json(user)))
}
