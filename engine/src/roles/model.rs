//! `RoleModel`: role definitions after every check that does not need the Cedar schema.
//!
//! Input: the text of `roles.toml`. Output: ranked roles, account types, features, flags and
//! permission groups whose cross-references all resolve, or every problem found, each at the
//! TOML span it comes from. `compile.rs` turns a `RoleModel` into Cedar; the matrix and the
//! reference evaluator of the property tests read it directly.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;

use crate::diag::{Diagnostic, Diagnostics, LineIndex, Location};
use crate::roles::raw::{Name, PasswordRule, RawCedar, RawRoles, RawSettings, RawSignIn};
use crate::spanned::Spanned;

/// The operations of the management API a folder may map to its own actions
/// (`[management.operations]`); `user.set_attr.<name>` keys are also accepted.
pub const OPERATIONS: &[&str] = &[
    "user.create",
    "user.invite",
    "user.revoke_invitation",
    "user.read",
    "company.read",
    "group.read",
    "grant.read",
    "user.update",
    "user.set_role",
    "user.set_flags",
    "user.set_addons",
    "user.set_group",
    "user.set_attr",
    "user.set_companies",
    "user.move",
    "user.remove",
    "user.deactivate",
    "user.reactivate",
    "user.delete",
    "user.unlock",
    "user.api_keys",
    "user.sessions",
    "audit.export",
    "link.create",
    "company.create",
    "company.update",
    "group.manage",
    "grant.request",
    "grant.approve",
    "grant.refuse",
    "grant.revoke",
    "customer.switch",
];

/// A context value the server derives from the entities it holds (`[management.derived]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The context attribute it fills.
    pub name: String,
    /// The user attribute whose entities are looked up.
    pub parents_of: String,
    /// The entity type of the parents kept.
    pub ty: String,
}

impl RoleModel {
    /// The folder's action for `operation`: its own entry, else (for `user.set_attr.<name>`)
    /// the `user.set_attr` entry; `None` when the folder does not map it.
    pub fn operation(&self, operation: &str) -> Option<&str> {
        if let Some(a) = self.operations.get(operation) {
            return Some(&a.value);
        }
        operation
            .strip_prefix("user.set_attr.")
            .and_then(|_| self.operations.get("user.set_attr"))
            .map(|a| a.value.as_str())
    }
}

/// A checked role model.
#[derive(Debug, Clone)]
pub struct RoleModel {
    /// The file it was read from, relative to the folder.
    pub file: String,
    /// Cedar naming conventions.
    pub cedar: RawCedar,
    /// Settings for the store.
    pub settings: RawSettings,
    /// Sign-in rules.
    pub sign_in: SignIn,
    /// Actions that give a user a role or flags.
    pub assign_actions: Vec<Name>,
    /// Actions on existing users.
    pub manage_actions: Vec<Name>,
    /// Actions whose decisions the server writes to the audit trail (`[audit] decisions`).
    pub audited: Vec<Name>,
    /// The folder's action of each management operation (`[management.operations]`).
    pub operations: BTreeMap<String, Name>,
    /// Context values derived from held entities (`[management.derived]`).
    pub derived: Vec<Derived>,
    /// The context attribute of a company read that says whether the caller may switch to it.
    pub switchable_context: Option<String>,
    /// Account types, in file order.
    pub account_types: Vec<AccountType>,
    /// Roles, highest rank first.
    pub roles: Vec<Role>,
    /// Features, in file order.
    pub features: Vec<Feature>,
    /// Flags, in file order.
    pub flags: Vec<Flag>,
    /// Permission groups, in file order.
    pub groups: Vec<PermissionGroup>,
    /// Stored user attributes (`[attributes.user.*]`), in file order.
    pub user_attributes: Vec<StoredAttribute>,
    /// Stored company attributes (`[attributes.company.*]`), in file order.
    pub company_attributes: Vec<StoredAttribute>,
}

/// A stored attribute (`[attributes.user.<name>]`, `[attributes.company.<name>]`).
#[derive(Debug, Clone)]
pub struct StoredAttribute {
    /// The schema's attribute name.
    pub name: String,
    /// The value a new entity gets when the request gives none (Cedar JSON).
    pub default: Option<serde_json::Value>,
    /// Where the default is written, for diagnostics about its type.
    pub default_location: Option<Location>,
    /// A creation must give it.
    pub required: bool,
    /// Derived by the store from a core fact, never written.
    pub from: Option<crate::roles::raw::Derived>,
    /// The only values a write may give, with where each is written (empty: any value).
    pub values: Vec<(serde_json::Value, Location)>,
    /// What it means.
    pub description: Option<String>,
    /// Where it is declared.
    pub location: Location,
}

