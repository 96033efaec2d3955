//! Property tests of the role compiler: random role models, written as `roles.toml` text beside
//! a fixed schema, built in memory into a `Snapshot`, and asked random requests. Every decision
//! (and its reasons) must equal a small reference evaluator written straight from the rules
//! documented at the top of `roles/compile.rs`, not from the Cedar it emits.
//!
//! The models hold roles with unique ranks and `manages` lists, account types with role
//! subsets, features with `roles`, `own`, `addon_roles`, `account_types`, `any_company` and a
//! `when` condition, flags with `owned_only` and `max_rank`, and permission groups; the
//! requests vary the users' companies (with a sub-company), roles, activity, flags, add-ons
//! and groups, the action, the record and its owner, the target user, and the role and flags
//! an assignment gives.
//!
//! Half the models rely on the default Cedar names (`Portal::User`...), half declare others in
//! a `[cedar]` section (namespace `Shop`, users `Member`, roles `Position`, companies
//! `Tenant`); role, feature, flag and account type names hold spaces, dots, dashes and colons,
//! so quoting and naming are exercised too. One snapshot serves [`REQUESTS_PER_MODEL`]
//! requests; the number of models is `PROPTEST_CASES` (default [`DEFAULT_MODELS`]), split
//! between the two naming variants (two tests, which run in parallel). See
//! `engine/benches/README.md` for longer runs.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use portcullis_engine::facts::{CompanyFacts, UserFacts};
use portcullis_engine::{AuthzQuery, EntityRef, Outcome, Snapshot, SourceFile, SourceSet};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{json, Map, Value};

/// Models generated per run, unless `PROPTEST_CASES` says otherwise.
const DEFAULT_MODELS: u32 = 400;
/// Requests decided under each generated model.
const REQUESTS_PER_MODEL: usize = 25;

const ROLE_NAMES: [&str; 6] = [
    "owner",
    "admin",
    "team lead",
    "ops.viewer",
    "sub-admin",
    "x:guest",
];
/// Account types a company may have; a model declares a prefix of them, so the rest are
/// types the model does not know.
const TYPE_NAMES: [&str; 4] = ["customer", "carrier", "t 2", "zz"];
/// Feature names; a model declares a prefix, so users may hold add-ons nobody declared.
const FEATURE_NAMES: [&str; 7] = ["reports", "f.1", "edit records", "f-3", "f:4", "f5", "undeclared"];
/// Flag names; a model declares a prefix, so users may carry unknown flags.
const FLAG_NAMES: [&str; 4] = ["isolated", "junior", "g 2", "unknown"];
/// Permission group names; a model declares a prefix.
const GROUP_NAMES: [&str; 2] = ["staff", "group.1"];

const RECORD_ACTIONS: [&str; 3] = ["rec.read", "rec.edit", "rec.delete"];
const ASSIGN_ACTIONS: [&str; 2] = ["usr.create", "usr.set_role"];
const MANAGE_ACTIONS: [&str; 2] = ["usr.edit", "usr.delete"];

/// The schema, with `__NS__`, `__USER__`, `__ROLE__` and `__COMPANY__` for the names.
const SCHEMA: &str = r#"namespace __NS__ {
  entity __ROLE__;
  entity __COMPANY__ in [__COMPANY__] = { account_type: String };
  entity __USER__ in [__ROLE__, __COMPANY__] = {
    company: __COMPANY__,
    role: __ROLE__,
    active: Bool,
    flags: Set<String>,
    addons: Set<String>,
    group_features: Set<String>,
  };
  entity Record in [__COMPANY__] = { owner: __USER__ };
  entity Note in [__COMPANY__];

  action "rec.read", "rec.edit", "rec.delete"
    appliesTo { principal: __USER__, resource: [Record, Note], context: {} };
  action "usr.create", "usr.set_role"
    appliesTo { principal: __USER__, resource: __USER__, context: { role: __ROLE__, flags: Set<String> } };
  action "usr.edit", "usr.delete"
    appliesTo { principal: __USER__, resource: __USER__, context: {} };
}
"#;

/// The Cedar names of a folder: the defaults, or others declared in `[cedar]`.
#[derive(Debug, Clone, Copy)]
struct Naming {
    ns: &'static str,
    user: &'static str,
    role: &'static str,
    company: &'static str,
    /// Written out in a `[cedar]` section (else the defaults apply).
    declared: bool,
}

