//! `RawRoles`: the `roles.toml` format exactly as written, with spans, before any check.
//!
//! serde reads the file into these types; `schemars` derives the JSON Schema written to
//! `schema/roles.schema.json` from the same types, so editors can complete and check the file.
//! Nothing here is validated beyond its TOML shape: `model.rs` turns it into a `RoleModel`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::spanned::Spanned;

/// A name read from the file, with its place.
pub type Name = Spanned<String>;

/// The role-definition file of a policy folder (`roles.toml`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portcullis role definitions (roles.toml)")]
pub struct RawRoles {
    /// The Cedar names the compiled policies use. Defaults fit the shipped schema.
    #[serde(default)]
    pub cedar: RawCedar,
    /// Settings the user store and the server read from the policy folder.
    #[serde(default)]
    pub settings: RawSettings,
    /// Sign-in rules: passwords, lockout, reset links, two-factor, token links.
    #[serde(default)]
    pub sign_in: RawSignIn,
    /// Which Cedar actions create or change users, for `manages` and flag rules.
    #[serde(default)]
    pub management: RawManagement,
    /// Kinds of company (customer, carrier, forwarder...) and the roles each may hold.
    #[serde(default)]
    pub account_types: BTreeMap<Name, RawAccountType>,
    /// Ranked roles; a user holds one role per company.
    #[serde(default)]
    pub roles: BTreeMap<Name, RawRole>,
    /// Named rights of the feature-rights matrix.
    #[serde(default)]
    pub features: BTreeMap<Name, RawFeature>,
    /// Per-user flags such as `isolated` and the rules they bring.
    #[serde(default)]
    pub flags: BTreeMap<Name, RawFlag>,
    /// Named feature sets assigned to users by the user store; one may be the default.
    #[serde(default)]
    pub permission_groups: BTreeMap<Name, RawPermissionGroup>,
    /// The attributes the user store keeps for users and companies beyond the core facts.
    #[serde(default)]
    pub attributes: RawAttributes,
    /// Decisions the server writes to the audit trail.
    #[serde(default)]
    pub audit: RawAudit,
}

/// `[audit]`: which decisions are kept in the user store's audit trail.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// Actions whose decisions (`POST /v1/authorize`, its batch, AuthZEN evaluations) are
    /// written to the audit trail, allowed or denied, with the user, the company, the active
    /// customer of a session and the deciding policies: `["declaration.create",
    /// "document.upload"]`. A decision is answered only once its row is written.
    pub decisions: Vec<Name>,
}

/// `[attributes.user.<name>]` and `[attributes.company.<name>]`: the attributes the schema
/// declares for users and companies beyond the core facts (company, role, active, flags,
/// add-ons, group; a company's account type), which the user store keeps as they are written.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAttributes {
    /// Stored user attributes, by the schema's attribute name.
    pub user: BTreeMap<Name, RawAttribute>,
    /// Stored company attributes, by the schema's attribute name.
    pub company: BTreeMap<Name, RawAttribute>,
}

/// Core facts of the user store an attribute can be derived from (`from = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Derived {
    /// A user's company and the further companies it may access (a set of companies).
    AccessibleCompanies,
    /// Whether a user's login is an email address (a boolean).
    LoginIsEmail,
    /// Whether a company has at least one active user, token-link sessions aside (a boolean).
    HasUsers,
}

impl Derived {
    /// Its name in `roles.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Derived::AccessibleCompanies => "accessible_companies",
            Derived::LoginIsEmail => "login_is_email",
            Derived::HasUsers => "has_users",
        }
    }

    /// The kind of entity the fact belongs to: `user` or `company`.
    pub fn kind(self) -> &'static str {
        match self {
            Derived::AccessibleCompanies | Derived::LoginIsEmail => "user",
            Derived::HasUsers => "company",
        }
    }
}