/// Checked sign-in rules (`[sign_in]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Which passwords are accepted.
    pub password_rule: PasswordRule,
    /// Fewest characters in a password.
    pub min_password_length: u32,
    /// Failed sign-ins in a row that lock the account.
    pub lockout_attempts: u32,
    /// Minutes an account stays locked.
    pub lockout_minutes: u32,
    /// Minutes a password-reset link (and an e-mail change link) stays valid.
    pub reset_link_minutes: u32,
    /// A changed e-mail address waits for the link sent to it.
    pub verify_email_changes: bool,
    /// Roles whose users must use a second factor.
    pub require_mfa_roles: Vec<String>,
    /// The role of token-link sessions, if any.
    pub token_link_role: Option<String>,
    /// The stored user attribute that requires a second factor of its user, if any.
    pub require_mfa_attribute: Option<String>,
    /// The context attribute that carries whether the session passed a second factor, if any.
    pub mfa_context: Option<String>,
    /// The user attribute that holds a session's active customer profile, if any.
    pub switch_attribute: Option<String>,
    /// The context attribute that carries a session's active customer profile, if any.
    pub switch_context: Option<String>,
}

impl Default for SignIn {
    fn default() -> Self {
        let raw = crate::roles::raw::RawSignIn::default();
        SignIn {
            password_rule: raw.password_rule,
            min_password_length: raw.min_password_length.value,
            lockout_attempts: raw.lockout_attempts.value,
            lockout_minutes: raw.lockout_minutes.value,
            reset_link_minutes: raw.reset_link_minutes.value,
            verify_email_changes: raw.verify_email_changes,
            require_mfa_roles: Vec::new(),
            token_link_role: None,
            require_mfa_attribute: None,
            mfa_context: None,
            switch_attribute: None,
            switch_context: None,
        }
    }
}

/// A kind of company and the roles its users may hold.
#[derive(Debug, Clone)]
pub struct AccountType {
    /// Name, as used in `Company.account_type`.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Roles allowed, highest rank first.
    pub roles: Vec<String>,
    /// Where it is declared.
    pub location: Location,
}

/// A ranked role.
#[derive(Debug, Clone)]
pub struct Role {
    /// Name, the Cedar entity id of the role.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Rank; higher is more access.
    pub rank: i64,
    /// Roles it may give and manage.
    pub manages: Vec<String>,
    /// Whether it may change its own role.
    pub change_own_role: bool,
    /// Description for the matrix page.
    pub description: Option<String>,
    /// Where it is declared.
    pub location: Location,
}

/// A feature of the matrix.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Name, as used in add-ons and groups.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Cedar action ids (without type), with their spans.
    pub actions: Vec<Name>,
    /// Roles holding it on every record of their company.
    pub roles: Vec<String>,
    /// Roles holding it on records they own.
    pub own: Vec<String>,
    /// Roles that may receive it as an add-on.
    pub addon_roles: Vec<String>,
    /// Account types whose users may hold it (all when empty).
    pub account_types: Vec<String>,
    /// Extra Cedar condition.
    pub when: Option<Spanned<String>>,
    /// Skip the tenancy rule.
    pub any_company: bool,
    /// Where it is declared.
    pub location: Location,
}

impl Feature {
    /// Whether users of an account type may hold this feature at all.
    pub fn applies_to(&self, account_type: &str) -> bool {
        self.account_types.is_empty() || self.account_types.iter().any(|t| t == account_type)
    }
}

/// A per-user flag.
#[derive(Debug, Clone)]
pub struct Flag {
    /// Name, as stored in `User.flags`.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Acts only on owned records.
    pub owned_only: bool,
    /// Highest rank a flagged user may hold.
    pub max_rank: Option<i64>,
    /// Where it is declared.
    pub location: Location,
}

/// A permission group.
#[derive(Debug, Clone)]
pub struct PermissionGroup {
    /// Name.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Features held.
    pub features: Vec<String>,
    /// Default group for new users.
    pub default: bool,
    /// Group for access without a user (token links).
    pub non_portal: bool,
}

/// How a role holds a feature: one cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Not held.
    No,
    /// Held only as an add-on granted to the user.
    Addon,
    /// Held on records the user owns.
    Own,
    /// Held on every record of the company.
    Yes,
}

