//! Row types shared by both backends (`FromRow` over columns both decode: text, bigint, bool and
//! JSON through `sqlx::types::Json`), and their conversion to the model.

use std::collections::BTreeMap;

use sqlx::types::Json;

use crate::clock::from_millis;
use crate::model::{
    AccessibleCompany, ApiKey, Attrs, AuditEntry, Change, Company, EntityRef, GrantStatus, Invitation,
    InvitationStatus, Outcome, PermissionGroup, User, VisitorGrant,
};
use crate::{CompanyFacts, UserFacts};

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CompanyRow {
    pub id: String,
    pub name: String,
    pub account_type: String,
    pub parent_id: Option<String>,
    pub user_limit: Option<i64>,
    pub attrs: Json<Attrs>,
    pub created_at: i64,
}

impl CompanyRow {
    pub fn into_company(self) -> Company {
        Company {
            id: self.id,
            name: self.name,
            account_type: self.account_type,
            parent: self.parent_id,
            user_limit: self.user_limit.and_then(|l| u32::try_from(l).ok()),
            attrs: self.attrs.0,
            created_at: from_millis(self.created_at),
        }
    }

    pub fn facts(&self) -> CompanyFacts {
        CompanyFacts {
            account_type: self.account_type.clone(),
            parent: self.parent_id.clone(),
            attrs: self
                .attrs
                .0
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            active_roles: None,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub company_id: String,
    pub login: String,
    pub email: Option<String>,
    pub name: String,
    pub role: String,
    pub active: bool,
    pub flags: Json<Vec<String>>,
    pub addons: Json<Vec<String>>,
    pub group_name: Option<String>,
    pub attrs: Json<Attrs>,
    pub has_password: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn into_user(self, accessible: Vec<AccessibleCompany>) -> User {
        User {
            id: self.id,
            company: self.company_id,
            login: self.login,
            email: self.email,
            name: self.name,
            role: self.role,
            active: self.active,
            flags: self.flags.0,
            addons: self.addons.0,
            group: self.group_name,
            attrs: self.attrs.0,
            accessible,
            has_password: self.has_password,
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
        }
    }
}

/// The facts of a user acting in `company` with `role`.
pub(crate) fn user_facts(user: &User, company: &str, role: &str) -> UserFacts {
    UserFacts {
        company: company.to_owned(),
        role: role.to_owned(),
        active: user.active,
        flags: user.flags.clone(),
        addons: user.addons.clone(),
        group: user.group.clone(),
        attrs: user.attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        login: Some(user.login.clone()),
        // Every company it may act in besides `company`: its own, when acting in another.
        accessible: std::iter::once(&user.company)
            .filter(|c| c.as_str() != company)
            .chain(
                user.accessible
                    .iter()
                    .map(|a| &a.company)
                    .filter(|c| c.as_str() != company),
            )
            .cloned()
            .collect(),
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccessRow {
    pub user_id: String,
    pub company_id: String,
    pub role: Option<String>,
}

impl AccessRow {
    pub fn into_access(self) -> AccessibleCompany {
        AccessibleCompany {
            company: self.company_id,
            role: self.role,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct GroupRow {
    pub name: String,
    pub description: String,
    pub features: Json<Vec<String>>,
    pub is_default: bool,
    pub created_at: i64,
    pub defined: bool,
}

impl GroupRow {
    pub fn into_group(self) -> PermissionGroup {
        PermissionGroup {
            name: self.name,
            description: self.description,
            features: self.features.0,
            is_default: self.is_default,
            created_at: from_millis(self.created_at),
            defined: self.defined,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct GrantRow {
    pub id: String,
    pub user_id: String,
    pub from_company: String,
    pub company_id: String,
    pub locations: Json<Vec<EntityRef>>,
    pub actors: Json<Vec<EntityRef>>,
    pub status: String,
    pub requested_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl GrantRow {
    pub fn into_grant(self) -> VisitorGrant {
        VisitorGrant {
            id: self.id,
            user: self.user_id,
            from_company: self.from_company,
            company: self.company_id,
            locations: self.locations.0,
            actors: self.actors.0,
            status: GrantStatus::parse(&self.status),
            requested_at: from_millis(self.requested_at),
            decided_by: self.decided_by,
            decided_at: self.decided_at.map(from_millis),
            revoked_by: self.revoked_by,
            revoked_at: self.revoked_at.map(from_millis),
            expires_at: self.expires_at.map(from_millis),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct InvitationRow {
    pub id: String,
    pub company_id: String,
    pub email: String,
    pub role: String,
    pub flags: Json<Vec<String>>,
    pub addons: Json<Vec<String>>,
    pub group_name: Option<String>,
    pub attrs: Json<Attrs>,
    pub status: String,
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub user_id: Option<String>,
}

impl InvitationRow {
    /// The invitation as of `now_ms` (a pending invitation past its expiry reads as expired).
    pub fn into_invitation(self, now_ms: i64) -> Invitation {
        let status = match self.status.as_str() {
            "accepted" => InvitationStatus::Accepted,
            "revoked" => InvitationStatus::Revoked,
            _ if self.expires_at <= now_ms => InvitationStatus::Expired,
            _ => InvitationStatus::Pending,
        };
        Invitation {
            id: self.id,
            company: self.company_id,
            email: self.email,
            role: self.role,
            flags: self.flags.0,
            addons: self.addons.0,
            group: self.group_name,
            attrs: self.attrs.0,
            status,
            invited_by: self.invited_by,
            created_at: from_millis(self.created_at),
            expires_at: from_millis(self.expires_at),
            accepted_at: self.accepted_at.map(from_millis),
            user: self.user_id,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub key_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub session_id: Option<String>,
}

impl ApiKeyRow {
    pub fn into_key(self) -> ApiKey {
        ApiKey {
            id: self.id,
            user: self.user_id,
            name: self.name,
            created_at: from_millis(self.created_at),
            revoked_at: self.revoked_at.map(from_millis),
            session: self.session_id,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: Option<String>,
    pub company_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub details: Json<Attrs>,
    pub version: Option<i64>,
}

impl AuditRow {
    pub fn into_entry(self) -> AuditEntry {
        AuditEntry {
            id: self.id,
            at: from_millis(self.at),
            actor: self.actor,
            company: self.company_id,
            action: self.action,
            target: self.target,
            outcome: Outcome::parse(&self.outcome),
            details: self.details.0,
            version: self.version,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChangeRow {
    pub version: i64,
    pub kind: String,
    pub entity_id: String,
}

impl ChangeRow {
    pub fn into_change(self) -> Change {
        Change {
            version: self.version,
            kind: self.kind,
            id: self.entity_id,
        }
    }
}
