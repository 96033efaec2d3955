//! The records the management API answers (users, companies, visitor grants, invitations,
//! API keys, permission groups, audit entries) as it answers them, with their schemas for the
//! OpenAPI document; and for request bodies, the schemas of names and the reading of patches.
//!
//! Each record is made from the store's by a `From` that names every field of it: a field the
//! store adds does not compile until it is answered here too, or dropped on purpose. The
//! serialization is the store record's (same fields, same order, RFC 3339 times).

use portcullis_store as store;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::ToSchema;

/// A name a body gives: a string, not blank (the store also bounds it, and the policies
/// decide which roles, flags and companies exist).
pub fn name() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .build()
}

/// Names (flags, add-ons, features), none blank.
pub fn names() -> Array {
    ArrayBuilder::new().items(name()).build()
}

/// Names (flags, add-ons, features), none blank, or `null`: no change.
pub fn names_or_null() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(name())
        .build()
}

/// A field of a patch that may be absent (`None`: no change), `null` (`Some(None)`: cleared)
/// or a value: serde alone reads `null` as absent.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A portal user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// Its id, also its Cedar entity id.
    pub id: String,
    /// The company it belongs to.
    pub company: String,
    /// Login name (unique).
    pub login: String,
    /// Email (unique when set).
    pub email: Option<String>,
    /// Display name.
    pub name: String,
    /// Its role in its company.
    pub role: String,
    /// Deactivated users keep their data but are denied everything.
    pub active: bool,
    /// Flags such as `isolated`.
    pub flags: Vec<String>,
    /// Add-on features.
    pub addons: Vec<String>,
    /// Permission group.
    pub group: Option<String>,
    /// Further attributes (scopes, customer access…), in Cedar JSON.
    #[schema(value_type = Object)]
    pub attrs: Map<String, Value>,
    /// Other companies it may act in, with its role there.
    pub accessible: Vec<AccessibleCompany>,
    /// Whether a password is set.
    pub has_password: bool,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<store::User> for User {
    fn from(u: store::User) -> Self {
        let store::User {
            id,
            company,
            login,
            email,
            name,
            role,
            active,
            flags,
            addons,
            group,
            attrs,
            accessible,
            has_password,
            created_at,
            updated_at,
        } = u;
        User {
            id,
            company,
            login,
            email,
            name,
            role,
            active,
            flags,
            addons,
            group,
            attrs,
            accessible: accessible.into_iter().map(Into::into).collect(),
            has_password,
            created_at,
            updated_at,
        }
    }
}

/// A company a user may switch to besides its own, with its role there.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessibleCompany {
    /// The company.
    #[schema(min_length = 1)]
    pub company: String,
    /// The user's role there; `null`: the same role as in its own company.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub role: Option<String>,
}

impl From<store::AccessibleCompany> for AccessibleCompany {
    fn from(a: store::AccessibleCompany) -> Self {
        let store::AccessibleCompany { company, role } = a;
        AccessibleCompany { company, role }
    }
}

impl From<AccessibleCompany> for store::AccessibleCompany {
    fn from(a: AccessibleCompany) -> Self {
        let AccessibleCompany { company, role } = a;
        store::AccessibleCompany { company, role }
    }
}

/// A company: a customer, forwarder, carrier, or an enterprise's sub-company.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Company {
    /// Its id, also its Cedar entity id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Account type (customer, carrier, forwarder, consolidated…).
    pub account_type: String,
    /// The parent company of an enterprise account.
    pub parent: Option<String>,
    /// Most active users the company may have; `null`: unlimited.
    // A u32, whose bound `format: int32` would put at 2^31 - 1.
    #[schema(value_type = Option<u64>, maximum = 4294967295u32)]
    pub user_limit: Option<u32>,
    /// Further attributes the policy folder declares, in Cedar JSON.
    #[schema(value_type = Object)]
    pub attrs: Map<String, Value>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<store::Company> for Company {
    fn from(c: store::Company) -> Self {
        let store::Company {
            id,
            name,
            account_type,
            parent,
            user_limit,
            attrs,
            created_at,
        } = c;
        Company {
            id,
            name,
            account_type,
            parent,
            user_limit,
            attrs,
            created_at,
        }
    }
}

