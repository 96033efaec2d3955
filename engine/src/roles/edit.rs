//! Edits of `roles.toml` made the way a person makes them: the product owner's console changes
//! a matrix cell, adds or renames a role or a feature, moves a rank, and the file keeps its
//! comments, order and layout (`toml_edit`); only the values that change are rewritten.
//!
//! Input: the file's text and a list of [`Edit`]s. Output: the new text, or an [`EditError`]
//! naming what does not exist (with the closest names) or what may not be done. Whether the
//! result builds is not checked here: the caller builds it like any other edit of the folder.

use std::fmt;

use serde::{Deserialize, Serialize};
use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

/// The order keys are written in, so a new key lands where a person would put it.
const KEY_ORDER: [&str; 11] = [
    "title",
    "rank",
    "actions",
    "roles",
    "own",
    "addon_roles",
    "manages",
    "account_types",
    "features",
    "when",
    "any_company",
];

use super::model::valid_name;

/// How a role holds a feature: the matrix's cell values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ConsoleAccess))]
pub enum Access {
    /// On every record of its company (`roles`).
    Yes,
    /// On records it owns (`own`).
    Own,
    /// When granted to the user as an add-on (`addon_roles`).
    Addon,
    /// Not at all.
    None,
}

/// What a name in `roles.toml` names, for renames and titles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ConsoleKind))]
pub enum Kind {
    /// `[roles.NAME]`.
    Role,
    /// `[features.NAME]`.
    Feature,
    /// `[account_types.NAME]`.
    AccountType,
    /// `[flags.NAME]`.
    Flag,
    /// `[permission_groups.NAME]`.
    Group,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Role => "roles",
            Kind::Feature => "features",
            Kind::AccountType => "account_types",
            Kind::Flag => "flags",
            Kind::Group => "permission_groups",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Role => "role",
            Kind::Feature => "feature",
            Kind::AccountType => "account type",
            Kind::Flag => "flag",
            Kind::Group => "permission group",
        }
    }
}

/// One change of `roles.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ConsoleEdit))]
pub enum Edit {
    /// A matrix cell: how `role` holds `feature`. The role moves between the feature's `roles`,
    /// `own` and `addon_roles` lists; given an `account_type` the feature is limited away from,
    /// the account type is added to the feature's `account_types` (the preview shows what else
    /// that opens).
    Cell {
        /// The feature (row).
        feature: String,
        /// The role (column).
        role: String,
        /// The new value.
        access: Access,
        /// The table the cell was changed in.
        #[serde(default)]
        account_type: Option<String>,
    },
    /// A cell of the permission-group table: whether `group` holds `feature`.
    GroupCell {
        /// The permission group (column).
        group: String,
        /// The feature (row).
        feature: String,
        /// Held or not.
        held: bool,
    },
    /// A new role, after the last role, allowed for the given account types.
    AddRole {
        /// Its name.
        role: String,
        /// Its title.
        title: String,
        /// Its rank.
        rank: i64,
        /// Account types whose users may hold it.
        #[serde(default)]
        account_types: Vec<String>,
    },
    /// A new feature, after the last feature, held by nobody yet.
    AddFeature {
        /// Its name.
        feature: String,
        /// Its title.
        title: String,
        /// The Cedar actions it covers.
        actions: Vec<String>,
        /// Account types it is limited to (every type when empty).
        #[serde(default)]
        account_types: Vec<String>,
    },
    /// A role or feature renamed everywhere `roles.toml` names it.
    Rename {
        /// Role or feature.
        kind: Kind,
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A new title.
    Title {
        /// What is retitled.
        kind: Kind,
        /// Its name.
        name: String,
        /// The new title.
        title: String,
    },
    /// A role's rank.
    Rank {
        /// The role.
        role: String,
        /// The new rank.
        rank: i64,
    },
    /// The roles a role gives and manages.
    Manages {
        /// The role.
        role: String,
        /// The roles it manages.
        manages: Vec<String>,
    },
    /// A flag's limits.
    Flag {
        /// The flag.
        flag: String,
        /// Highest rank a flagged user may hold (`None`: no limit).
        #[serde(default)]
        max_rank: Option<i64>,
        /// A flagged user acts only on records it owns.
        #[serde(default)]
        owned_only: bool,
    },
}

/// Why an edit could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EditError {
    /// Which edit (0-based).
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "edit {}: {}", self.index + 1, self.message)
    }
}