impl RoleModel {
    /// Parses and checks `roles.toml`; on success also returns the warnings.
    pub fn parse(file: &str, text: &str) -> Result<(Self, Diagnostics), Diagnostics> {
        let raw: RawRoles = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let mut d = Diagnostic::error("roles::syntax", toml_message(&e));
                if let Some(span) = e.span() {
                    d = d.at_span(file, text, span);
                }
                d = crate::diag::suggest_field(d, e.message());
                return Err(Diagnostics(vec![d]));
            }
        };
        check(file, text, raw)
    }

    /// The role with this name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The account type with this name.
    pub fn account_type(&self, name: &str) -> Option<&AccountType> {
        self.account_types.iter().find(|a| a.name == name)
    }

    /// The feature with this name.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// How `role` holds `feature` in companies of `account_type` (`None`: any type).
    pub fn cell_for(&self, account_type: Option<&str>, role: &str, feature: &Feature) -> Cell {
        match account_type {
            Some(t) if !feature.applies_to(t) => Cell::No,
            _ => self.cell(role, feature),
        }
    }

    /// How `role` holds `feature`, whatever the account type.
    pub fn cell(&self, role: &str, feature: &Feature) -> Cell {
        if feature.roles.iter().any(|r| r == role) {
            Cell::Yes
        } else if feature.own.iter().any(|r| r == role) {
            Cell::Own
        } else if feature.addon_roles.iter().any(|r| r == role) {
            Cell::Addon
        } else {
            Cell::No
        }
    }

    /// Roles allowed for an account type; every role when the folder declares no account types.
    pub fn roles_of(&self, account_type: Option<&str>) -> Vec<&Role> {
        match account_type.and_then(|a| self.account_type(a)) {
            Some(at) => self.roles.iter().filter(|r| at.roles.contains(&r.name)).collect(),
            None => self.roles.iter().collect(),
        }
    }
}

/// Turns toml's message into one line in Cedar's style.
fn toml_message(e: &toml::de::Error) -> String {
    let m = e.message().trim().trim_end_matches('.');
    let mut chars = m.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "invalid TOML".to_owned(),
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' '))
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    lines: LineIndex,
    diags: Diagnostics,
}

impl Checker<'_> {
    fn loc(&self, span: Range<usize>) -> Location {
        self.lines.location(self.file, self.text, span)
    }

    fn error(&mut self, code: &str, message: String, span: Range<usize>) -> &mut Diagnostic {
        let d = Diagnostic::error(code, message).at(self.loc(span));
        self.diags.push(d);
        let last = self.diags.0.len() - 1;
        &mut self.diags.0[last]
    }

    fn warn(&mut self, code: &str, message: String, span: Range<usize>) {
        let d = Diagnostic::warning(code, message).at(self.loc(span));
        self.diags.push(d);
    }

    fn name(&mut self, kind: &str, name: &Name) {
        if !valid_name(&name.value) {
            self.error(
                "roles::invalid-name",
                format!(
                    "{kind} name `{}` may hold only letters, digits, `_`, `-`, `.`, `:` and spaces",
                    name.value
                ),
                name.span.clone(),
            );
        }
    }

    /// Resolves references to roles; unknown ones are reported with a suggestion.
    fn role_refs(&mut self, refs: &[Name], roles: &BTreeSet<String>, what: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for r in refs {
            if !roles.contains(&r.value) {
                let d = Diagnostic::error(
                    "roles::unknown-role",
                    format!("unknown role `{}` in {what}", r.value),
                )
                .at(self.loc(r.span.clone()))
                .suggest(&r.value, roles.iter().map(String::as_str));
                self.diags.push(d);
            } else if !seen.insert(r.value.clone()) {
                self.warn(
                    "roles::duplicate",
                    format!("role `{}` is listed twice in {what}", r.value),
                    r.span.clone(),
                );
            } else {
                out.push(r.value.clone());
            }
        }
        out
    }
}