/// A permission group: a named set of features, one of which is the default for new users.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Group {
    /// Name (unique).
    pub name: String,
    /// Description.
    pub description: String,
    /// Features its members hold.
    pub features: Vec<String>,
    /// Whether new users get it.
    pub is_default: bool,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<store::PermissionGroup> for Group {
    fn from(g: store::PermissionGroup) -> Self {
        // `defined` is the store's own bookkeeping, never answered.
        let store::PermissionGroup {
            name,
            description,
            features,
            is_default,
            created_at,
            defined: _,
        } = g;
        Group {
            name,
            description,
            features,
            is_default,
            created_at,
        }
    }
}

/// A Cedar entity a visitor grant is limited to (a location, an actor…).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntityUid {
    /// Entity type, e.g. `Portal::Location`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Entity id.
    pub id: String,
}

impl From<store::EntityRef> for EntityUid {
    fn from(e: store::EntityRef) -> Self {
        let store::EntityRef { ty, id } = e;
        EntityUid { ty, id }
    }
}

impl From<EntityUid> for store::EntityRef {
    fn from(e: EntityUid) -> Self {
        let EntityUid { ty, id } = e;
        store::EntityRef { ty, id }
    }
}

/// Where a visitor grant is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Asked for, not decided.
    Requested,
    /// Approved by the data owner's company.
    Approved,
    /// Refused.
    Refused,
    /// Revoked or withdrawn.
    Revoked,
}

impl From<store::GrantStatus> for GrantStatus {
    fn from(s: store::GrantStatus) -> Self {
        match s {
            store::GrantStatus::Requested => GrantStatus::Requested,
            store::GrantStatus::Approved => GrantStatus::Approved,
            store::GrantStatus::Refused => GrantStatus::Refused,
            store::GrantStatus::Revoked => GrantStatus::Revoked,
        }
    }
}

impl From<GrantStatus> for store::GrantStatus {
    fn from(s: GrantStatus) -> Self {
        match s {
            GrantStatus::Requested => store::GrantStatus::Requested,
            GrantStatus::Approved => store::GrantStatus::Approved,
            GrantStatus::Refused => store::GrantStatus::Refused,
            GrantStatus::Revoked => store::GrantStatus::Revoked,
        }
    }
}

/// Read access for a user of one company to data of another.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Grant {
    /// Its id.
    pub id: String,
    /// The visiting user.
    pub user: String,
    /// The visiting user's company when it asked.
    pub from_company: String,
    /// The company whose data is shared.
    pub company: String,
    /// Locations the access is limited to (empty: not limited by location).
    pub locations: Vec<EntityUid>,
    /// Actors the access is limited to (empty: not limited by actor).
    pub actors: Vec<EntityUid>,
    /// Lifecycle state.
    pub status: GrantStatus,
    /// When it was requested.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: OffsetDateTime,
    /// Who approved or refused it.
    pub decided_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// When it stops being active.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<store::VisitorGrant> for Grant {
    fn from(g: store::VisitorGrant) -> Self {
        let store::VisitorGrant {
            id,
            user,
            from_company,
            company,
            locations,
            actors,
            status,
            requested_at,
            decided_by,
            decided_at,
            revoked_by,
            revoked_at,
            expires_at,
        } = g;
        Grant {
            id,
            user,
            from_company,
            company,
            locations: locations.into_iter().map(Into::into).collect(),
            actors: actors.into_iter().map(Into::into).collect(),
            status: status.into(),
            requested_at,
            decided_by,
            decided_at,
            revoked_by,
            revoked_at,
            expires_at,
        }
    }
}