/// Applies `edits` in order to the text of `roles.toml`.
pub fn apply(text: &str, edits: &[Edit]) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| EditError {
        index: 0,
        message: format!("roles.toml is not valid TOML: {}", e.message()),
    })?;
    for (index, edit) in edits.iter().enumerate() {
        one(&mut doc, edit).map_err(|message| EditError { index, message })?;
    }
    Ok(doc.to_string())
}

/// A unified diff of two texts of one file (empty when equal).
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .to_string()
}

fn one(doc: &mut DocumentMut, edit: &Edit) -> Result<(), String> {
    match edit {
        Edit::Cell {
            feature,
            role,
            access,
            account_type,
        } => {
            exists(doc, Kind::Role, role)?;
            if let Some(at) = account_type {
                if at != "*" {
                    exists(doc, Kind::AccountType, at)?;
                    let allowed = names_in(doc.get("account_types").and_then(|t| t.get(at)), "roles");
                    if !allowed.contains(role) {
                        return Err(format!(
                            "the {at} account type does not allow the {role} role; add it to `[account_types.{at}] roles` first"
                        ));
                    }
                }
            }
            let f = entry_mut(doc, Kind::Feature, feature)?;
            for list in ["roles", "own", "addon_roles"] {
                remove_name(f, list, role, list != "roles");
            }
            let list = match access {
                Access::Yes => Some("roles"),
                Access::Own => Some("own"),
                Access::Addon => Some("addon_roles"),
                Access::None => None,
            };
            if let Some(list) = list {
                add_name(f, list, role);
                if let Some(at) = account_type.as_deref().filter(|a| *a != "*") {
                    let limited = names_in_table(f, "account_types");
                    if !limited.is_empty() && !limited.iter().any(|a| a == at) {
                        add_name(f, "account_types", at);
                    }
                }
            }
            Ok(())
        }
        Edit::GroupCell { group, feature, held } => {
            exists(doc, Kind::Feature, feature)?;
            let g = entry_mut(doc, Kind::Group, group)?;
            if *held {
                add_name(g, "features", feature);
            } else {
                remove_name(g, "features", feature, false);
            }
            Ok(())
        }
        Edit::AddRole {
            role,
            title,
            rank,
            account_types,
        } => {
            fresh(doc, Kind::Role, role)?;
            for at in account_types {
                exists(doc, Kind::AccountType, at)?;
            }
            let mut t = Table::new();
            t.insert("title", toml_edit::value(title.as_str()));
            t.insert("rank", toml_edit::value(*rank));
            insert_entry(doc, Kind::Role, role, t)?;
            for at in account_types {
                add_name(entry_mut(doc, Kind::AccountType, at)?, "roles", role);
            }
            Ok(())
        }
        Edit::AddFeature {
            feature,
            title,
            actions,
            account_types,
        } => {
            fresh(doc, Kind::Feature, feature)?;
            if actions.is_empty() {
                return Err(format!("the feature `{feature}` needs at least one action"));
            }
            for at in account_types {
                exists(doc, Kind::AccountType, at)?;
            }
            let mut t = Table::new();
            t.insert("title", toml_edit::value(title.as_str()));
            t.insert("actions", toml_edit::value(array(actions)));
            t.insert("roles", toml_edit::value(Array::new()));
            if !account_types.is_empty() {
                t.insert("account_types", toml_edit::value(array(account_types)));
            }
            insert_entry(doc, Kind::Feature, feature, t)
        }
        Edit::Rename { kind, from, to } => rename(doc, *kind, from, to),
        Edit::Title { kind, name, title } => {
            if title.trim().is_empty() {
                return Err(format!("the {} `{name}` needs a title", kind.word()));
            }
            set(entry_mut(doc, *kind, name)?, "title", Value::from(title.as_str()));
            Ok(())
        }
        Edit::Rank { role, rank } => {
            set(entry_mut(doc, Kind::Role, role)?, "rank", Value::from(*rank));
            Ok(())
        }
        Edit::Manages { role, manages } => {
            for m in manages {
                exists(doc, Kind::Role, m)?;
            }
            let r = entry_mut(doc, Kind::Role, role)?;
            if manages.is_empty() && r.get("manages").is_none() {
                return Ok(());
            }
            if r.contains_key("manages") {
                set(r, "manages", Value::Array(array(manages)));
            } else {
                insert_in_order(r, "manages", toml_edit::value(array(manages)));
            }
            if let Some(a) = r.get_mut("manages").and_then(Item::as_array_mut) {
                a.fmt();
            }
            Ok(())
        }
        Edit::Flag {
            flag,
            max_rank,
            owned_only,
        } => {
            let f = entry_mut(doc, Kind::Flag, flag)?;
            match max_rank {
                Some(r) => set(f, "max_rank", Value::from(*r)),
                None => {
                    f.remove("max_rank");
                }
            }
            if *owned_only {
                set(f, "owned_only", Value::from(true));
            } else {
                f.remove("owned_only");
            }
            Ok(())
        }
    }
}

