//! Password-reset links: requests queue up (at most [`RESET_QUEUE`]) and one background
//! task makes each link and hands it to the `password_reset_command`, so neither the answer
//! of `POST /v1/auth/password-reset` nor its time says whether a login exists.

use portcullis_store::{Audit, StoreError, User};
use serde_json::{json, Map};

use super::rules;
use crate::manage::targets::parts;
use crate::manage::Manage;
use crate::state::{AppState, Served};

/// Reset requests waiting for the background task; beyond it, requests are dropped (and
/// logged), so a flood of them costs a bounded amount of work.
pub const RESET_QUEUE: usize = 1024;

/// The task that makes and delivers reset links, one at a time, until the server is gone.
pub fn spawn_resets(app: std::sync::Weak<AppState>, mut queue: tokio::sync::mpsc::Receiver<String>) {
    tokio::spawn(async move {
        while let Some(login) = queue.recv().await {
            let Some(app) = app.upgrade() else { return };
            let Ok((m, served)) = parts(&app) else { return };
            if let Err(e) = issue_reset(&m, &served, &login).await {
                tracing::error!(error = %e, "a password-reset request failed");
            }
        }
    });
}

async fn issue_reset(m: &Manage, served: &Served, login: &str) -> Result<(), String> {
    let read = m.gate.read();
    let user = match read.get_user_by_login(login).await {
        Ok(u) => u,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let is_email = user.login.contains('@') && user.email.as_deref() == Some(user.login.as_str());
    if !user.active || !is_email || !reset_allowed(m, served, &user).await {
        tracing::info!(user = %user.id, "a password-reset request was not eligible");
        return Ok(());
    }
    let r = rules(served);
    let ttl = time::Duration::minutes(i64::from(r.reset_link_minutes));
    let audit = Audit::by(user.id.clone()).in_company(user.company.clone());
    let token = m
        .gate
        .sign_in()
        .store
        .create_reset_token(&user.id, ttl, &audit)
        .await
        .map_err(|e| e.to_string())?;
    // One live link per login: while the last one is valid, a new request sends nothing.
    let Some(token) = token else {
        tracing::info!(user = %user.id, "a password-reset link is still live; no new one sent");
        return Ok(());
    };
    m.auth.deliver_reset(&user, &token, r.reset_link_minutes).await;
    Ok(())
}

/// Asks the folder when it declares `user.password_reset`; otherwise allowed.
async fn reset_allowed(m: &Manage, served: &Served, user: &User) -> bool {
    let s = &served.snapshot;
    let action =
        portcullis_engine::EntityRef::Text(format!("{}::Action::\"user.password_reset\"", s.namespace()));
    let Ok(action_uid) = served.resolver.action(s, &action) else {
        return true;
    };
    let Ok(Some(me)) = m.cache.get(m.gate.read(), &user.id).await else {
        return false;
    };
    let principal = portcullis_engine::EntityRef::Object {
        ty: s.user_type(),
        id: user.id.clone(),
    };
    let mut context = Map::new();
    if let Some(name) = super::mfa_context(s, &action_uid) {
        context.insert(name, json!(false));
    }
    let Ok(uids) = crate::decision::Resolved::of(served, &principal, &action, &principal) else {
        return false;
    };
    let Ok(grounds) = crate::decision::Grounds::caller(served, &me, Vec::new()) else {
        return false;
    };
    crate::decision::decide(served, &grounds, uids, context, None, false)
        .is_ok_and(|a| a.decision().allowed())
}