/// No `[cedar]` section: `Portal::User`, `Portal::Role`, `Portal::Company`.
const DEFAULT_NAMES: Naming = Naming {
    ns: "Portal",
    user: "User",
    role: "Role",
    company: "Company",
    declared: false,
};

/// `[cedar]` names every type differently.
const CUSTOM_NAMES: Naming = Naming {
    ns: "Shop",
    user: "Member",
    role: "Position",
    company: "Tenant",
    declared: true,
};

impl Naming {
    fn ty(&self, t: &str) -> String {
        format!("{}::{t}", self.ns)
    }

    fn schema(&self) -> String {
        SCHEMA
            .replace("__NS__", self.ns)
            .replace("__USER__", self.user)
            .replace("__ROLE__", self.role)
            .replace("__COMPANY__", self.company)
    }

    fn cedar_section(&self) -> String {
        if !self.declared {
            return String::new();
        }
        format!(
            "[cedar]\nnamespace = {:?}\nuser_type = {:?}\nrole_type = {:?}\ncompany_type = {:?}\n\n",
            self.ns, self.user, self.role, self.company
        )
    }
}

fn all_actions() -> Vec<&'static str> {
    RECORD_ACTIONS
        .iter()
        .chain(&ASSIGN_ACTIONS)
        .chain(&MANAGE_ACTIONS)
        .copied()
        .collect()
}

fn bit(mask: u32, i: usize) -> bool {
    mask >> i & 1 == 1
}

/// The names of `names` selected by `mask`, among the first `n`.
fn pick<'a>(names: &[&'a str], n: usize, mask: u32) -> Vec<&'a str> {
    (0..n.min(names.len()))
        .filter(|i| bit(mask, *i))
        .map(|i| names[i])
        .collect()
}

// ---- the generated model ------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RoleDef {
    /// Rank before it is made unique: `base * 8 + index`.
    base: i64,
    /// Over the model's roles.
    manages: u32,
    change_own_role: bool,
}

#[derive(Debug, Clone)]
struct FeatureDef {
    /// Over `all_actions()`, never empty.
    actions: u32,
    roles: u32,
    own: u32,
    addon_roles: u32,
    any_company: bool,
    /// `when = 'principal.company.account_type == "<TYPE_NAMES[i]>"'`.
    when_type: Option<usize>,
    /// The feature's `account_types`, over the model's declared account types (every type
    /// when none is selected).
    account_types: u32,
}

#[derive(Debug, Clone)]
struct FlagDef {
    owned_only: bool,
    max_rank: Option<i64>,
}

#[derive(Debug, Clone)]
struct Model {
    roles: Vec<RoleDef>,
    /// One role mask per declared account type (`TYPE_NAMES[i]`).
    account_types: Vec<u32>,
    features: Vec<FeatureDef>,
    flags: Vec<FlagDef>,
    /// One feature mask per declared permission group (`GROUP_NAMES[i]`).
    groups: Vec<u32>,
    /// Over `ASSIGN_ACTIONS`.
    assign: u32,
    /// Over `MANAGE_ACTIONS`.
    manage: u32,
}

impl Model {
    fn n_roles(&self) -> usize {
        self.roles.len()
    }

