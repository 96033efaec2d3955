//! The store's vocabulary (DESIGN.md): companies, users, permission groups, visitor grants,
//! invitations, API keys, audit entries and changes, with the inputs that create and change them.
//!
//! Scopes (locations × actors, accessible customer profiles or "all customers") live in the user's
//! `attrs` JSON, in Cedar JSON form, because their shape is the policy schema's: the engine checks
//! them at decision time and the store passes them through to [`crate::UserFacts`] untouched.
//! Visitor grants keep their locations and actors as entity references in their own table.
//!
//! Visitor grant lifecycle (decided by an owner of the company whose data is shared):
//! ```text
//! requested ──approve──> approved ──revoke──> revoked
//!     │                     └──(expires_at passes)──> inactive, still `approved`
//!     ├──refuse──> refused
//!     └──revoke──> revoked   (request withdrawn)
//! ```
//! Invitation lifecycle (single use; the token is stored hashed):
//! ```text
//! pending ──accept (token, before expires_at)──> accepted (a user is created)
//!    ├──revoke──> revoked
//!    └──(expires_at passes)──> expired (reported, never accepted)
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::secret::Secret;

/// JSON attributes of a company, user or invitation.
pub type Attrs = Map<String, Value>;

/// A tenant: a customer, forwarder, carrier, or an enterprise's sub-company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// Its id, also its Cedar entity id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Account type (customer, carrier, forwarder, consolidated...).
    pub account_type: String,
    /// The parent company of an enterprise account.
    pub parent: Option<String>,
    /// Most active users the company may have; `None` is unlimited.
    pub user_limit: Option<u32>,
    /// Further attributes the policy folder declares, in Cedar JSON.
    pub attrs: Attrs,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What it takes to create a company.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCompany {
    /// Its id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Account type.
    pub account_type: String,
    /// Parent company (enterprise accounts).
    #[serde(default)]
    pub parent: Option<String>,
    /// User limit; `None` is unlimited.
    #[serde(default)]
    pub user_limit: Option<u32>,
    /// Further attributes.
    #[serde(default)]
    pub attrs: Attrs,
}

/// A change to a company; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyPatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New account type.
    #[serde(default)]
    pub account_type: Option<String>,
    /// New user limit (`Some(None)` removes it).
    #[serde(default, deserialize_with = "present")]
    pub user_limit: Option<Option<u32>>,
    /// New attributes (replacing the old ones).
    #[serde(default)]
    pub attrs: Option<Attrs>,
}

/// Which companies to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyQuery {
    /// Only the children of this company.
    #[serde(default)]
    pub parent: Option<String>,
    /// Cursor: ids after this one.
    #[serde(default)]
    pub after: Option<String>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A company a user may switch to besides its own, with its role there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessibleCompany {
    /// The company.
    pub company: String,
    /// The user's role there; `None` means the same role as in its own company.
    #[serde(default)]
    pub role: Option<String>,
}

/// A portal user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Further attributes (scopes, customer access...), in Cedar JSON.
    pub attrs: Attrs,
    /// Other companies it may act in (enterprise accounts, forwarders' customers).
    pub accessible: Vec<AccessibleCompany>,
    /// Whether a password hash is set.
    pub has_password: bool,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What it takes to create a user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Its id; a random UUID when `None`.
    #[serde(default)]
    pub id: Option<String>,
    /// Its company.
    pub company: String,
    /// Login name.
    pub login: String,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Role in its company.
    pub role: String,
    /// Flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Add-on features.
    #[serde(default)]
    pub addons: Vec<String>,
    /// Permission group; the default group when `None`.
    #[serde(default)]
    pub group: Option<String>,
    /// Further attributes.
    #[serde(default)]
    pub attrs: Attrs,
}

/// A change to a user; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New login.
    #[serde(default)]
    pub login: Option<String>,
    /// New email (`Some(None)` clears it).
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New role.
    #[serde(default)]
    pub role: Option<String>,
    /// New flags (replacing).
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    /// New add-ons (replacing).
    #[serde(default)]
    pub addons: Option<Vec<String>>,
    /// New group (`Some(None)` clears it).
    #[serde(default, deserialize_with = "present")]
    pub group: Option<Option<String>>,
    /// New attributes (replacing).
    #[serde(default)]
    pub attrs: Option<Attrs>,
}

/// Which users to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserQuery {
    /// Only users of this company.
    #[serde(default)]
    pub company: Option<String>,
    /// Include deactivated users.
    #[serde(default)]
    pub include_inactive: bool,
    /// Cursor: ids after this one.
    #[serde(default)]
    pub after: Option<String>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The facts the engine needs about a user acting in a company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The user's id.
    pub user_id: String,
    /// The user, as the engine sees it (its `company` is the company it acts in).
    pub user: crate::UserFacts,
    /// The company it acts in.
    pub company: crate::CompanyFacts,
}

/// A deleted user and who receives its records (the application moves them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deletion {
    /// The user as it was.
    pub user: User,
    /// The user of the same company who receives its records; `None` means they are deleted.
    pub transfer_to: Option<String>,
}