/// One stored attribute: what a new user or company holds when the request gives nothing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAttribute {
    /// The value a new entity gets when the request gives none, in Cedar JSON (`false`, `[]`,
    /// `{ __entity = { type = "Portal::Company", id = "x" } }`); it must fit the schema's type.
    #[serde(default)]
    pub default: Option<Spanned<serde_json::Value>>,
    /// A creation must give the attribute: no default fits (an entity reference, say).
    #[serde(default)]
    pub required: bool,
    /// The attribute is not written by anyone: the user store derives it from a core fact
    /// it keeps, on every decision.
    #[serde(default)]
    pub from: Option<Spanned<Derived>>,
    /// The only values a write may give, in Cedar JSON (`["en", "nl", "de", "pl"]` for a
    /// language); any other is refused with the list. Empty: any value of the schema's type.
    #[serde(default)]
    pub values: Vec<Spanned<serde_json::Value>>,
    /// What the attribute means, for the docs and `portcullis check`.
    #[serde(default)]
    pub description: Option<String>,
}

/// Cedar names used by the compiled policies.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawCedar {
    /// Namespace of the schema's entity types and actions.
    pub namespace: String,
    /// Entity type of users (the principal).
    pub user_type: String,
    /// Entity type of roles; users are members of their role.
    pub role_type: String,
    /// Entity type of companies (tenants); users and records are members of their company.
    pub company_type: String,
}

impl Default for RawCedar {
    fn default() -> Self {
        Self {
            namespace: "Portal".to_owned(),
            user_type: "User".to_owned(),
            role_type: "Role".to_owned(),
            company_type: "Company".to_owned(),
        }
    }
}

/// Settings for the user store and sign-in, kept with the policies they go with.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    /// Days an invitation stays valid (the customs portal: 7, the load planner: 14).
    pub invitation_expiry_days: u32,
    /// Most users a company created over the management API may have when the call gives no
    /// limit (0 for no limit).
    pub default_user_limit: u32,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            invitation_expiry_days: 7,
            default_user_limit: 0,
        }
    }
}

/// Which passwords a folder accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PasswordRule {
    /// Current NIST guidance (SP 800-63B): a minimum length and no common password; no
    /// composition rules.
    #[default]
    Nist,
    /// The customs portal's rule: the minimum length and at least one uppercase letter, one lowercase
    /// letter, one digit and one special character (and no common password).
    Composition,
}

/// Sign-in rules, kept with the policies they go with (`[sign_in]`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawSignIn {
    /// Which passwords are accepted.
    pub password_rule: PasswordRule,
    /// Fewest characters in a password (at least 8).
    pub min_password_length: Spanned<u32>,
    /// Failed sign-ins in a row that lock the account (the customs portal: 5).
    pub lockout_attempts: Spanned<u32>,
    /// Minutes an account stays locked (the customs portal: 30).
    pub lockout_minutes: Spanned<u32>,
    /// Minutes a password-reset link stays valid (the customs portal: 60); an e-mail change link too.
    pub reset_link_minutes: Spanned<u32>,
    /// A changed e-mail address takes effect only once the link sent to it is used (the customs
    /// portal: "Changing a user's email requires them to verify the new email address"); until
    /// then the old one stays in force.
    pub verify_email_changes: bool,
    /// Roles whose users must sign in with a second factor (the customs portal: "Require 2FA for admin
    /// accounts").
    pub require_mfa_roles: Vec<Name>,
    /// The role of a customer's token-link session (the service portal), if the folder has token links.
    pub token_link_role: Option<Name>,
    /// A stored boolean user attribute that, when true, requires a second factor of that user
    /// (the service portal: "Require MFA For This User"), besides `require_mfa_roles`.
    pub require_mfa_attribute: Option<Name>,
    /// The context attribute (a `Bool`) that tells a decision whether the signed-in session
    /// passed a second factor; the server fills it wherever an action's context declares it.
    pub mfa_context: Option<Name>,
    /// The optional user attribute (an entity) that holds the customer profile a session acts
    /// for after `POST /v1/auth/switch`; a folder without it has no switching.
    pub switch_attribute: Option<Name>,
    /// Or the context attribute (an entity) that carries it: the server sets it on every
    /// decision of the session whose action's context declares it, over the caller's value.
    pub switch_context: Option<Name>,
}

impl Default for RawSignIn {
    fn default() -> Self {
        Self {
            password_rule: PasswordRule::Nist,
            min_password_length: Spanned::detached(8),
            lockout_attempts: Spanned::detached(5),
            lockout_minutes: Spanned::detached(30),
            reset_link_minutes: Spanned::detached(60),
            verify_email_changes: false,
            require_mfa_roles: Vec::new(),
            token_link_role: None,
            require_mfa_attribute: None,
            mfa_context: None,
            switch_attribute: None,
            switch_context: None,
        }
    }
}