    fn role_name(&self, i: usize) -> &'static str {
        ROLE_NAMES[i % self.n_roles()]
    }

    fn rank(&self, i: usize) -> i64 {
        let i = i % self.n_roles();
        self.roles[i].base * 8 + i as i64
    }

    fn roles_in(&self, mask: u32) -> Vec<&'static str> {
        pick(&ROLE_NAMES, self.n_roles(), mask)
    }

    /// The declared account types selected by `mask`.
    fn types_in(&self, mask: u32) -> Vec<&'static str> {
        pick(&TYPE_NAMES, self.account_types.len(), mask)
    }

    fn features_in(&self, mask: u32) -> Vec<&'static str> {
        pick(&FEATURE_NAMES, self.features.len(), mask)
    }

    fn role_index(&self, name: &str) -> usize {
        ROLE_NAMES.iter().position(|r| *r == name).unwrap_or(0)
    }

    fn assign_actions(&self) -> Vec<&'static str> {
        pick(&ASSIGN_ACTIONS, ASSIGN_ACTIONS.len(), self.assign)
    }

    fn manage_actions(&self) -> Vec<&'static str> {
        pick(&MANAGE_ACTIONS, MANAGE_ACTIONS.len(), self.manage)
    }

    /// The `roles.toml` text of the model.
    fn roles_toml(&self, names: Naming) -> String {
        let list = |names: &[&str]| {
            let v: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!("[{}]", v.join(", "))
        };
        let mut t = String::new();
        t.push_str(&names.cedar_section());
        let _ = writeln!(
            t,
            "[management]\nassign_actions = {}\nmanage_actions = {}\n",
            list(&self.assign_actions()),
            list(&self.manage_actions())
        );
        for (i, mask) in self.account_types.iter().enumerate() {
            let _ = writeln!(
                t,
                "[account_types.{:?}]\nroles = {}\n",
                TYPE_NAMES[i],
                list(&self.roles_in(*mask))
            );
        }
        for (i, r) in self.roles.iter().enumerate() {
            let _ = writeln!(
                t,
                "[roles.{:?}]\nrank = {}\nmanages = {}\nchange_own_role = {}\n",
                ROLE_NAMES[i],
                self.rank(i),
                list(&self.roles_in(r.manages)),
                r.change_own_role
            );
        }
        let actions = all_actions();
        for (i, f) in self.features.iter().enumerate() {
            let _ = writeln!(
                t,
                "[features.{:?}]\ntitle = \"Feature {i}\"\nactions = {}\nroles = {}\nown = {}\naddon_roles = {}\nany_company = {}\naccount_types = {}",
                FEATURE_NAMES[i],
                list(&pick(&actions, actions.len(), f.actions)),
                list(&self.roles_in(f.roles)),
                list(&self.roles_in(f.own)),
                list(&self.roles_in(f.addon_roles)),
                f.any_company,
                list(&self.types_in(f.account_types))
            );
            if let Some(ty) = f.when_type {
                let _ = writeln!(
                    t,
                    "when = 'principal.company.account_type == \"{}\"'",
                    TYPE_NAMES[ty]
                );
            }
            t.push('\n');
        }
        for (i, f) in self.flags.iter().enumerate() {
            let _ = writeln!(t, "[flags.{:?}]\nowned_only = {}", FLAG_NAMES[i], f.owned_only);
            if let Some(max) = f.max_rank {
                let _ = writeln!(t, "max_rank = {max}");
            }
            t.push('\n');
        }
        for (i, mask) in self.groups.iter().enumerate() {
            let _ = writeln!(
                t,
                "[permission_groups.{:?}]\nfeatures = {}\ndefault = {}\n",
                GROUP_NAMES[i],
                list(&self.features_in(*mask)),
                i == 0
            );
        }
        t
    }
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let role = (-3i64..10, any::<u8>(), prop::bool::weighted(0.7)).prop_map(|(base, m, c)| RoleDef {
        base,
        manages: u32::from(m),
        change_own_role: c,
    });
    let feature = (
        1u32..(1 << 7),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.3, 0usize..TYPE_NAMES.len()),
        // Half the features hold every account type; the rest a random subset.
        prop_oneof![Just(0u32), 0u32..(1 << TYPE_NAMES.len())],
    )
        .prop_map(
            |(actions, roles, own, addon, any_company, when_type, account_types)| FeatureDef {
                actions,
                roles: u32::from(roles),
                own: u32::from(own),
                addon_roles: u32::from(addon),
                any_company,
                when_type,
                account_types,
            },
        );
    let flag = (prop::bool::weighted(0.5), prop::option::weighted(0.6, -30i64..85))
        .prop_map(|(owned_only, max_rank)| FlagDef { owned_only, max_rank });
    (
        prop::collection::vec(role, 1..=ROLE_NAMES.len()),
        prop::collection::vec(any::<u8>().prop_map(u32::from), 0..=3),
        prop::collection::vec(feature, 0..=6),
        prop::collection::vec(flag, 0..=3),
        prop::collection::vec(any::<u8>().prop_map(u32::from), 0..=GROUP_NAMES.len()),
        0u32..4,
        0u32..4,
    )
        .prop_map(
            |(roles, account_types, features, flags, groups, assign, manage)| Model {
                roles,
                account_types,
                features,
                flags,
                groups,
                assign,
                manage,
            },
        )
}

// ---- the generated request ----------------------------------------------------------------

#[derive(Debug, Clone)]
struct UserDef {
    company: usize,
    /// Modulo the model's roles.
    role: usize,
    active: bool,
    /// Over `FLAG_NAMES`.
    flags: u32,
    /// Over `FEATURE_NAMES`.
    addons: u32,
    /// Index into `GROUP_NAMES`; none when the model does not declare it.
    group: Option<usize>,
}

