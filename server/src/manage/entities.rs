//! Stored facts as Cedar JSON entities for one decision: the user (with the schema's required
//! attributes defaulted), its company and that company's ancestors.
//!
//! Input: [`Stored`] facts from the store. Output: Cedar JSON values for a slice, built with
//! the engine's `Snapshot::user_entity` / `company_entity`, so the shape is the engine's.

use portcullis_engine::facts::{CompanyFacts, UserFacts};
use portcullis_engine::{Derived, Snapshot};
use portcullis_store::{StoreError, VisitorGrant};
use serde_json::Value;

use super::governance::Reader;

/// Deepest enterprise tree followed.
pub const MAX_COMPANY_DEPTH: usize = 16;

/// What the store says about one user: its facts, its company chain and its active grants.
#[derive(Debug)]
pub struct Stored {
    /// The user's id.
    pub id: String,
    /// Its facts.
    pub user: UserFacts,
    /// Its company and that company's ancestors, nearest first.
    pub chain: Vec<(String, CompanyFacts)>,
    /// Approved, unexpired visitor grants it holds.
    pub grants: Vec<VisitorGrant>,
    /// The policy set with its grants linked, for one policy version and one set of unexpired
    /// grants (their ids): built on first use, built again when a grant has run out.
    pub links: std::sync::Mutex<Option<Links>>,
    /// Slices of this user's decisions without inline entities, by served bundle (its install
    /// generation), action and resource: dropped with these facts at the next store change.
    pub slices: std::sync::Mutex<StoredSlices>,
    /// The user and its company chain as the Cedar entities of a slice, for one served bundle
    /// (its install generation): built from the facts once, not for every decision.
    pub entities: std::sync::Mutex<Option<(u64, std::sync::Arc<crate::slice::Inline>)>>,
}

/// See [`Stored::links`]: the policy version, the ids of the grants linked, the policy set.
pub type Links = (
    std::sync::Arc<str>,
    Vec<String>,
    std::sync::Arc<cedar_policy::PolicySet>,
);

/// See [`Stored::slices`].
pub type StoredSlices = std::collections::HashMap<
    (u64, cedar_policy::EntityUid, cedar_policy::EntityUid),
    std::sync::Arc<crate::state::CachedSlice>,
>;

/// Most slices kept per stored user (the map starts over when full).
pub const MAX_STORED_SLICES: usize = 16;

/// A company and its ancestors, nearest first.
pub async fn company_chain(
    read: &Reader<'_>,
    company: &str,
) -> Result<Vec<(String, CompanyFacts)>, StoreError> {
    let mut out: Vec<(String, CompanyFacts)> = Vec::new();
    let mut next = Some(company.to_owned());
    while let Some(id) = next {
        if out.len() >= MAX_COMPANY_DEPTH || out.iter().any(|(c, _)| *c == id) {
            break;
        }
        let facts = read.company_facts(&id).await?;
        next = facts.parent.clone();
        out.push((id, facts));
    }
    Ok(out)
}

/// The user attributes the store's columns decide (company, role, activity, flags, add-ons,
/// and the features of the permission group): never taken from a user's free-form `attrs`,
/// or a manager who may set attributes could give a user another company, another role, a
/// group's features or, to a deactivated user, activity.
pub const RESERVED_USER_ATTRS: &[&str] = &[
    "company",
    "role",
    "active",
    "flags",
    "addons",
    "group_features",
    GROUP_NOT_DEFINED,
];

/// Put by the facts cache beside `group_features` when the user's stored group is not
/// defined yet (see `PermissionGroup::defined`): the folder's features for a group of that
/// name join the stored ones.
pub const GROUP_NOT_DEFINED: &str = "group_not_defined";

/// Drops the reserved attributes from facts the store or a request gave.
pub fn strip_reserved(f: &mut UserFacts) {
    f.attrs.retain(|k, _| !RESERVED_USER_ATTRS.contains(&k.as_str()));
}

/// The value of a user attribute derived from a core fact (`from = "..."`), when the facts hold it.
fn derived_user(s: &Snapshot, from: Derived, f: &UserFacts) -> Option<Value> {
    match from {
        Derived::AccessibleCompanies => {
            let ty = s.company_type();
            let all = std::iter::once(&f.company).chain(&f.accessible);
            Some(Value::Array(
                all.map(|c| serde_json::json!({ "__entity": { "type": ty, "id": c } }))
                    .collect(),
            ))
        }
        Derived::LoginIsEmail => f.login.as_deref().map(|l| Value::Bool(is_email(l))),
        Derived::HasUsers => None,
    }
}

/// An address of the form `local@domain.tld`.
fn is_email(login: &str) -> bool {
    login.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.starts_with('.')
            && domain.contains('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
    })
}