/// The Cedar actions of user management.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawManagement {
    /// Actions that give a user a role or flags (create, invite, change role, set flags).
    /// Their resource is the target user; their context carries the resulting `role` and `flags`.
    pub assign_actions: Vec<Name>,
    /// Actions on an existing user (edit, deactivate, delete...): allowed on users whose role
    /// the caller's role `manages`.
    pub manage_actions: Vec<Name>,
    /// Which of the folder's actions decides each operation of the management API, e.g.
    /// `"user.move" = "user.move"`, `"audit.export" = "access_log.download"`. An operation not
    /// listed is refused. `user.set_attr.<name>` decides changing one stored attribute
    /// (`user.set_attr` every attribute without its own entry).
    pub operations: BTreeMap<Name, Name>,
    /// Context values the server derives from the entities it holds, never from the caller:
    /// e.g. `actor_locations = { parents_of = "actors", type = "Location" }` puts in the context
    /// the `Location` parents of the entities of the user's `actors`.
    pub derived: BTreeMap<Name, RawDerived>,
    /// The context attribute (a `Bool`) of a company read that tells whether the caller may
    /// switch to that company (one of its accessible companies), e.g. `"accessible"`.
    pub switchable_context: Option<Name>,
}

/// A context value derived from held entities: the parents of one type of the entities an
/// attribute of the user (as it will be) names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDerived {
    /// The user attribute (a set of entities, or one entity) whose entities are looked up.
    pub parents_of: Name,
    /// The entity type of the parents kept (bare, in the folder's namespace).
    #[serde(rename = "type")]
    pub ty: Name,
}

/// A kind of company.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccountType {
    /// Human title, for the matrix.
    #[serde(default)]
    pub title: Option<String>,
    /// The roles users of this account type may hold.
    pub roles: Vec<Name>,
}

/// A ranked role.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    /// Human title.
    #[serde(default)]
    pub title: Option<String>,
    /// Rank: a higher rank is more access. Ranks are unique.
    pub rank: Spanned<i64>,
    /// Roles a user with this role may give (create, invite, promote to) and manage.
    #[serde(default)]
    pub manages: Vec<Name>,
    /// Whether a user with this role may change its own role (the load planner: an Administrator may not).
    #[serde(default = "yes")]
    pub change_own_role: bool,
    /// A description for the matrix page.
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// A named right of the matrix.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFeature {
    /// Human title, as in the portal's rights table.
    pub title: String,
    /// The Cedar actions this feature covers (names of the schema's actions).
    pub actions: Vec<Name>,
    /// Roles that hold this feature on every record of their company.
    #[serde(default)]
    pub roles: Vec<Name>,
    /// Roles that hold this feature only on records they own (`resource.owner == principal`).
    #[serde(default)]
    pub own: Vec<Name>,
    /// Roles whose users may be granted this feature one by one, as an add-on.
    #[serde(default)]
    pub addon_roles: Vec<Name>,
    /// The account types whose users may hold this feature at all (every type when empty).
    #[serde(default)]
    pub account_types: Vec<Name>,
    /// An extra Cedar condition for every grant of this feature, e.g. a subscription check;
    /// the matrix marks such cells conditional.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// Grants cross company boundaries: skip the rule that the resource is in the user's company.
    #[serde(default)]
    pub any_company: bool,
}

/// A per-user flag.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlag {
    /// Human title.
    #[serde(default)]
    pub title: Option<String>,
    /// A flagged user acts only on records it owns (records with an `owner` attribute).
    #[serde(default)]
    pub owned_only: bool,
    /// A flagged user cannot hold a role ranked above this.
    #[serde(default)]
    pub max_rank: Option<Spanned<i64>>,
}

/// A permission group: a named set of features.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPermissionGroup {
    /// Human title.
    #[serde(default)]
    pub title: Option<String>,
    /// The features members hold.
    #[serde(default)]
    pub features: Vec<Name>,
    /// The group new users get.
    #[serde(default)]
    pub default: bool,
    /// The group used for access without a user of one's own (the service portal's "Non-Portal Users").
    #[serde(default)]
    pub non_portal: bool,
}