/// Renames a role or a feature: its table and every list of `roles.toml` that names it.
fn rename(doc: &mut DocumentMut, kind: Kind, from: &str, to: &str) -> Result<(), String> {
    if !matches!(kind, Kind::Role | Kind::Feature) {
        return Err(format!(
            "only roles and features are renamed here, not a {}",
            kind.word()
        ));
    }
    exists(doc, kind, from)?;
    fresh(doc, kind, to)?;
    let parent = doc
        .get_mut(kind.table())
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| format!("roles.toml has no [{}]", kind.table()))?;
    // The table keeps its position in the document and the comments above it.
    let item = parent
        .remove(from)
        .ok_or_else(|| format!("the {} `{from}` is not defined", kind.word()))?;
    parent.insert(to, item);
    let lists: &[(&str, &[&str])] = match kind {
        Kind::Role => &[
            ("account_types", &["roles"]),
            ("roles", &["manages"]),
            ("features", &["roles", "own", "addon_roles"]),
        ],
        _ => &[("permission_groups", &["features"])],
    };
    for (table, keys) in lists {
        let Some(t) = doc.get_mut(table).and_then(Item::as_table_like_mut) else {
            continue;
        };
        for (_, entry) in t.iter_mut() {
            if let Some(e) = entry.as_table_like_mut() {
                for key in *keys {
                    replace_name(e, key, from, to);
                }
            }
        }
    }
    if kind == Kind::Role {
        if let Some(s) = doc.get_mut("sign_in").and_then(Item::as_table_like_mut) {
            replace_name(s, "require_mfa_roles", from, to);
            if s.get("token_link_role").and_then(Item::as_str) == Some(from) {
                set(s, "token_link_role", Value::from(to));
            }
        }
    }
    Ok(())
}

fn array(names: &[String]) -> Array {
    names.iter().map(String::as_str).collect()
}

fn names_of(entries: Option<&Item>) -> Vec<String> {
    entries
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
        .unwrap_or_default()
}

fn names_in(entry: Option<&Item>, key: &str) -> Vec<String> {
    entry
        .and_then(Item::as_table_like)
        .map(|t| names_in_table(t, key))
        .unwrap_or_default()
}

