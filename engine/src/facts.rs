//! Facts about users and companies, and the one function that turns them into Cedar entities.
//!
//! The user store (and the fixture files) know plain facts: a user's company, role, flags,
//! add-ons and permission group. `user_entity` and `company_entity` turn those facts into the
//! Cedar JSON entity the schema expects, setting only the attributes the schema declares, so
//! SQL never builds Cedar entities and the policies see the same shape whatever the source.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::snapshot::{qualify, Snapshot};

/// What the store knows about a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserFacts {
    /// The company (tenant) the user acts in.
    pub company: String,
    /// The user's role in that company.
    pub role: String,
    /// Deactivated users are denied everything.
    #[serde(default = "yes")]
    pub active: bool,
    /// Flags such as `isolated`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Add-on features granted one by one.
    #[serde(default)]
    pub addons: Vec<String>,
    /// The permission group, whose features the user holds.
    #[serde(default)]
    pub group: Option<String>,
    /// Further attributes the schema declares (scopes, customer access...), in Cedar JSON.
    #[serde(default)]
    pub attrs: BTreeMap<String, Value>,
    /// The login, as the user store keeps it (for attributes derived from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Companies besides `company` the user may access (enterprise accounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accessible: Vec<String>,
}

/// The user attributes the engine sets from the core facts (and from the role's sign-in rules),
/// never from stored attributes.
pub const CORE_USER_ATTRS: &[&str] = &["company", "role", "active", "flags", "addons", "group_features"];

/// The company attributes the engine sets from the core facts.
pub const CORE_COMPANY_ATTRS: &[&str] = &["account_type"];

fn yes() -> bool {
    true
}

/// What the store knows about a company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyFacts {
    /// Its account type.
    pub account_type: String,
    /// The parent company of an enterprise account.
    #[serde(default)]
    pub parent: Option<String>,
    /// Further attributes the schema declares (subscription...), in Cedar JSON.
    #[serde(default)]
    pub attrs: BTreeMap<String, Value>,
    /// The roles its active users hold, when the user store read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_roles: Option<Vec<String>>,
}

/// Adds the folder's default (`[attributes.<kind>.<name>]`) of every stored attribute the
/// facts lack.
fn defaults(attrs: &mut Map<String, Value>, stored: &[crate::roles::model::StoredAttribute]) {
    for a in stored {
        if let (false, Some(default)) = (attrs.contains_key(&a.name), &a.default) {
            attrs.insert(a.name.clone(), default.clone());
        }
    }
}

fn uid(ty: &str, id: &str) -> Value {
    json!({ "type": ty, "id": id })
}

impl Snapshot {
    fn type_name(&self, which: fn(&crate::roles::raw::RawCedar) -> &str, default: &str) -> String {
        let t = self.model().map_or(default, |m| which(&m.cedar));
        qualify(self.namespace(), t)
    }

    /// An entity type of the folder's namespace, qualified (`Location` -> `Portal::Location`).
    pub fn qualified_type(&self, ty: &str) -> String {
        qualify(self.namespace(), ty)
    }

    /// The entity type of users.
    pub fn user_type(&self) -> String {
        self.type_name(|c| &c.user_type, "User")
    }

    /// The entity type of companies.
    pub fn company_type(&self) -> String {
        self.type_name(|c| &c.company_type, "Company")
    }

    /// The entity type of roles.
    pub fn role_type(&self) -> String {
        self.type_name(|c| &c.role_type, "Role")
    }

    /// The stored user attributes the folder declares (`[attributes.user.*]`).
    pub fn stored_user_attributes(&self) -> &[crate::roles::model::StoredAttribute] {
        self.model().map_or(&[], |m| &m.user_attributes)
    }

    /// The stored company attributes the folder declares (`[attributes.company.*]`).
    pub fn stored_company_attributes(&self) -> &[crate::roles::model::StoredAttribute] {
        self.model().map_or(&[], |m| &m.company_attributes)
    }

    /// The features of a permission group, from the role model.
    pub fn group_features(&self, group: &str) -> Vec<String> {
        self.model()
            .and_then(|m| m.groups.iter().find(|g| g.name == group))
            .map(|g| g.features.clone())
            .unwrap_or_default()
    }

    /// The Cedar JSON entity of a user.
    pub fn user_entity(&self, id: &str, f: &UserFacts) -> Value {
        let company = uid(&self.company_type(), &f.company);
        let role = uid(&self.role_type(), &f.role);
        let declared = &self.user_attrs;
        let mut attrs = Map::new();
        let mut put = |k: &str, v: Value| {
            if declared.contains(k) {
                attrs.insert(k.to_owned(), v);
            }
        };
        put("company", json!({ "__entity": company }));
        put("role", json!({ "__entity": role }));
        put("active", json!(f.active));
        put("flags", json!(f.flags));
        put("addons", json!(f.addons));
        let group = f
            .group
            .as_deref()
            .map(|g| self.group_features(g))
            .unwrap_or_default();
        put("group_features", json!(group));
        for (k, v) in &f.attrs {
            attrs.insert(k.clone(), v.clone());
        }
        defaults(&mut attrs, self.stored_user_attributes());
        // A role that requires MFA requires it whatever the user's own attribute says.
        let sign_in = self.model().map(|m| &m.sign_in);
        if let Some(name) = sign_in.and_then(|s| s.require_mfa_attribute.as_deref()) {
            if sign_in.is_some_and(|s| s.require_mfa_roles.contains(&f.role)) && declared.contains(name) {
                attrs.insert(name.to_owned(), json!(true));
            }
        }
        json!({ "uid": uid(&self.user_type(), id), "attrs": attrs, "parents": [role, company] })
    }

    /// The Cedar JSON entity of a company.
    pub fn company_entity(&self, id: &str, f: &CompanyFacts) -> Value {
        let mut attrs = Map::new();
        if self.company_attrs.contains("account_type") {
            attrs.insert("account_type".to_owned(), json!(f.account_type));
        }
        for (k, v) in &f.attrs {
            attrs.insert(k.clone(), v.clone());
        }
        defaults(&mut attrs, self.stored_company_attributes());
        let parents: Vec<Value> = f.parent.iter().map(|p| uid(&self.company_type(), p)).collect();
        json!({ "uid": uid(&self.company_type(), id), "attrs": attrs, "parents": parents })
    }
}