#[derive(Debug, Clone)]
struct Req {
    /// The account type of companies `c0`, `c1`, `c2` (`TYPE_NAMES[i]`).
    company_types: [usize; 3],
    /// `c1` is a sub-company of `c0`.
    c1_in_c0: bool,
    principal: UserDef,
    other: UserDef,
    /// Index into `all_actions()`.
    action: usize,
    /// Record actions: a `Note` (no owner) instead of a `Record`.
    note: bool,
    record_company: usize,
    /// The record's owner is the principal (else the other user).
    owned: bool,
    /// User actions: the target is the principal itself (else the other user).
    target_self: bool,
    /// Assign actions: the resulting role (modulo the model's roles) and flags.
    context_role: usize,
    context_flags: u32,
}

fn user_strategy() -> impl Strategy<Value = UserDef> {
    (
        0usize..3,
        0usize..ROLE_NAMES.len(),
        prop::bool::weighted(0.9),
        0u32..(1 << FLAG_NAMES.len()),
        0u32..(1 << FEATURE_NAMES.len()),
        prop::option::of(0usize..GROUP_NAMES.len()),
    )
        .prop_map(|(company, role, active, flags, addons, group)| UserDef {
            company,
            role,
            active,
            flags,
            addons,
            group,
        })
}

fn request_strategy() -> impl Strategy<Value = Req> {
    let n_types = TYPE_NAMES.len();
    (
        (
            [0..n_types, 0..n_types, 0..n_types],
            any::<bool>(),
            user_strategy(),
            user_strategy(),
        ),
        (
            0usize..all_actions().len(),
            prop::bool::weighted(0.25),
            prop::sample::select(vec![0usize, 0, 1, 2]),
            any::<bool>(),
            prop::bool::weighted(0.3),
            0usize..ROLE_NAMES.len(),
            0u32..(1 << FLAG_NAMES.len()),
        ),
    )
        .prop_map(
            |(
                (company_types, c1_in_c0, principal, other),
                (action, note, record_company, owned, target_self, context_role, context_flags),
            )| Req {
                company_types,
                c1_in_c0,
                principal,
                other,
                action,
                note,
                record_company,
                owned,
                target_self,
                context_role,
                context_flags,
            },
        )
}

// ---- the request, resolved against a model ------------------------------------------------

/// A user as the reference sees it.
struct User {
    id: &'static str,
    company: usize,
    role: &'static str,
    active: bool,
    flags: Vec<&'static str>,
    addons: Vec<&'static str>,
    group: Option<&'static str>,
}

enum Resource {
    /// A record with an owner, or a note (`owner` is `None`).
    Record {
        note: bool,
        company: usize,
        owner: Option<&'static str>,
    },
    /// A user: the principal (`p`) or the other user (`o`).
    User { id: &'static str },
}

struct World<'a> {
    names: Naming,
    model: &'a Model,
    req: &'a Req,
    p: User,
    o: User,
    action: &'static str,
    resource: Resource,
    context_role: &'static str,
    context_flags: Vec<&'static str>,
}