fn check(file: &str, text: &str, raw: RawRoles) -> Result<(RoleModel, Diagnostics), Diagnostics> {
    let mut c = Checker {
        file,
        text,
        lines: LineIndex::new(text),
        diags: Diagnostics::default(),
    };

    // Roles first: everything else refers to them.
    let role_names: BTreeSet<String> = raw.roles.keys().map(|k| k.value.clone()).collect();
    let mut ranks: BTreeMap<i64, &Name> = BTreeMap::new();
    let mut roles = Vec::new();
    for (name, r) in by_position(&raw.roles) {
        c.name("role", name);
        if let Some(other) = ranks.insert(r.rank.value, name) {
            let message = format!(
                "role `{}` has rank {}, the same as role `{}`: ranks must be unique",
                name.value, r.rank.value, other.value
            );
            c.error("roles::duplicate-rank", message, r.rank.span.clone());
        }
        let what = format!("`manages` of role `{}`", name.value);
        let manages = c.role_refs(&r.manages, &role_names, &what);
        roles.push(Role {
            name: name.value.clone(),
            title: r.title.clone().unwrap_or_else(|| title_case(&name.value)),
            rank: r.rank.value,
            manages,
            change_own_role: r.change_own_role,
            description: r.description.clone(),
            location: c.loc(name.span.clone()),
        });
    }
    roles.sort_by_key(|r| std::cmp::Reverse(r.rank));
    let by_rank = |names: Vec<String>| -> Vec<String> {
        roles
            .iter()
            .filter(|r| names.contains(&r.name))
            .map(|r| r.name.clone())
            .collect()
    };

    let mut account_types = Vec::new();
    for (name, a) in by_position(&raw.account_types) {
        c.name("account type", name);
        let allowed = c.role_refs(&a.roles, &role_names, &format!("account type `{}`", name.value));
        account_types.push(AccountType {
            name: name.value.clone(),
            title: a.title.clone().unwrap_or_else(|| title_case(&name.value)),
            roles: by_rank(allowed),
            location: c.loc(name.span.clone()),
        });
    }
    if !account_types.is_empty() {
        for r in &roles {
            if !account_types.iter().any(|a| a.roles.contains(&r.name)) {
                let message = format!(
                    "role `{}` is allowed for no account type, so no user can hold it",
                    r.name
                );
                c.warn("roles::unused-role", message, r.location.span.clone());
            }
        }
    }

    let mut features = Vec::new();
    for (name, f) in by_position(&raw.features) {
        c.name("feature", name);
        let what = |field: &str| format!("`{field}` of feature `{}`", name.value);
        let full = c.role_refs(&f.roles, &role_names, &what("roles"));
        let own = c.role_refs(&f.own, &role_names, &what("own"));
        let addon_roles = c.role_refs(&f.addon_roles, &role_names, &what("addon_roles"));
        let mut types = Vec::new();
        for t in &f.account_types {
            if account_types.iter().any(|a: &AccountType| a.name == t.value) {
                types.push(t.value.clone());
            } else {
                let d = Diagnostic::error(
                    "roles::unknown-account-type",
                    format!("unknown account type `{}` in {}", t.value, what("account_types")),
                )
                .at(c.loc(t.span.clone()))
                .suggest(&t.value, account_types.iter().map(|a| a.name.as_str()));
                c.diags.push(d);
            }
        }
        for r in f.own.iter().chain(&f.addon_roles) {
            if full.contains(&r.value) {
                let message = format!(
                    "role `{}` already holds feature `{}` on every record; listing it again narrows nothing",
                    r.value, name.value
                );
                c.warn("roles::redundant", message, r.span.clone());
            }
        }
        if f.actions.is_empty() {
            c.error(
                "roles::no-actions",
                format!("feature `{}` covers no actions", name.value),
                name.span.clone(),
            )
            .help = Some("list the Cedar actions it covers: `actions = [\"shipment.create\"]`".to_owned());
        }
        features.push(Feature {
            name: name.value.clone(),
            title: f.title.clone(),
            actions: f.actions.clone(),
            roles: by_rank(full),
            own: by_rank(own),
            addon_roles: by_rank(addon_roles),
            account_types: types,
            when: f.when.clone(),
            any_company: f.any_company,
            location: c.loc(name.span.clone()),
        });
    }
    let feature_names: BTreeSet<String> = features.iter().map(|f| f.name.clone()).collect();

    let mut flags = Vec::new();
    for (name, f) in by_position(&raw.flags) {
        c.name("flag", name);
        if let Some(max) = &f.max_rank {
            if !roles.iter().any(|r| r.rank <= max.value) {
                let message = format!(
                    "no role has a rank of {} or less, so no user could hold flag `{}`",
                    max.value, name.value
                );
                c.warn("roles::max-rank", message, max.span.clone());
            }
        }
        flags.push(Flag {
            name: name.value.clone(),
            title: f.title.clone().unwrap_or_else(|| title_case(&name.value)),
            owned_only: f.owned_only,
            max_rank: f.max_rank.as_ref().map(|m| m.value),
            location: c.loc(name.span.clone()),
        });
    }

    let mut groups = Vec::new();
    let mut default_seen: Option<String> = None;
    for (name, g) in by_position(&raw.permission_groups) {
        c.name("permission group", name);
        let mut list = Vec::new();
        for f in &g.features {
            if feature_names.contains(&f.value) {
                list.push(f.value.clone());
            } else {
                let d = Diagnostic::error(
                    "roles::unknown-feature",
                    format!(
                        "unknown feature `{}` in permission group `{}`",
                        f.value, name.value
                    ),
                )
                .at(c.loc(f.span.clone()))
                .suggest(&f.value, feature_names.iter().map(String::as_str));
                c.diags.push(d);
            }
        }
        if g.default {
            if let Some(first) = &default_seen {
                let message = format!(
                    "permission groups `{first}` and `{}` are both the default",
                    name.value
                );
                c.error("roles::two-defaults", message, name.span.clone());
            }
            default_seen = Some(name.value.clone());
        }
        groups.push(PermissionGroup {
            name: name.value.clone(),
            title: g.title.clone().unwrap_or_else(|| title_case(&name.value)),
            features: list,
            default: g.default,
            non_portal: g.non_portal,
        });
    }

    for f in &features {
        let held = !f.roles.is_empty()
            || !f.own.is_empty()
            || !f.addon_roles.is_empty()
            || groups.iter().any(|g| g.features.contains(&f.name));
        if !held {
            let message = format!(
                "feature `{}` is held by no role, add-on or permission group",
                f.name
            );
            c.warn("roles::unheld-feature", message, f.location.span.clone());
        }
    }

    let sign_in = sign_in_rules(&mut c, &raw.sign_in, &role_names);
    let user_attributes = stored_attributes(&mut c, "user", &raw.attributes.user);
    let company_attributes = stored_attributes(&mut c, "company", &raw.attributes.company);
    if let Some(a) = &raw.sign_in.require_mfa_attribute {
        if !user_attributes.iter().any(|u| u.name == a.value) {
            c.error(
                "roles::unknown-attribute",
                format!(
                    "`sign_in.require_mfa_attribute` names `{}`, which `[attributes.user]` does not declare",
                    a.value
                ),
                a.span.clone(),
            );
        }
    }
    for op in raw.management.operations.keys() {
        let known = OPERATIONS.contains(&op.value.as_str())
            || op
                .value
                .strip_prefix("user.set_attr.")
                .is_some_and(|a| !a.is_empty());
        if !known {
            let d = Diagnostic::error(
                "roles::unknown-operation",
                format!("unknown operation `{}` in `management.operations`", op.value),
            )
            .at(c.loc(op.span.clone()))
            .suggest(&op.value, OPERATIONS.iter().copied());
            c.diags.push(d);
        }
    }

    if c.diags.has_errors() {
        return Err(c.diags);
    }
    let model = RoleModel {
        file: file.to_owned(),
        cedar: raw.cedar,
        settings: raw.settings,
        sign_in,
        assign_actions: raw.management.assign_actions,
        manage_actions: raw.management.manage_actions,
        audited: raw.audit.decisions,
        operations: raw
            .management
            .operations
            .into_iter()
            .map(|(k, v)| (k.value, v))
            .collect(),
        switchable_context: raw.management.switchable_context.map(|n| n.value),
        derived: raw
            .management
            .derived
            .into_iter()
            .map(|(name, d)| Derived {
                name: name.value,
                parents_of: d.parents_of.value,
                ty: d.ty.value,
            })
            .collect(),
        account_types,
        roles,
        features,
        flags,
        groups,
        user_attributes,
        company_attributes,
    };
    Ok((model, c.diags))
}