fn names_in_table(t: &dyn TableLike, key: &str) -> Vec<String> {
    t.get(key)
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn not_found(doc: &DocumentMut, kind: Kind, name: &str) -> String {
    let names = names_of(doc.get(kind.table()));
    let close = names
        .iter()
        .map(|n| (strsim::normalized_damerau_levenshtein(name, n), n))
        .filter(|(s, _)| *s > 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    format!("the {} `{name}` is not defined in roles.toml{close}", kind.word())
}

fn exists(doc: &DocumentMut, kind: Kind, name: &str) -> Result<(), String> {
    if doc
        .get(kind.table())
        .and_then(Item::as_table_like)
        .is_some_and(|t| t.contains_key(name))
    {
        Ok(())
    } else {
        Err(not_found(doc, kind, name))
    }
}

fn fresh(doc: &DocumentMut, kind: Kind, name: &str) -> Result<(), String> {
    if !valid_name(name) || name.contains(' ') {
        return Err(format!(
            "`{name}` is not a valid {} name (letters, digits, `_`, `-`, `.`, `:`)",
            kind.word()
        ));
    }
    if exists(doc, kind, name).is_ok() {
        return Err(format!("the {} `{name}` already exists", kind.word()));
    }
    Ok(())
}

fn entry_mut<'d>(doc: &'d mut DocumentMut, kind: Kind, name: &str) -> Result<&'d mut Table, String> {
    if exists(doc, kind, name).is_err() {
        return Err(not_found(doc, kind, name));
    }
    doc.get_mut(kind.table())
        .and_then(Item::as_table_like_mut)
        .and_then(|t| t.get_mut(name))
        .and_then(Item::as_table_mut)
        .ok_or_else(|| {
            format!(
                "`{}.{name}` is written inline; the console edits `[{}.{name}]` tables",
                kind.table(),
                kind.table()
            )
        })
}

/// Inserts `[KIND.name]` after the last entry of its kind, as its own `[kind.name]` table.
fn insert_entry(doc: &mut DocumentMut, kind: Kind, name: &str, mut table: Table) -> Result<(), String> {
    if doc.get(kind.table()).is_none() {
        let mut parent = Table::new();
        parent.set_implicit(true);
        doc.insert(kind.table(), Item::Table(parent));
    }
    let parent = doc
        .get_mut(kind.table())
        .and_then(Item::as_table_mut)
        .ok_or_else(|| format!("`{}` in roles.toml is not a table", kind.table()))?;
    let last = parent
        .iter()
        .filter_map(|(_, v)| v.as_table().and_then(Table::position))
        .max();
    if let Some(p) = last {
        table.set_position(p + 1);
        // Entries placed after it move down one, so the new one lands right after the last.
        shift_positions(doc, p + 1);
    }
    table.decor_mut().set_prefix("\n");
    let parent = doc
        .get_mut(kind.table())
        .and_then(Item::as_table_mut)
        .ok_or_else(|| format!("`{}` in roles.toml is not a table", kind.table()))?;
    parent.insert(name, Item::Table(table));
    Ok(())
}

/// Moves every table at `from` or later one place down.
fn shift_positions(doc: &mut DocumentMut, from: isize) {
    fn walk(t: &mut Table, from: isize) {
        if let Some(p) = t.position() {
            if p >= from {
                t.set_position(p + 1);
            }
        }
        for (_, v) in t.iter_mut() {
            match v {
                Item::Table(t) => walk(t, from),
                Item::ArrayOfTables(a) => {
                    for t in a.iter_mut() {
                        walk(t, from);
                    }
                }
                _ => {}
            }
        }
    }
    walk(doc.as_table_mut(), from);
}

/// Sets `key` to `value`, keeping the comments around the old value.
fn set(t: &mut dyn TableLike, key: &str, mut value: Value) {
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => {
            t.insert(key, Item::Value(value));
        }
    }
}