/// A permission group: a named set of features, one of which is the default for new users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionGroup {
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
    pub created_at: OffsetDateTime,
    /// Whether `features` define the group entirely. A group created without features (by
    /// the operator's command line, before a server has read the folder) or written before
    /// stored features defined groups holds the policy folder's features for a group of its
    /// name besides its own, until its features are set or a server defines it from the
    /// folder at start ([`crate::UserStore::define_group`]).
    #[serde(skip)]
    pub defined: bool,
}

/// What it takes to create a permission group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Features.
    #[serde(default)]
    pub features: Vec<String>,
    /// Make it the default (the previous default stops being one).
    #[serde(default)]
    pub is_default: bool,
}

/// A change to a permission group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New features (replacing).
    #[serde(default)]
    pub features: Option<Vec<String>>,
}

/// A reference to a Cedar entity (a location, an actor...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntityRef {
    /// Entity type, e.g. `Portal::Location`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Entity id.
    pub id: String,
}

/// Where a visitor grant is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl GrantStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Requested => "requested",
            GrantStatus::Approved => "approved",
            GrantStatus::Refused => "refused",
            GrantStatus::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "approved" => GrantStatus::Approved,
            "refused" => GrantStatus::Refused,
            "revoked" => GrantStatus::Revoked,
            _ => GrantStatus::Requested,
        }
    }
}

/// Read access for a user of one company to data of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitorGrant {
    /// Its id.
    pub id: String,
    /// The visiting user.
    pub user: String,
    /// The visiting user's company when it asked.
    pub from_company: String,
    /// The company whose data is shared.
    pub company: String,
    /// Locations the access is limited to (empty: not limited by location).
    pub locations: Vec<EntityRef>,
    /// Actors the access is limited to (empty: not limited by actor).
    pub actors: Vec<EntityRef>,
    /// Lifecycle state.
    pub status: GrantStatus,
    /// When it was requested.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Who approved or refused it.
    pub decided_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When it stops being active.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A request for a visitor grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The visiting user.
    pub user: String,
    /// The company whose data it asks for.
    pub company: String,
    /// Limit to these locations.
    #[serde(default)]
    pub locations: Vec<EntityRef>,
    /// Limit to these actors.
    #[serde(default)]
    pub actors: Vec<EntityRef>,
    /// Optional expiry.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Which grants to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantQuery {
    /// Grants of this visiting user.
    #[serde(default)]
    pub user: Option<String>,
    /// Grants on this company's data.
    #[serde(default)]
    pub company: Option<String>,
    /// In this state.
    #[serde(default)]
    pub status: Option<GrantStatus>,
}

/// Where an invitation is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// An invitation to join a company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub attrs: Attrs,
    /// Lifecycle state (as of the store's clock).
    pub status: InvitationStatus,
    /// Who invited.
    pub invited_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    /// The user it created.
    pub user: Option<String>,
}

/// What it takes to invite someone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// The company to join.
    pub company: String,
    /// Who is invited.
    pub email: String,
    /// Pre-assigned role.
    pub role: String,
    /// Pre-assigned flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Pre-assigned add-ons.
    #[serde(default)]
    pub addons: Vec<String>,
    /// Pre-assigned group (the default group when `None`).
    #[serde(default)]
    pub group: Option<String>,
    /// Pre-assigned attributes.
    #[serde(default)]
    pub attrs: Attrs,
    /// Lifetime; the store's default when `None`.
    #[serde(skip)]
    pub ttl: Option<Duration>,
}

/// An invitation just created, with its token (shown once).
#[derive(Debug, Clone)]
pub struct IssuedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The plaintext token for the invitation link.
    pub token: Secret,
}

/// The details the invited person fills in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// User id; a random UUID when `None`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Login; the invited email when `None`.
    #[serde(default)]
    pub login: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// An API key bound to a user (its secret is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id (also the key's public prefix).
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// A label.
    pub name: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The session it was created with, if a signed-in user made it: a password reset
    /// revokes it with the session.
    pub session: Option<String>,
}

/// An API key just created, with the key itself (shown once).
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The key's record.
    pub key: ApiKey,
    /// The plaintext key, `pck_<id>_<secret>`.
    pub secret: Secret,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused by the policies.
    Denied,
    /// Attempted and failed.
    Failed,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "denied" => Outcome::Denied,
            "failed" => Outcome::Failed,
            _ => Outcome::Success,
        }
    }
}

/// Who does a write and in which company context: every mutating method takes one and writes
/// the audit row (action, target and outcome filled in by the method) in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// The acting user (`None`: the system, e.g. the CLI bootstrap).
    pub actor: Option<String>,
    /// The company context; the affected record's company when `None`.
    pub company: Option<String>,
    /// Free-form details (request id, reason...), merged into the row's details.
    pub details: Attrs,
}

impl Audit {
    /// An action by a user.
    pub fn by(actor: impl Into<String>) -> Self {
        Audit {
            actor: Some(actor.into()),
            ..Audit::default()
        }
    }

    /// An action by the system.
    pub fn system() -> Self {
        Audit::default()
    }