impl<'a> World<'a> {
    fn new(names: Naming, model: &'a Model, req: &'a Req) -> Self {
        let user = |id: &'static str, u: &UserDef| User {
            id,
            company: u.company,
            role: model.role_name(u.role),
            active: u.active,
            flags: pick(&FLAG_NAMES, FLAG_NAMES.len(), u.flags),
            addons: pick(&FEATURE_NAMES, FEATURE_NAMES.len(), u.addons),
            group: u
                .group
                .filter(|g| *g < model.groups.len())
                .map(|g| GROUP_NAMES[g]),
        };
        let action = all_actions()[req.action % all_actions().len()];
        let resource = if RECORD_ACTIONS.contains(&action) {
            Resource::Record {
                note: req.note,
                company: req.record_company,
                owner: (!req.note).then_some(if req.owned { "p" } else { "o" }),
            }
        } else {
            Resource::User {
                id: if req.target_self { "p" } else { "o" },
            }
        };
        World {
            names,
            model,
            req,
            p: user("p", &req.principal),
            o: user("o", &req.other),
            action,
            resource,
            context_role: model.role_name(req.context_role),
            context_flags: pick(&FLAG_NAMES, FLAG_NAMES.len(), req.context_flags),
        }
    }

    fn is_assign(&self) -> bool {
        ASSIGN_ACTIONS.contains(&self.action)
    }

    fn company_type(&self, c: usize) -> &'static str {
        TYPE_NAMES[self.req.company_types[c]]
    }

    /// `company` is `of`, or a sub-company of it (Cedar's `in`).
    fn company_in(&self, company: usize, of: usize) -> bool {
        company == of || (self.req.c1_in_c0 && company == 1 && of == 0)
    }

    fn target(&self) -> Option<&User> {
        match self.resource {
            Resource::User { id: "p" } => Some(&self.p),
            Resource::User { .. } => Some(&self.o),
            Resource::Record { .. } => None,
        }
    }

    /// The company the resource belongs to.
    fn resource_company(&self) -> usize {
        match &self.resource {
            Resource::Record { company, .. } => *company,
            Resource::User { .. } => self.target().map_or(0, |t| t.company),
        }
    }

    fn resource_owner(&self) -> Option<&'static str> {
        match &self.resource {
            Resource::Record { owner, .. } => *owner,
            Resource::User { .. } => None,
        }
    }

    /// The documented semantics of `roles.toml`, rule by rule: the decision and the ids of the
    /// policies that decide it (the forbids of a deny, the permits of an allow).
    fn reference(&self) -> (Outcome, BTreeSet<String>) {
        let m = self.model;
        let p = &self.p;
        let p_rank = m.rank(m.role_index(p.role));
        let p_type = self.company_type(p.company);
        let mut forbids = BTreeSet::new();
        let mut permits = BTreeSet::new();

        // Always: deactivated users are denied everything.
        if !p.active {
            forbids.insert("core.deactivated".to_owned());
        }
        // Account types: a user cannot hold a role its company's account type does not allow,
        // and a user of such a company cannot be given one.
        for (i, mask) in m.account_types.iter().enumerate() {
            let allowed = m.roles_in(*mask);
            if p_type == TYPE_NAMES[i] && !allowed.contains(&p.role) {
                forbids.insert(format!("account_type.{}", TYPE_NAMES[i]));
            }
        }
        // Flags: owned-only users act only on records they own; a max-rank flag caps the rank
        // a user may hold.
        for (i, fl) in m.flags.iter().enumerate() {
            let name = FLAG_NAMES[i];
            if !p.flags.contains(&name) {
                continue;
            }
            if fl.owned_only && self.resource_owner().is_some_and(|o| o != p.id) {
                forbids.insert(format!("flag.{name}.owned-only"));
            }
            if fl.max_rank.is_some_and(|max| p_rank > max) {
                forbids.insert(format!("flag.{name}.max-rank"));
            }
        }
        // Assignments: the resulting role and flags must fit the target's account type and
        // the flags' max rank; some roles may not change their own role.
        if m.assign_actions().contains(&self.action) {
            let t = self.target();
            let given = self.context_role;
            let given_rank = m.rank(m.role_index(given));
            if let Some(t) = t {
                let t_type = self.company_type(t.company);
                for (i, mask) in m.account_types.iter().enumerate() {
                    if t_type == TYPE_NAMES[i] && !m.roles_in(*mask).contains(&given) {
                        forbids.insert(format!("account_type.{}.assign", TYPE_NAMES[i]));
                    }
                }
                let p_role = &m.roles[m.role_index(p.role)];
                if !p_role.change_own_role && t.id == p.id && given != p.role {
                    forbids.insert(format!("role.{}.own-role", p.role));
                }
            }
            for (i, fl) in m.flags.iter().enumerate() {
                let name = FLAG_NAMES[i];
                if self.context_flags.contains(&name) && fl.max_rank.is_some_and(|max| given_rank > max) {
                    forbids.insert(format!("flag.{name}.max-rank.assign"));
                }
            }
        }

        // Features: roles everywhere in the company, own on owned records, add-ons granted one
        // by one; the company rule unless `any_company`, and the `when` condition.
        let actions = all_actions();
        for (i, f) in m.features.iter().enumerate() {
            let name = FEATURE_NAMES[i];
            if !pick(&actions, actions.len(), f.actions).contains(&self.action) {
                continue;
            }
            let tenancy = f.any_company || self.company_in(self.resource_company(), p.company);
            let when = f.when_type.is_none_or(|t| TYPE_NAMES[t] == p_type);
            // The feature's account types: every type when it lists none.
            let kinds = m.types_in(f.account_types);
            let kind = kinds.is_empty() || kinds.contains(&p_type);
            if !(tenancy && when && kind) {
                continue;
            }
            if m.roles_in(f.roles).contains(&p.role) {
                permits.insert(format!("feature.{name}"));
            }
            if m.roles_in(f.own).contains(&p.role) && self.resource_owner() == Some(p.id) {
                permits.insert(format!("feature.{name}.own"));
            }
            if m.roles_in(f.addon_roles).contains(&p.role) && p.addons.contains(&name) {
                permits.insert(format!("feature.{name}.addon"));
            }
            // Permission groups: members hold the group's features, whatever their role.
            let in_group = p.group.is_some_and(|g| {
                let i = GROUP_NAMES.iter().position(|x| *x == g).unwrap_or(0);
                m.features_in(m.groups[i]).contains(&name)
            });
            if in_group {
                permits.insert(format!("feature.{name}.group"));
            }
        }
        // Management: a role gives and manages the roles it `manages`, in its own company.
        let managed = m.roles_in(m.roles[m.role_index(p.role)].manages);
        if let Some(t) = self.target() {
            let same_company = self.company_in(t.company, p.company);
            if same_company && managed.contains(&t.role) {
                if m.assign_actions().contains(&self.action) && managed.contains(&self.context_role) {
                    permits.insert(format!("role.{}.assign", p.role));
                }
                if m.manage_actions().contains(&self.action) {
                    permits.insert(format!("role.{}.manage", p.role));
                }
            }
        }

        if !forbids.is_empty() {
            (Outcome::Deny, forbids)
        } else if !permits.is_empty() {
            (Outcome::Allow, permits)
        } else {
            (Outcome::Deny, BTreeSet::new())
        }
    }

    /// The request with its entity slice, users and companies built through `facts`.
    fn query(&self, snap: &Snapshot) -> AuthzQuery {
        let mut entities = Vec::new();
        for c in 0..3 {
            let facts = CompanyFacts {
                account_type: self.company_type(c).to_owned(),
                parent: (c == 1 && self.req.c1_in_c0).then(|| "c0".to_owned()),
                attrs: Default::default(),
                active_roles: None,
            };
            entities.push(snap.company_entity(&format!("c{c}"), &facts));
        }
        for u in [&self.p, &self.o] {
            let facts = UserFacts {
                company: format!("c{}", u.company),
                role: u.role.to_owned(),
                active: u.active,
                flags: u.flags.iter().map(|s| (*s).to_owned()).collect(),
                addons: u.addons.iter().map(|s| (*s).to_owned()).collect(),
                group: u.group.map(str::to_owned),
                attrs: Default::default(),
                login: None,
                accessible: Vec::new(),
            };
            entities.push(snap.user_entity(u.id, &facts));
        }
        let resource = match &self.resource {
            Resource::Record { note, company, owner } => {
                let (ty, id) = if *note { ("Note", "n1") } else { ("Record", "r1") };
                let attrs = match owner {
                    Some(o) => {
                        json!({ "owner": { "__entity": { "type": self.names.ty(self.names.user), "id": o } } })
                    }
                    None => json!({}),
                };
                entities.push(json!({
                    "uid": { "type": self.names.ty(ty), "id": id },
                    "attrs": attrs,
                    "parents": [{ "type": self.names.ty(self.names.company), "id": format!("c{company}") }],
                }));
                EntityRef::Object {
                    ty: ty.to_owned(),
                    id: id.to_owned(),
                }
            }
            Resource::User { id } => EntityRef::Text(format!("{}::\"{id}\"", self.names.ty(self.names.user))),
        };
        let mut context = Map::new();
        if self.is_assign() {
            context.insert(
                "role".to_owned(),
                json!({ "__entity": { "type": self.names.ty(self.names.role), "id": self.context_role } }),
            );
            context.insert("flags".to_owned(), json!(self.context_flags));
        }
        AuthzQuery {
            explain: false,
            principal: EntityRef::Text("p".to_owned()),
            action: EntityRef::Text(self.action.to_owned()),
            resource,
            context,
            entities: entities.into_iter().collect::<Vec<Value>>(),
        }
    }
}