/// Where an invitation is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Waiting to be accepted.
    Pending,
    /// Accepted: the user exists.
    Accepted,
    /// Revoked.
    Revoked,
    /// Pending but past its expiry.
    Expired,
}

impl From<store::InvitationStatus> for InvitationStatus {
    fn from(s: store::InvitationStatus) -> Self {
        match s {
            store::InvitationStatus::Pending => InvitationStatus::Pending,
            store::InvitationStatus::Accepted => InvitationStatus::Accepted,
            store::InvitationStatus::Revoked => InvitationStatus::Revoked,
            store::InvitationStatus::Expired => InvitationStatus::Expired,
        }
    }
}

/// An invitation to join a company.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    /// Its id.
    pub id: String,
    /// The company to join.
    pub company: String,
    /// Who is invited.
    pub email: String,
    /// Pre-assigned role.
    pub role: String,
    /// Pre-assigned flags.
    pub flags: Vec<String>,
    /// Pre-assigned add-ons.
    pub addons: Vec<String>,
    /// Pre-assigned group.
    pub group: Option<String>,
    /// Pre-assigned attributes.
    #[schema(value_type = Object)]
    pub attrs: Map<String, Value>,
    /// Lifecycle state.
    pub status: InvitationStatus,
    /// Who invited.
    pub invited_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub accepted_at: Option<OffsetDateTime>,
    /// The user it created.
    pub user: Option<String>,
}

impl From<store::Invitation> for Invitation {
    fn from(i: store::Invitation) -> Self {
        let store::Invitation {
            id,
            company,
            email,
            role,
            flags,
            addons,
            group,
            attrs,
            status,
            invited_by,
            created_at,
            expires_at,
            accepted_at,
            user,
        } = i;
        Invitation {
            id,
            company,
            email,
            role,
            flags,
            addons,
            group,
            attrs,
            status: status.into(),
            invited_by,
            created_at,
            expires_at,
            accepted_at,
            user,
        }
    }
}

/// An API key bound to a user (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    /// Its id (also the key's public prefix).
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// A label.
    pub name: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// The session it was created with, if a signed-in user made it: a password reset revokes
    /// it with the session.
    pub session: Option<String>,
}

impl From<store::ApiKey> for ApiKey {
    fn from(k: store::ApiKey) -> Self {
        let store::ApiKey {
            id,
            user,
            name,
            created_at,
            revoked_at,
            session,
        } = k;
        ApiKey {
            id,
            user,
            name,
            created_at,
            revoked_at,
            session,
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done.
    Success,
    /// Refused by the policies.
    Denied,
    /// Attempted and failed.
    Failed,
}

impl From<store::Outcome> for AuditOutcome {
    fn from(o: store::Outcome) -> Self {
        match o {
            store::Outcome::Success => AuditOutcome::Success,
            store::Outcome::Denied => AuditOutcome::Denied,
            store::Outcome::Failed => AuditOutcome::Failed,
        }
    }
}

/// A row of the audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Increasing id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who.
    pub actor: Option<String>,
    /// Company context.
    pub company: Option<String>,
    /// What, e.g. `user.create`.
    pub action: String,
    /// On what, e.g. `user:alice`.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Details.
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
    /// The change version of the write it records (`null` for appended entries).
    pub version: Option<i64>,
}

impl From<store::AuditEntry> for AuditEntry {
    fn from(e: store::AuditEntry) -> Self {
        let store::AuditEntry {
            id,
            at,
            actor,
            company,
            action,
            target,
            outcome,
            details,
            version,
        } = e;
        AuditEntry {
            id,
            at,
            actor,
            company,
            action,
            target,
            outcome: outcome.into(),
            details,
            version,
        }
    }
}

/// Converts each record of a list.
pub fn all<S, T: From<S>>(list: Vec<S>) -> Vec<T> {
    list.into_iter().map(T::from).collect()
}
