//! Decisions of the actions a folder marks as audited (`[audit] decisions` in `roles.toml`),
//! written to the user store's audit trail before they are answered.
//!
//! Input: the request as asked (principal, action, resource, context, and the session when a
//! session asked) and the engine's decision. Output: one audit row per audited decision: the
//! user and its company, the action, the resource, allowed (`success`) or denied (`denied`),
//! and in its details the deciding policies, the policy version, the decision id and the
//! customer profile the session acts for. A row that cannot be written fails the request
//! (503): an audited decision is never answered unrecorded. Folders without `[audit]`, and
//! servers without a user store, pay nothing and record nothing.

use cedar_policy::EntityUid;
use portcullis_engine::{EntityRef, Slot};
use portcullis_store::{NewAuditEntry, Outcome, Session};
use serde_json::{json, Map, Value};

use super::decide::DecisionBody;
use crate::http::error::ApiError;
use crate::state::{AppState, Served};

/// What was asked, as the request gave it.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The principal.
    pub principal: EntityRef,
    /// The action.
    pub action: EntityRef,
    /// The resource.
    pub resource: EntityRef,
    /// The context.
    pub context: Map<String, Value>,
    /// Which endpoint: `authorize`, `batch`, `authzen`.
    pub via: &'static str,
}

/// Whether decisions of `action` are audited under the served folder; `false` when the folder
/// audits nothing or the server has no user store.
pub fn wanted(app: &AppState, served: &Served, action: &EntityRef) -> bool {
    let Some(model) = served.snapshot.model() else {
        return false;
    };
    if model.audited.is_empty() || app.manage.get().is_none() {
        return false;
    }
    served
        .resolver
        .action(&served.snapshot, action)
        .is_ok_and(|uid| model.audited.iter().any(|a| a.value == uid.id().unescaped()))
}

/// Writes the audit row of one decision that [`wanted`] said is audited.
pub async fn record(
    app: &AppState,
    served: &Served,
    asked: &Asked,
    session: Option<&Session>,
    decision: &DecisionBody,
) -> Result<(), ApiError> {
    let m = crate::manage::manage(app)?;
    let s = &served.snapshot;
    let principal = served.resolver.entity(s, &asked.principal, Slot::Principal)?;
    let action = served.resolver.action(s, &asked.action)?;
    let resource = served.resolver.entity(s, &asked.resource, Slot::Resource)?;
    let (actor, company) = if principal.type_name().to_string() == s.user_type() {
        let id = principal.id().unescaped().to_owned();
        let stored = m
            .cache
            .get(m.gate.read(), &id)
            .await
            .map_err(crate::manage::store_error)?;
        (id, stored.map(|u| u.user.company.clone()))
    } else {
        (principal.to_string(), None)
    };
    let mut details = Map::new();
    details.insert("decision_id".to_owned(), json!(decision.decision_id));
    details.insert("reasons".to_owned(), json!(decision.reasons));
    details.insert("policy_version".to_owned(), json!(&*decision.version));
    details.insert("via".to_owned(), json!(asked.via));
    if let Some(customer) = customer(served, asked, session) {
        details.insert("customer".to_owned(), json!(customer));
    }
    if let Some(session) = session {
        details.insert("session".to_owned(), json!(session.id));
    }
    let entry = NewAuditEntry {
        actor: Some(actor),
        company,
        action: action.id().unescaped().to_owned(),
        target: Some(target(&resource)),
        outcome: match decision.decision {
            portcullis_engine::Outcome::Allow => Outcome::Success,
            portcullis_engine::Outcome::Deny => Outcome::Denied,
        },
        details,
    };
    m.gate.record_decision(entry).await.map_err(|e| {
        tracing::error!(error = %e, "cannot write the audit row of an audited decision");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "this decision is audited and its audit row could not be written; nothing was answered",
        )
    })
}

/// The customer profile the decision was made for: the session's, else the one the request's
/// context names in the folder's `sign_in.switch_context` attribute.
fn customer(served: &Served, asked: &Asked, session: Option<&Session>) -> Option<String> {
    if let Some(c) = session.and_then(|s| s.switched_to.clone()) {
        return Some(c);
    }
    let name = served.snapshot.model()?.sign_in.switch_context.as_deref()?;
    let v = asked.context.get(name)?;
    let e = v.get("__entity").unwrap_or(v);
    e.get("id").and_then(Value::as_str).map(str::to_owned)
}

/// A resource as the audit trail names it: `Declaration:d1` (its type without namespace).
fn target(uid: &EntityUid) -> String {
    let ty = uid.type_name().basename().to_string();
    format!("{ty}:{}", uid.id().unescaped())
}