fn build(names: Naming, model: &Model) -> Result<Snapshot, String> {
    let text = model.roles_toml(names);
    let sources = SourceSet {
        roles: Some(SourceFile {
            path: "roles.toml".to_owned(),
            text: text.clone(),
        }),
        schema: Some(SourceFile {
            path: "schema.cedarschema".to_owned(),
            text: names.schema(),
        }),
        ..SourceSet::default()
    };
    Snapshot::build(sources).map_err(|d| format!("{}\n--- roles.toml ---\n{text}", d.render_human("")))
}

/// Builds the model's snapshot and checks every request against the reference.
fn check(names: Naming, model: &Model, requests: &[Req]) -> Result<(), TestCaseError> {
    let snap = build(names, model).map_err(TestCaseError::fail)?;
    for req in requests {
        let world = World::new(names, model, req);
        let query = world.query(&snap);
        let decision = snap
            .prepare(&query)
            .map(|p| snap.decide(&p))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{req:?}")))?;
        prop_assert!(
            decision.errors.is_empty(),
            "evaluation errors: {:?}",
            decision.errors
        );
        let got: BTreeSet<String> = decision.reason_ids().into_iter().map(str::to_owned).collect();
        let (outcome, reasons) = world.reference();
        prop_assert_eq!(
            (decision.decision, &got),
            (outcome, &reasons),
            "\n--- roles.toml ---\n{}\n--- request ---\n{:#?}\n--- entities ---\n{}",
            model.roles_toml(names),
            req,
            serde_json::to_string_pretty(&query.entities).unwrap_or_default()
        );
    }
    Ok(())
}

