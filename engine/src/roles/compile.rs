//! Compilation of a `RoleModel` to Cedar policies.
//!
//! Input: a checked `RoleModel` and the action ids the Cedar schema declares. Output: one Cedar
//! policy per rule, each with a stable `@id` (`feature.<name>`, `role.<name>.manage`,
//! `flag.<name>.owned-only`...) and the TOML location that produced it, so reasons and
//! validation errors point back at `roles.toml`. The snapshot validates the output together
//! with the hand-written `.cedar` files.
//!
//! What each rule becomes:
//! - feature, `roles`: `permit` the feature's actions to those roles, in companies of the
//!   feature's `account_types` (all when empty), on resources in the user's company (unless
//!   `any_company`), and `when` any extra condition;
//! - feature, `own`: the same, on resources whose `owner` is the user;
//! - feature, `addon_roles`: the same, for users of those roles whose `addons` name the feature;
//! - permission groups: the same, for users whose `group_features` name the feature (only for
//!   features some group of `roles.toml` lists);
//! - role `manages`: `permit` the assign actions on users of its company whose current and
//!   resulting role are managed, and the manage actions on users whose role is managed;
//! - role `change_own_role = false`: `forbid` giving oneself another role;
//! - account type: `forbid` users holding a role their account type does not allow, and
//!   `forbid` assigning such a role;
//! - flag `owned_only`: `forbid` a flagged user any record it does not own;
//! - flag `max_rank`: `forbid` a flagged user holding, or being given, a higher role;
//! - always: `forbid` deactivated users everything.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;

use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::roles::model::{Feature, RoleModel};
use crate::roles::raw::Name;

/// One compiled policy.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The policy id, also its `@id` annotation.
    pub id: String,
    /// Cedar source text.
    pub text: String,
    /// The TOML item it was compiled from.
    pub origin: Location,
    /// What rule it implements, in words a product owner knows.
    pub describe: String,
    /// Where a `when` expression from the TOML sits in `text`, and its span in the TOML file.
    pub embedded: Option<(Range<usize>, Range<usize>)>,
}

/// Prefixes reserved for compiled policy ids.
pub const RESERVED_PREFIXES: [&str; 5] = ["feature.", "role.", "account_type.", "flag.", "core."];

struct Names<'a> {
    ns: &'a str,
    model: &'a RoleModel,
}

impl Names<'_> {
    fn ty(&self, t: &str) -> String {
        if self.ns.is_empty() {
            t.to_owned()
        } else {
            format!("{}::{t}", self.ns)
        }
    }

    fn uid(&self, t: &str, id: &str) -> String {
        format!("{}::{}", self.ty(t), quote(id))
    }

    fn user(&self) -> String {
        self.ty(&self.model.cedar.user_type)
    }

    fn role(&self, r: &str) -> String {
        self.uid(&self.model.cedar.role_type, r)
    }

    fn roles(&self, rs: &[String]) -> String {
        let v: Vec<String> = rs.iter().map(|r| self.role(r)).collect();
        format!("[{}]", v.join(", "))
    }

    fn actions(&self, acts: &[Name]) -> String {
        let v: Vec<String> = acts.iter().map(|a| self.uid("Action", &a.value)).collect();
        format!("[{}]", v.join(", "))
    }
}