/// The Cedar JSON entity of a user, keeping only declared attributes and defaulting missing
/// required ones.
pub fn user_value(s: &Snapshot, id: &str, f: &UserFacts) -> Value {
    let declared = s.user_attributes();
    let mut f = f.clone();
    let not_defined = f.attrs.remove(GROUP_NOT_DEFINED).is_some();
    f.attrs.retain(|k, _| declared.contains(k));
    // A stored group's features (put there by the cache, over the engine's default of the
    // folder's group of that name) define the group entirely, once it is defined; until then
    // the folder's features join them.
    if not_defined {
        if let Some(Value::Array(stored)) = f.attrs.get_mut("group_features") {
            let declared_features = f
                .group
                .as_deref()
                .map(|g| s.group_features(g))
                .unwrap_or_default();
            for feature in declared_features {
                if !stored.iter().any(|v| v.as_str() == Some(feature.as_str())) {
                    stored.push(Value::String(feature));
                }
            }
        }
    }
    for a in s.stored_user_attributes() {
        if let Some(from) = a.from {
            // Never what a manager wrote: only what the store's core facts say.
            f.attrs.remove(&a.name);
            if let Some(v) = derived_user(s, from, &f) {
                f.attrs.insert(a.name.clone(), v);
            }
        }
    }
    s.user_entity(id, &f)
}

/// Refuses attributes a write may not set on a user: ones the schema does not declare, and
/// ones the store derives from its core facts (`from = ...`).
pub fn writable(s: &Snapshot, f: &UserFacts) -> Result<(), String> {
    unwritable(
        &f.attrs,
        s.user_attributes(),
        s.stored_user_attributes(),
        &s.user_type(),
    )
}

/// [`writable`] for a company.
pub fn writable_company(s: &Snapshot, f: &CompanyFacts) -> Result<(), String> {
    unwritable(
        &f.attrs,
        s.company_attributes(),
        s.stored_company_attributes(),
        &s.company_type(),
    )
}

fn unwritable(
    attrs: &std::collections::BTreeMap<String, Value>,
    declared: &std::collections::BTreeSet<String>,
    stored: &[portcullis_engine::StoredAttribute],
    ty: &str,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, value) in attrs {
        let folder = stored.iter().find(|a| a.name == *name);
        if !declared.contains(name) {
            problems.push(format!("`{name}` is not an attribute of `{ty}` in the schema"));
        } else if folder.is_some_and(|a| a.from.is_some()) {
            problems.push(format!(
                "`{name}` is derived by the user store and cannot be written"
            ));
        } else if let Some(a) = folder.filter(|a| !a.values.iter().any(|(v, _)| v == value)) {
            if !a.values.is_empty() {
                problems.push(format!(
                    "`{name}` must be one of {}, not {value}",
                    portcullis_engine::allowed_list(a.values.iter().map(|(v, _)| v))
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Checks the entities a write would store against the folder's schema: a missing required
/// attribute or an ill-typed value is named in the error, before anything is written.
pub fn fits_schema(s: &Snapshot, values: &[Value]) -> Result<(), String> {
    cedar_policy::Entities::from_json_value(Value::Array(values.to_vec()), Some(s.schema()))
        .map(drop)
        .map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                message.push_str(": ");
                message.push_str(&inner.to_string());
                source = inner.source();
            }
            format!("the result would not fit the schema: {message}")
        })
}

/// The Cedar JSON entity of a company, keeping only declared attributes.
pub fn company_value(s: &Snapshot, id: &str, f: &CompanyFacts) -> Value {
    let declared = s.company_attributes();
    let mut f = f.clone();
    f.attrs.retain(|k, _| declared.contains(k));
    for a in s.stored_company_attributes() {
        if let Some(from) = a.from {
            f.attrs.remove(&a.name);
            if let (Derived::HasUsers, Some(roles)) = (from, &f.active_roles) {
                // A token-link session is not a user of the company.
                let link = s.model().and_then(|m| m.sign_in.token_link_role.as_deref());
                let has = roles.iter().any(|r| Some(r.as_str()) != link);
                f.attrs.insert(a.name.clone(), Value::Bool(has));
            }
        }
    }
    s.company_entity(id, &f)
}

/// A user and its companies as Cedar JSON entities.
pub fn values(s: &Snapshot, id: &str, user: &UserFacts, chain: &[(String, CompanyFacts)]) -> Vec<Value> {
    let mut out = vec![user_value(s, id, user)];
    out.extend(chain.iter().map(|(c, f)| company_value(s, c, f)));
    out
}

/// The `(type, id)` of a Cedar JSON entity.
pub fn uid_of(v: &Value) -> (Option<&str>, Option<&str>) {
    let uid = v.get("uid").map(|u| u.get("__entity").unwrap_or(u));
    (
        uid.and_then(|u| u.get("type")).and_then(Value::as_str),
        uid.and_then(|u| u.get("id")).and_then(Value::as_str),
    )
}

/// Adds `extra` to `into`, each replacing an entity of the same uid.
pub fn merge(into: &mut Vec<Value>, extra: Vec<Value>) {
    for v in extra {
        let key = uid_of(&v);
        let key = (key.0.map(str::to_owned), key.1.map(str::to_owned));
        into.retain(|o| {
            let k = uid_of(o);
            (k.0.map(str::to_owned), k.1.map(str::to_owned)) != key
        });
        into.push(v);
    }
}