/// Models per naming variant: half of `PROPTEST_CASES`, or of `DEFAULT_MODELS`.
fn models() -> u32 {
    let total = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MODELS);
    total.div_ceil(2)
}

proptest! {
    #![proptest_config(Config {
        cases: models(),
        // Paths are relative to the package root, where `cargo test` runs; commit any file a
        // failure leaves there, so the case is replayed first from then on.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/integration/proptest-regressions/property.txt",
        ))),
        ..Config::default()
    })]

    /// Compiled Cedar decides as the documented semantics say, reasons included, in a folder
    /// that relies on the default Cedar names.
    #[test]
    fn compiled_policies_decide_as_the_reference_default_names(
        model in model_strategy(),
        requests in prop::collection::vec(request_strategy(), REQUESTS_PER_MODEL),
    ) {
        check(DEFAULT_NAMES, &model, &requests)?;
    }

    /// The same, in a folder whose `[cedar]` section renames every type.
    #[test]
    fn compiled_policies_decide_as_the_reference_custom_names(
        model in model_strategy(),
        requests in prop::collection::vec(request_strategy(), REQUESTS_PER_MODEL),
    ) {
        check(CUSTOM_NAMES, &model, &requests)?;
    }
}

/// The kind of rule a policy id stands for, e.g. `flag.*.max-rank.assign`.
fn rule_kind(id: &str) -> String {
    let (prefix, _) = id.split_once('.').unwrap_or((id, ""));
    let suffixes = [
        ".max-rank.assign",
        ".owned-only",
        ".max-rank",
        ".assign",
        ".manage",
        ".own-role",
        ".own",
        ".addon",
        ".group",
    ];
    match suffixes.iter().find(|s| id.ends_with(*s)) {
        _ if prefix == "core" => id.to_owned(),
        Some(s) => format!("{prefix}.*{s}"),
        None => format!("{prefix}.*"),
    }
}

/// The generator covers what it should: every kind of rule decides some generated request.
#[test]
fn generated_requests_reach_every_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let model = model_strategy().new_tree(&mut runner).unwrap().current();
        for _ in 0..REQUESTS_PER_MODEL {
            let req = request_strategy().new_tree(&mut runner).unwrap().current();
            let (outcome, reasons) = World::new(DEFAULT_NAMES, &model, &req).reference();
            seen.insert(format!("{outcome:?}"));
            seen.extend(reasons.iter().map(|r| rule_kind(r)));
        }
    }
    for expected in [
        "Allow",
        "Deny",
        "core.deactivated",
        "feature.*",
        "feature.*.own",
        "feature.*.addon",
        "feature.*.group",
        "role.*.assign",
        "role.*.manage",
        "role.*.own-role",
        "account_type.*",
        "account_type.*.assign",
        "flag.*.owned-only",
        "flag.*.max-rank",
        "flag.*.max-rank.assign",
    ] {
        assert!(seen.contains(expected), "`{expected}` never decides: {seen:?}");
    }
}