/// Quotes a string as a Cedar string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Compiles the model. `actions` are the action ids the schema declares (without type), used
/// to report unknown action names at their TOML span.
pub fn compile(
    model: &RoleModel,
    actions: &BTreeSet<String>,
    text: &str,
) -> Result<Vec<CompiledPolicy>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let file = model.file.as_str();
    let check_actions = |list: &[Name], diags: &mut Diagnostics, what: &str| {
        for a in list {
            if !actions.contains(&a.value) {
                let d = Diagnostic::error(
                    "roles::unknown-action",
                    format!("unknown action `{}` in {what}", a.value),
                )
                .at_span(file, text, a.span.clone())
                .suggest(&a.value, actions.iter().map(String::as_str));
                diags.push(d);
            }
        }
    };
    check_actions(&model.assign_actions, &mut diags, "`management.assign_actions`");
    check_actions(&model.manage_actions, &mut diags, "`management.manage_actions`");
    check_actions(&model.audited, &mut diags, "`audit.decisions`");
    let mapped: Vec<Name> = model.operations.values().cloned().collect();
    check_actions(&mapped, &mut diags, "`management.operations`");
    for f in &model.features {
        check_actions(&f.actions, &mut diags, &format!("feature `{}`", f.name));
    }
    if diags.has_errors() {
        return Err(diags);
    }

    let n = Names {
        ns: &model.cedar.namespace,
        model,
    };
    let mut out = Vec::new();
    let user = n.user();

    out.push(CompiledPolicy {
        id: "core.deactivated".to_owned(),
        text: format!(
            "@id(\"core.deactivated\")\nforbid (principal is {user}, action, resource)\nunless {{ principal.active }};"
        ),
        origin: Location::new(file, text, 0..0),
        describe: "deactivated users are denied everything".to_owned(),
        embedded: None,
    });

    // Only features some permission group lists can be held through a group.
    let grouped: BTreeSet<&str> = model
        .groups
        .iter()
        .flat_map(|g| g.features.iter().map(String::as_str))
        .collect();
    for f in &model.features {
        feature_policies(&n, f, grouped.contains(f.name.as_str()), &mut out);
    }

    for r in &model.roles {
        let principal = format!("principal in {}", n.role(&r.name));
        if !r.manages.is_empty() {
            let managed = n.roles(&r.manages);
            if !model.assign_actions.is_empty() {
                let id = format!("role.{}.assign", r.name);
                let cond = format!(
                    "resource in principal.company &&\n  {managed}.contains(resource.role) &&\n  {managed}.contains(context.role)"
                );
                out.push(policy(
                    &id,
                    "permit",
                    &principal,
                    &n.actions(&model.assign_actions),
                    &format!("resource is {user}"),
                    Some(&cond),
                    None,
                    r.location.clone(),
                    format!("role `{}` gives the roles {}", r.name, list(&r.manages)),
                ));
            }
            if !model.manage_actions.is_empty() {
                let id = format!("role.{}.manage", r.name);
                let cond = format!("resource in principal.company &&\n  {managed}.contains(resource.role)");
                out.push(policy(
                    &id,
                    "permit",
                    &principal,
                    &n.actions(&model.manage_actions),
                    &format!("resource is {user}"),
                    Some(&cond),
                    None,
                    r.location.clone(),
                    format!(
                        "role `{}` manages users with the roles {}",
                        r.name,
                        list(&r.manages)
                    ),
                ));
            }
        }
        if !r.change_own_role && !model.assign_actions.is_empty() {
            let id = format!("role.{}.own-role", r.name);
            let cond = format!("resource == principal && context.role != {}", n.role(&r.name));
            out.push(policy(
                &id,
                "forbid",
                &principal,
                &n.actions(&model.assign_actions),
                "resource",
                Some(&cond),
                None,
                r.location.clone(),
                format!("a user with role `{}` cannot change its own role", r.name),
            ));
        }
    }

    for at in &model.account_types {
        let excluded: Vec<String> = model
            .roles
            .iter()
            .filter(|r| !at.roles.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        if excluded.is_empty() {
            continue;
        }
        let ex = n.roles(&excluded);
        let kind = quote(&at.name);
        out.push(policy(
            &format!("account_type.{}", at.name),
            "forbid",
            &format!("principal is {user}"),
            "action",
            "resource",
            Some(&format!(
                "principal.company.account_type == {kind} &&\n  principal in {ex}"
            )),
            None,
            at.location.clone(),
            format!("{} users cannot hold the roles {}", at.title, list(&excluded)),
        ));
        if !model.assign_actions.is_empty() {
            out.push(policy(
                &format!("account_type.{}.assign", at.name),
                "forbid",
                "principal",
                &n.actions(&model.assign_actions),
                &format!("resource is {user}"),
                Some(&format!(
                    "resource.company.account_type == {kind} &&\n  {ex}.contains(context.role)"
                )),
                None,
                at.location.clone(),
                format!("{} users cannot be given the roles {}", at.title, list(&excluded)),
            ));
        }
    }

    for fl in &model.flags {
        let flag = quote(&fl.name);
        if fl.owned_only {
            out.push(policy(
                &format!("flag.{}.owned-only", fl.name),
                "forbid",
                &format!("principal is {user}"),
                "action",
                "resource",
                Some(&format!(
                    "principal.flags.contains({flag}) &&\n  resource has owner &&\n  resource.owner != principal"
                )),
                None,
                fl.location.clone(),
                format!("{} users act only on records they own", fl.title),
            ));
        }
        if let Some(max) = fl.max_rank {
            let above: Vec<String> = model
                .roles
                .iter()
                .filter(|r| r.rank > max)
                .map(|r| r.name.clone())
                .collect();
            if above.is_empty() {
                continue;
            }
            let ab = n.roles(&above);
            out.push(policy(
                &format!("flag.{}.max-rank", fl.name),
                "forbid",
                &format!("principal is {user}"),
                "action",
                "resource",
                Some(&format!(
                    "principal.flags.contains({flag}) &&\n  principal in {ab}"
                )),
                None,
                fl.location.clone(),
                format!("{} users cannot hold the roles {}", fl.title, list(&above)),
            ));
            if !model.assign_actions.is_empty() {
                out.push(policy(
                    &format!("flag.{}.max-rank.assign", fl.name),
                    "forbid",
                    "principal",
                    &n.actions(&model.assign_actions),
                    &format!("resource is {user}"),
                    Some(&format!(
                        "context.flags.contains({flag}) &&\n  {ab}.contains(context.role)"
                    )),
                    None,
                    fl.location.clone(),
                    format!("{} users cannot be given the roles {}", fl.title, list(&above)),
                ));
            }
        }
    }
    Ok(out)
}