/// Checks `[attributes.<kind>.*]` as far as the file alone allows (the snapshot checks them
/// against the schema): names, and a default or `required`, not both.
fn stored_attributes(
    c: &mut Checker<'_>,
    kind: &str,
    raw: &BTreeMap<Name, crate::roles::raw::RawAttribute>,
) -> Vec<StoredAttribute> {
    let mut out = Vec::new();
    for (name, a) in by_position(raw) {
        c.name("attribute", name);
        if let Some(from) = &a.from {
            if from.value.kind() != kind || a.required || a.default.is_some() {
                c.error(
                    "roles::attribute-derived",
                    format!(
                        "{kind} attribute `{}` is derived (`from`): it takes no default and is not \
                         `required`, and `{}` is a fact of a {}",
                        name.value,
                        from.value.name(),
                        from.value.kind()
                    ),
                    from.span.clone(),
                );
            }
        }
        if a.from.is_some() && !a.values.is_empty() {
            c.error(
                "roles::attribute-derived",
                format!(
                    "{kind} attribute `{}` is derived (`from`): nobody writes it, so it takes no `values`",
                    name.value
                ),
                name.span.clone(),
            );
        }
        if let Some(d) = a.default.as_ref().filter(|_| !a.values.is_empty()) {
            if !a.values.iter().any(|v| v.value == d.value) {
                c.error(
                    "roles::attribute-default-not-allowed",
                    format!(
                        "the default of {kind} attribute `{}` is {}, which is not one of its `values` ({})",
                        name.value,
                        d.value,
                        allowed_list(a.values.iter().map(|v| &v.value))
                    ),
                    d.span.clone(),
                );
            }
        }
        if a.required && a.default.is_some() {
            c.error(
                "roles::attribute-default-and-required",
                format!(
                    "{kind} attribute `{}` has a default and is `required`: a creation that gives \
                     nothing gets the default, so drop one of them",
                    name.value
                ),
                name.span.clone(),
            );
        }
        out.push(StoredAttribute {
            name: name.value.clone(),
            default: a.default.as_ref().map(|d| d.value.clone()),
            default_location: a.default.as_ref().map(|d| c.loc(d.span.clone())),
            required: a.required,
            from: a.from.as_ref().map(|f| f.value),
            values: a
                .values
                .iter()
                .map(|v| (v.value.clone(), c.loc(v.span.clone())))
                .collect(),
            description: a.description.clone(),
            location: c.loc(name.span.clone()),
        });
    }
    out
}