/// Inserts a new `key` into a table where a person would write it: after the keys that come
/// before it in [`KEY_ORDER`], else last. Existing keys keep their order and comments.
fn insert_in_order(t: &mut Table, key: &str, item: Item) {
    let order: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
    t.insert(key, item);
    let Some(mine) = KEY_ORDER.iter().position(|k| *k == key) else {
        return;
    };
    let anchor = order
        .iter()
        .rposition(|k| KEY_ORDER.iter().position(|o| o == k).is_some_and(|p| p < mine));
    let Some(anchor) = anchor else { return };
    // Existing keys at 2i, the new one right after its anchor.
    let place = |k: &str| -> usize {
        match order.iter().position(|o| o == k) {
            Some(i) => 2 * i,
            None => 2 * anchor + 1,
        }
    };
    t.sort_values_by(|a, _, b, _| place(a.get()).cmp(&place(b.get())));
}

/// Adds `name` to the list `key`, creating it when absent.
fn add_name(t: &mut Table, key: &str, name: &str) {
    if names_in_table(t, key).iter().any(|n| n == name) {
        return;
    }
    match t.get_mut(key).and_then(Item::as_array_mut) {
        Some(a) => {
            a.push(name);
            tidy(a);
        }
        None => insert_in_order(t, key, toml_edit::value(array(&[name.to_owned()]))),
    }
}

/// Removes `name` from the list `key`; drops the key when it empties and `drop_empty`.
fn remove_name(t: &mut dyn TableLike, key: &str, name: &str, drop_empty: bool) {
    let Some(a) = t.get_mut(key).and_then(Item::as_array_mut) else {
        return;
    };
    let before = a.len();
    a.retain(|v| v.as_str() != Some(name));
    if a.len() == before {
        return;
    }
    if a.is_empty() && drop_empty {
        t.remove(key);
    } else {
        tidy(a);
    }
}

fn replace_name(t: &mut dyn TableLike, key: &str, from: &str, to: &str) {
    let Some(a) = t.get_mut(key).and_then(Item::as_array_mut) else {
        return;
    };
    for v in a.iter_mut() {
        if v.as_str() == Some(from) {
            let mut new = Value::from(to);
            *new.decor_mut() = v.decor().clone();
            *v = new;
        }
    }
}