    /// In a company context.
    pub fn in_company(mut self, company: impl Into<String>) -> Self {
        self.company = Some(company.into());
        self
    }

    /// With a detail.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }
}

/// An audit entry to append outside a store write (logins, denied attempts...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// Who.
    pub actor: Option<String>,
    /// Company context.
    pub company: Option<String>,
    /// What, e.g. `auth.login`.
    pub action: String,
    /// On what, e.g. `user:alice`.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Details.
    pub details: Attrs,
}

/// A row of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
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
    pub outcome: Outcome,
    /// Details.
    pub details: Attrs,
    /// The change version of the write it records (`None` for appended entries).
    pub version: Option<i64>,
}

/// Filters for the audit trail; newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Entries by or about this user (actor, or target `user:<id>`).
    #[serde(default)]
    pub user: Option<String>,
    /// Entries in this company context.
    #[serde(default)]
    pub company: Option<String>,
    /// Entries of this action.
    #[serde(default)]
    pub action: Option<String>,
    /// Entries made for this customer profile (the `customer` of their details: audited
    /// decisions of a forwarder's session, say).
    #[serde(default)]
    pub customer: Option<String>,
    /// At or after.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Before.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Cursor: entries with smaller ids.
    #[serde(default)]
    pub before: Option<i64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T, C = String> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass this as the cursor to get the next page; `None` on the last page.
    pub next: Option<C>,
}

/// One entity changed by a write, for cache invalidation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The change version of the write.
    pub version: i64,
    /// `company`, `user`, `group`, `grant`, `invitation` or `api_key`.
    pub kind: String,
    /// The entity's id (`*` when a write concerns every entity of its kind, e.g. the default group).
    pub id: String,
}

/// How much of the change feed [`crate::UserStore::prune_changes`] keeps: a row goes only
/// when it is both more than `keep_versions` versions behind the current version and older
/// than `max_age`, so an instance that polls (every 250 ms) or listens never misses a row it
/// still needs; one whose cursor fell behind the horizon reloads everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRetention {
    /// Versions always kept behind the current one.
    pub keep_versions: i64,
    /// Rows younger than this are always kept.
    pub max_age: std::time::Duration,
}

/// Versions the change feed keeps by default.
pub const DEFAULT_KEEP_VERSIONS: i64 = 100_000;
/// Age under which change rows are kept by default.
pub const DEFAULT_CHANGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Default for ChangeRetention {
    fn default() -> Self {
        ChangeRetention {
            keep_versions: DEFAULT_KEEP_VERSIONS,
            max_age: DEFAULT_CHANGE_MAX_AGE,
        }
    }
}

/// The audit action names the store writes.
pub mod actions {
    /// A company was created.
    pub const COMPANY_CREATE: &str = "company.create";
    /// A company was changed.
    pub const COMPANY_UPDATE: &str = "company.update";
    /// A user was created.
    pub const USER_CREATE: &str = "user.create";
    /// A user was changed.
    pub const USER_UPDATE: &str = "user.update";
    /// A user was deactivated.
    pub const USER_DEACTIVATE: &str = "user.deactivate";
    /// A user was reactivated.
    pub const USER_REACTIVATE: &str = "user.reactivate";
    /// A user was deleted.
    pub const USER_DELETE: &str = "user.delete";
    /// A user was moved to another company.
    pub const USER_MOVE: &str = "user.move";
    /// A user's accessible companies were set.
    pub const USER_SET_ACCESSIBLE: &str = "user.set_accessible_companies";
    /// A user's password was set or cleared.
    pub const USER_SET_PASSWORD: &str = "user.set_password";
    /// A permission group was created.
    pub const GROUP_CREATE: &str = "group.create";
    /// A permission group was changed.
    pub const GROUP_UPDATE: &str = "group.update";
    /// The default permission group was set.
    pub const GROUP_SET_DEFAULT: &str = "group.set_default";
    /// A permission group was deleted.
    pub const GROUP_DELETE: &str = "group.delete";
    /// A visitor grant was requested.
    pub const GRANT_REQUEST: &str = "grant.request";
    /// A visitor grant was approved.
    pub const GRANT_APPROVE: &str = "grant.approve";
    /// A visitor grant was refused.
    pub const GRANT_REFUSE: &str = "grant.refuse";
    /// A visitor grant was revoked.
    pub const GRANT_REVOKE: &str = "grant.revoke";
    /// An invitation was created.
    pub const INVITATION_CREATE: &str = "invitation.create";
    /// An invitation was accepted.
    pub const INVITATION_ACCEPT: &str = "invitation.accept";
    /// An invitation was revoked.
    pub const INVITATION_REVOKE: &str = "invitation.revoke";
    /// An API key was created.
    pub const API_KEY_CREATE: &str = "api_key.create";
    /// An API key was revoked.
    pub const API_KEY_REVOKE: &str = "api_key.revoke";
}

/// A field that may be absent (`None`: no change), `null` (`Some(None)`: cleared) or a value:
/// serde alone reads `null` as absent.
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