/// The allowed values of an attribute as a message lists them: `"en", "nl", "de"`.
pub fn allowed_list<'a>(values: impl IntoIterator<Item = &'a serde_json::Value>) -> String {
    values
        .into_iter()
        .map(serde_json::Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `[sign_in]`: numbers in range, known roles.
fn sign_in_rules(c: &mut Checker<'_>, raw: &RawSignIn, roles: &BTreeSet<String>) -> SignIn {
    let mut at_least = |field: &str, v: &crate::spanned::Spanned<u32>, min: u32, max: u32| {
        if v.value < min || v.value > max {
            let message = format!(
                "`sign_in.{field}` is {}, expected a number from {min} to {max}",
                v.value
            );
            c.error("roles::invalid-setting", message, v.span.clone());
        }
        v.value
    };
    let min_password_length = at_least("min_password_length", &raw.min_password_length, 8, 128);
    let lockout_attempts = at_least("lockout_attempts", &raw.lockout_attempts, 1, 1000);
    let lockout_minutes = at_least("lockout_minutes", &raw.lockout_minutes, 1, 60 * 24 * 365);
    let reset_link_minutes = at_least("reset_link_minutes", &raw.reset_link_minutes, 1, 60 * 24 * 30);
    let require_mfa_roles = c.role_refs(&raw.require_mfa_roles, roles, "`sign_in.require_mfa_roles`");
    let token_link_role = raw.token_link_role.as_ref().and_then(|r| {
        c.role_refs(std::slice::from_ref(r), roles, "`sign_in.token_link_role`")
            .pop()
    });
    SignIn {
        password_rule: raw.password_rule,
        min_password_length,
        lockout_attempts,
        lockout_minutes,
        reset_link_minutes,
        verify_email_changes: raw.verify_email_changes,
        require_mfa_roles,
        token_link_role,
        require_mfa_attribute: raw.require_mfa_attribute.as_ref().map(|a| a.value.clone()),
        mfa_context: raw.mfa_context.as_ref().map(|a| a.value.clone()),
        switch_attribute: raw.switch_attribute.as_ref().map(|a| a.value.clone()),
        switch_context: raw.switch_context.as_ref().map(|a| a.value.clone()),
    }
}

/// Map entries in the order they appear in the file.
fn by_position<V>(map: &BTreeMap<Name, V>) -> Vec<(&Name, &V)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by_key(|(k, _)| k.span.start);
    v
}

fn title_case(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