/// A one-line list is laid out as `["a", "b"]` again after a change; a list written over
/// several lines keeps its layout.
fn tidy(a: &mut Array) {
    if !a.to_string().contains('\n') {
        a.fmt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# The portal's roles.

[account_types.customer]
title = "Customer"
roles = ["owner", "admin"]   # no visitors here

[account_types.carrier]
roles = ["admin"]

[roles.owner]
title = "Owner"
rank = 100  # the top
manages = ["admin"]

[roles.admin]
title = "Admin"
rank = 80

# ---- Reports ----

[features.reports]
title = "Reports"
actions = ["report.read"]
roles = ["owner", "admin"]   # everyone
account_types = ["customer"]

[features.themes]
title = "Themes"
actions = [
  "theme.configure",  # the portal's look
]
roles = ["owner"]

[permission_groups.basic]
features = ["reports"]

[flags.limited]
max_rank = 50

[sign_in]
require_mfa_roles = ["admin"]
"#;

    fn cell(feature: &str, role: &str, access: Access) -> Edit {
        Edit::Cell {
            feature: feature.into(),
            role: role.into(),
            access,
            account_type: None,
        }
    }

    #[test]
    fn a_cell_moves_the_role_between_lists_and_keeps_comments() {
        let out = apply(TEXT, &[cell("reports", "admin", Access::Own)]).unwrap();
        assert!(
            out.contains("roles = [\"owner\"]   # everyone\nown = [\"admin\"]"),
            "{out}"
        );
        assert!(out.starts_with("# The portal's roles.\n"));
        assert!(out.contains("# ---- Reports ----"));
        let back = apply(&out, &[cell("reports", "admin", Access::Yes)]).unwrap();
        assert!(
            back.contains("roles = [\"owner\", \"admin\"]   # everyone\n"),
            "{back}"
        );
        assert!(!back.contains("own ="), "an emptied `own` list goes: {back}");
        let none = apply(TEXT, &[cell("themes", "owner", Access::None)]).unwrap();
        assert!(
            none.contains("\"theme.configure\",  # the portal's look"),
            "{none}"
        );
        assert!(none.contains("roles = []"), "{none}");
    }

    #[test]
    fn an_unchanged_cell_leaves_the_text_as_it_was() {
        let out = apply(TEXT, &[cell("reports", "admin", Access::Yes)]).unwrap();
        assert_eq!(out, TEXT);
    }

    #[test]
    fn a_cell_in_another_account_types_table_opens_the_feature_to_it() {
        let e = Edit::Cell {
            feature: "reports".into(),
            role: "admin".into(),
            access: Access::Yes,
            account_type: Some("carrier".into()),
        };
        let out = apply(TEXT, &[e]).unwrap();
        assert!(
            out.contains("account_types = [\"customer\", \"carrier\"]"),
            "{out}"
        );
        let refused = Edit::Cell {
            feature: "reports".into(),
            role: "owner".into(),
            access: Access::Yes,
            account_type: Some("carrier".into()),
        };
        let err = apply(TEXT, &[refused]).unwrap_err();
        assert!(err.message.contains("does not allow the owner role"), "{err}");
    }

    #[test]
    fn unknown_names_are_refused_with_the_closest_one() {
        let err = apply(TEXT, &[cell("reprots", "admin", Access::Yes)]).unwrap_err();
        assert_eq!(err.index, 0);
        assert!(err.message.contains("did you mean `reports`"), "{err}");
        let err = apply(TEXT, &[cell("reports", "admni", Access::Yes)]).unwrap_err();
        assert!(err.message.contains("role `admni`"), "{err}");
        let err = apply(
            TEXT,
            &[
                cell("reports", "admin", Access::None),
                Edit::Rank {
                    role: "nobody".into(),
                    rank: 1,
                },
            ],
        )
        .unwrap_err();
        assert_eq!(err.index, 1, "the second edit is named");
    }

    #[test]
    fn a_new_role_lands_after_the_last_role_and_joins_its_account_types() {
        let e = Edit::AddRole {
            role: "viewer".into(),
            title: "Viewer".into(),
            rank: 10,
            account_types: vec!["customer".into()],
        };
        let out = apply(TEXT, &[e]).unwrap();
        let admin = out.find("[roles.admin]").unwrap();
        let viewer = out.find("[roles.viewer]").unwrap();
        let reports = out.find("# ---- Reports ----").unwrap();
        assert!(admin < viewer && viewer < reports, "{out}");
        assert!(
            out.contains("roles = [\"owner\", \"admin\", \"viewer\"]   # no visitors here"),
            "{out}"
        );
        let err = apply(
            &out,
            &[Edit::AddRole {
                role: "viewer".into(),
                title: "Again".into(),
                rank: 1,
                account_types: vec![],
            }],
        )
        .unwrap_err();
        assert!(err.message.contains("already exists"), "{err}");
        let err = apply(
            TEXT,
            &[Edit::AddRole {
                role: "a b".into(),
                title: "x".into(),
                rank: 1,
                account_types: vec![],
            }],
        )
        .unwrap_err();
        assert!(err.message.contains("not a valid role name"), "{err}");
    }

    #[test]
    fn a_new_feature_lands_after_the_last_feature() {
        let e = Edit::AddFeature {
            feature: "exports".into(),
            title: "Export data".into(),
            actions: vec!["data.export".into()],
            account_types: vec![],
        };
        let out = apply(TEXT, &[e]).unwrap();
        let themes = out.find("[features.themes]").unwrap();
        let exports = out.find("[features.exports]").unwrap();
        let groups = out.find("[permission_groups.basic]").unwrap();
        assert!(themes < exports && exports < groups, "{out}");
        assert!(
            out.contains(
                "[features.exports]\ntitle = \"Export data\"\nactions = [\"data.export\"]\nroles = []\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_rename_reaches_every_list_and_keeps_the_tables_place() {
        let e = Edit::Rename {
            kind: Kind::Role,
            from: "admin".into(),
            to: "manager".into(),
        };
        let out = apply(TEXT, &[e]).unwrap();
        assert!(!out.contains("\"admin\""), "{out}");
        assert!(!out.contains("roles.admin"), "{out}");
        assert!(out.contains("[roles.manager]\ntitle = \"Admin\""), "{out}");
        assert!(out.find("[roles.owner]").unwrap() < out.find("[roles.manager]").unwrap());
        assert!(out.contains("require_mfa_roles = [\"manager\"]"), "{out}");
        assert!(
            out.contains("roles = [\"owner\", \"manager\"]   # everyone"),
            "{out}"
        );
        let f = Edit::Rename {
            kind: Kind::Feature,
            from: "reports".into(),
            to: "read_reports".into(),
        };
        let out = apply(TEXT, &[f]).unwrap();
        assert!(
            out.contains("# ---- Reports ----\n\n[features.read_reports]"),
            "{out}"
        );
        assert!(out.contains("features = [\"read_reports\"]"), "{out}");
    }

    #[test]
    fn titles_ranks_manages_and_flags() {
        let out = apply(
            TEXT,
            &[
                Edit::Title {
                    kind: Kind::Feature,
                    name: "reports".into(),
                    title: "Read reports".into(),
                },
                Edit::Rank {
                    role: "owner".into(),
                    rank: 90,
                },
                Edit::Manages {
                    role: "admin".into(),
                    manages: vec!["admin".into()],
                },
                Edit::Flag {
                    flag: "limited".into(),
                    max_rank: None,
                    owned_only: true,
                },
            ],
        )
        .unwrap();
        assert!(out.contains("title = \"Read reports\""), "{out}");
        assert!(out.contains("rank = 90  # the top"), "the comment stays: {out}");
        assert!(
            out.contains("[roles.admin]\ntitle = \"Admin\"\nrank = 80\nmanages = [\"admin\"]"),
            "{out}"
        );
        assert!(out.contains("[flags.limited]\nowned_only = true"), "{out}");
        assert!(!out.contains("max_rank"), "{out}");
        let err = apply(
            TEXT,
            &[Edit::Manages {
                role: "admin".into(),
                manages: vec!["ghost".into()],
            }],
        )
        .unwrap_err();
        assert!(err.message.contains("role `ghost`"), "{err}");
    }

    #[test]
    fn group_cells() {
        let on = Edit::GroupCell {
            group: "basic".into(),
            feature: "themes".into(),
            held: true,
        };
        let out = apply(TEXT, &[on]).unwrap();
        assert!(out.contains("features = [\"reports\", \"themes\"]"), "{out}");
        let off = Edit::GroupCell {
            group: "basic".into(),
            feature: "reports".into(),
            held: false,
        };
        let out = apply(TEXT, &[off]).unwrap();
        assert!(out.contains("features = []"), "{out}");
    }

    #[test]
    fn edits_read_from_json() {
        let e: Vec<Edit> = serde_json::from_str(
            r#"[{"op":"cell","feature":"reports","role":"admin","access":"addon","account_type":"customer"},
                {"op":"rank","role":"admin","rank":70}]"#,
        )
        .unwrap();
        let out = apply(TEXT, &e).unwrap();
        assert!(out.contains("addon_roles = [\"admin\"]"), "{out}");
        assert!(serde_json::from_str::<Edit>(r#"{"op":"cell","feature":"x"}"#).is_err());
        assert!(serde_json::from_str::<Edit>(r#"{"op":"drop_table","name":"x"}"#).is_err());
    }

    #[test]
    fn diffs_name_the_file() {
        let new = apply(TEXT, &[cell("reports", "admin", Access::None)]).unwrap();
        let d = unified_diff("roles.toml", TEXT, &new);
        assert!(d.starts_with("--- roles.toml\n+++ roles.toml\n"), "{d}");
        assert!(
            d.contains("-roles = [\"owner\", \"admin\"]   # everyone\n+roles = [\"owner\"]   # everyone\n"),
            "{d}"
        );
        assert_eq!(unified_diff("roles.toml", TEXT, TEXT), "");
    }
}