fn feature_policies(n: &Names<'_>, f: &Feature, with_groups: bool, out: &mut Vec<CompiledPolicy>) {
    let user = n.user();
    let actions = n.actions(&f.actions);
    let principal = format!("principal is {user}");
    let tenancy = (!f.any_company).then_some("resource in principal.company");
    let kinds = match f.account_types.as_slice() {
        [] => None,
        [one] => Some(format!("principal.company.account_type == {}", quote(one))),
        many => {
            let v: Vec<String> = many.iter().map(|t| quote(t)).collect();
            Some(format!(
                "[{}].contains(principal.company.account_type)",
                v.join(", ")
            ))
        }
    };
    let when = f.when.as_ref().map(|w| (w.value.as_str(), w.span.clone()));
    let mut variants: Vec<(String, String, String)> = Vec::new();
    if !f.roles.is_empty() {
        variants.push((
            format!("feature.{}", f.name),
            format!("principal in {}", n.roles(&f.roles)),
            format!("roles {} hold feature `{}`", list(&f.roles), f.name),
        ));
    }
    if !f.own.is_empty() {
        variants.push((
            format!("feature.{}.own", f.name),
            format!(
                "principal in {} &&\n  resource has owner &&\n  resource.owner == principal",
                n.roles(&f.own)
            ),
            format!(
                "roles {} hold feature `{}` on records they own",
                list(&f.own),
                f.name
            ),
        ));
    }
    if !f.addon_roles.is_empty() {
        variants.push((
            format!("feature.{}.addon", f.name),
            format!(
                "principal in {} &&\n  principal.addons.contains({})",
                n.roles(&f.addon_roles),
                quote(&f.name)
            ),
            format!(
                "users of roles {} granted the add-on `{}`",
                list(&f.addon_roles),
                f.name
            ),
        ));
    }
    if with_groups {
        variants.push((
            format!("feature.{}.group", f.name),
            format!("principal.group_features.contains({})", quote(&f.name)),
            format!("users whose permission group holds feature `{}`", f.name),
        ));
    }
    for (id, cond, describe) in variants {
        let mut full = cond;
        if let Some(k) = &kinds {
            full = format!("{full} &&\n  {k}");
        }
        if let Some(t) = tenancy {
            full = format!("{full} &&\n  {t}");
        }
        out.push(policy(
            &id,
            "permit",
            &principal,
            &actions,
            "resource",
            Some(&full),
            when.clone(),
            f.location.clone(),
            describe,
        ));
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a private builder whose call sites name every part"
)]
fn policy(
    id: &str,
    effect: &str,
    principal: &str,
    action: &str,
    resource: &str,
    cond: Option<&str>,
    when: Option<(&str, Range<usize>)>,
    origin: Location,
    describe: String,
) -> CompiledPolicy {
    let action = if action == "action" {
        "action".to_owned()
    } else {
        format!("action in {action}")
    };
    let mut text = format!(
        "@id({})\n{effect} (\n  {principal},\n  {action},\n  {resource}\n)",
        quote(id)
    );
    let mut embedded = None;
    if let Some(c) = cond {
        let _ = write!(text, "\nwhen {{\n  {c}\n}}");
    }
    if let Some((expr, span)) = when {
        text.push_str("\nwhen {\n  ");
        let start = text.len();
        text.push_str(expr);
        embedded = Some((start..text.len(), span));
        text.push_str("\n}");
    }
    text.push(';');
    CompiledPolicy {
        id: id.to_owned(),
        text,
        origin,
        describe,
        embedded,
    }
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
