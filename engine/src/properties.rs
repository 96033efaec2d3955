//! The property files of a policy folder (`properties/*.toml`): claims about every request of
//! some kinds, which `portcullis verify` proves with a solver (in the server crate: the engine
//! stays free of processes and runtimes). This module reads and checks them against the folder's
//! schema (`file:line:col` errors) and says, per request kind, what each assumes of the store.
//!
//! Input: the folder's files and its [`Snapshot`]. Output: [`Property`]s, each with its request
//! kinds ([`RequestEnv`]s) and its [`Claim`].

use std::path::Path;

use cedar_policy::{Policy, PolicyId, PolicySet, RequestEnv};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spanned::Spanned;
use crate::Snapshot;

/// The folder's sub-folder of property files.
pub const PROPERTIES_DIR: &str = "properties";

/// One property file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portcullis property file (properties/*.toml)")]
pub struct PropertyFile {
    /// A Cedar condition every property of the file assumes of its requests.
    #[serde(default)]
    pub assuming: Option<String>,
    /// The properties.
    #[serde(default)]
    pub property: Vec<Spanned<PropertySpec>>,
}

/// A property as written: the request kinds it speaks of and exactly one claim.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertySpec {
    /// What it says, in the product's words.
    pub name: String,
    /// The principal type (`User` or `Portal::User`); every principal type when left out.
    #[serde(default)]
    pub principal: Option<String>,
    /// Action ids (`shipment.read`); every action when empty.
    #[serde(default)]
    pub actions: Vec<String>,
    /// The resource type; every resource type when left out.
    #[serde(default)]
    pub resource: Option<String>,
    /// Claim: every such request is allowed, or every one denied.
    #[serde(default)]
    pub always: Option<Always>,
    /// Claim: every allowed request meets this Cedar condition (`resource.owner == principal`).
    #[serde(default)]
    pub implies: Option<String>,
    /// Claim: no policy errors on any such request.
    #[serde(default)]
    pub never_errors: bool,
    /// Claim: this folder allows nothing that another version of it denies: a folder (a path
    /// relative to this one, `../released`) or a git revision of this folder (`git:v1.4`).
    #[serde(default)]
    pub no_wider_than: Option<String>,
    /// Claim: this folder decides every such request as another version of it does (a folder
    /// or `git:REV`, as for `no_wider_than`).
    #[serde(default)]
    pub equivalent_to: Option<String>,
    /// A Cedar condition the claim assumes of its requests, beside the file's.
    #[serde(default)]
    pub assuming: Option<String>,
}

/// `always = "allow"` or `always = "deny"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Always {
    /// Every request of the kinds is allowed.
    Allow,
    /// Every request of the kinds is denied.
    Deny,
}

/// What a property claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Every request is allowed, or every one denied.
    Always(Always),
    /// Every allowed request meets the condition.
    Implies(String),
    /// No policy errors.
    NeverErrors,
    /// Nothing allowed that the other version (a folder path or `git:REV`) denies.
    NoWiderThan(String),
    /// Every request decided as the other version decides it.
    EquivalentTo(String),
}

impl Claim {
    /// The other version of the folder the claim compares with, if any.
    pub fn other(&self) -> Option<&str> {
        match self {
            Claim::NoWiderThan(o) | Claim::EquivalentTo(o) => Some(o),
            _ => None,
        }
    }
}

/// A property ready to prove.
#[derive(Debug, Clone)]
pub struct Property {
    /// What it says.
    pub name: String,
    /// Where it is written (`properties/isolation.toml:3:1`), or `built-in`.
    pub source: String,
    /// The request kinds it is about.
    pub envs: Vec<RequestEnv>,
    /// What it claims of each.
    pub claim: Claim,
    /// What it assumes of the requests besides what the store keeps true (Cedar conditions).
    pub assuming: Vec<String>,
}

/// The built-in properties every folder gets without writing anything: no request errors, and
/// from `roles.toml`: an account type's users never hold the roles it does not allow, and no
/// role gives or manages a role ranked above it.
pub fn built_in(snapshot: &Snapshot) -> Vec<Property> {
    let envs: Vec<RequestEnv> = snapshot.schema().request_envs().collect();
    let mut out = vec![Property {
        name: "no request of any action errors".to_owned(),
        source: "built-in".to_owned(),
        envs: envs.clone(),
        claim: Claim::NeverErrors,
        assuming: Vec::new(),
    }];
    let Some(m) = snapshot.model() else {
        return out;
    };
    let qualify = |t: &str| qualified(snapshot, t);
    let user_type = qualify(&m.cedar.user_type);
    let role = |r: &str| format!("{}::{}", qualify(&m.cedar.role_type), quoted(r));
    let roles = |names: &[&str]| {
        format!(
            "[{}]",
            names.iter().map(|r| role(r)).collect::<Vec<_>>().join(", ")
        )
    };
    let source = format!("built-in, {}", m.file);
    let of_users = |actions: &[crate::roles::raw::Name]| -> Vec<RequestEnv> {
        envs.iter()
            .filter(|e| e.principal().to_string() == user_type)
            .filter(|e| actions.is_empty() || actions.iter().any(|a| a.value == e.action().id().unescaped()))
            .cloned()
            .collect()
    };
    for at in &m.account_types {
        let excluded: Vec<&str> = m
            .roles
            .iter()
            .filter(|r| !at.roles.contains(&r.name))
            .map(|r| r.name.as_str())
            .collect();
        if excluded.is_empty() {
            continue;
        }
        out.push(Property {
            name: format!("{} users never hold the roles {}", at.title, excluded.join(", ")),
            source: source.clone(),
            envs: of_users(&[]),
            claim: Claim::Always(Always::Deny),
            assuming: vec![format!(
                "principal.company.account_type == {} && principal in {}",
                quoted(&at.name),
                roles(&excluded)
            )],
        });
    }
    for r in &m.roles {
        let above: Vec<&str> = m
            .roles
            .iter()
            .filter(|o| o.rank > r.rank)
            .map(|o| o.name.as_str())
            .collect();
        if above.is_empty() {
            continue;
        }
        for (actions, what, attr) in [
            (&m.assign_actions, "gives", "context.role"),
            (&m.manage_actions, "manages users of", "resource.role"),
        ] {
            let kinds: Vec<RequestEnv> = of_users(actions)
                .into_iter()
                .filter(|e| !actions.is_empty() && e.resource().to_string() == user_type)
                .collect();
            if kinds.is_empty() {
                continue;
            }
            out.push(Property {
                name: format!(
                    "role {} never {what} a role ranked above it ({})",
                    r.name,
                    above.join(", ")
                ),
                source: source.clone(),
                envs: kinds,
                claim: Claim::Implies(format!("!{}.contains({attr})", roles(&above))),
                assuming: vec![format!("principal in {}", role(&r.name))],
            });
        }
    }
    out
}

/// A type name in the folder's namespace unless it names its own (`User`, `Portal::User`).
fn qualified(snapshot: &Snapshot, t: &str) -> String {
    if t.contains("::") {
        t.to_owned()
    } else {
        crate::snapshot::qualify(snapshot.namespace(), t)
    }
}

/// A Cedar string literal.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Reads `properties/*.toml` of a folder (none when it has no such sub-folder); every problem
/// of every file as `file:line:col: message`.
pub fn load(folder: &Path, snapshot: &Snapshot) -> Result<Vec<Property>, Vec<String>> {
    let dir = folder.join(PROPERTIES_DIR);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(vec![format!("{PROPERTIES_DIR}: cannot read the folder: {e}")]),
    };
    files.sort();
    let mut properties = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let name = format!(
            "{PROPERTIES_DIR}/{}",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{name}: cannot read it: {e}"));
                continue;
            }
        };
        match parse(&name, &text, snapshot) {
            Ok(mut p) => properties.append(&mut p),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(properties)
    } else {
        Err(errors)
    }
}

/// `line:col` (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses one property file; errors as `file:line:col: message`.
pub fn parse(file: &str, text: &str, snapshot: &Snapshot) -> Result<Vec<Property>, Vec<String>> {
    let parsed: PropertyFile = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        vec![format!("{file}:{line}:{col}: {}", e.message())]
    })?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for spanned in parsed.property {
        let (line, col) = line_col(text, spanned.span.start);
        let at = format!("{file}:{line}:{col}");
        let spec = &spanned.value;
        match property(spec, snapshot) {
            Ok((envs, claim)) => out.push(Property {
                name: spec.name.clone(),
                source: at,
                envs,
                claim,
                assuming: parsed.assuming.iter().chain(&spec.assuming).cloned().collect(),
            }),
            Err(m) => errors.push(format!("{at}: property `{}`: {m}", spec.name)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The request kinds and the claim of a written property.
fn property(p: &PropertySpec, snapshot: &Snapshot) -> Result<(Vec<RequestEnv>, Claim), String> {
    let claims = usize::from(p.always.is_some())
        + usize::from(p.implies.is_some())
        + usize::from(p.never_errors)
        + usize::from(p.no_wider_than.is_some())
        + usize::from(p.equivalent_to.is_some());
    if claims != 1 {
        return Err(
            "expected exactly one claim: `always = \"allow\" | \"deny\"`, `implies = \"<Cedar condition>\"`, `never_errors = true`, `no_wider_than = \"<folder or git:REV>\"` or `equivalent_to = \"<folder or git:REV>\"`"
                .to_owned(),
        );
    }
    let schema = snapshot.schema();
    let qualify = |t: &str| qualified(snapshot, t);
    let principals: Vec<String> = schema.principals().map(ToString::to_string).collect();
    let resources: Vec<String> = schema.resources().map(ToString::to_string).collect();
    let principal = p.principal.as_deref().map(qualify);
    let resource = p.resource.as_deref().map(qualify);
    for (what, given, known) in [
        ("principal", &principal, &principals),
        ("resource", &resource, &resources),
    ] {
        if let Some(t) = given {
            if !known.contains(t) {
                return Err(format!(
                    "unknown {what} type `{t}`; the schema's {what} types are {}",
                    known.join(", ")
                ));
            }
        }
    }
    let actions: Vec<String> = schema.actions().map(|a| a.id().unescaped().to_owned()).collect();
    for a in &p.actions {
        if !actions.contains(a) {
            let mut m = format!("unknown action `{a}`");
            if let Some(close) = crate::diag::did_you_mean(a, actions.iter().map(String::as_str)) {
                m.push_str(&format!("; did you mean `{close}`?"));
            }
            return Err(m);
        }
    }
    let envs: Vec<RequestEnv> = schema
        .request_envs()
        .filter(|e| principal.as_ref().is_none_or(|t| &e.principal().to_string() == t))
        .filter(|e| resource.as_ref().is_none_or(|t| &e.resource().to_string() == t))
        .filter(|e| p.actions.is_empty() || p.actions.iter().any(|a| a == e.action().id().unescaped()))
        .collect();
    if envs.is_empty() {
        return Err("no action of the schema applies to this principal and resource type".to_owned());
    }
    if let Some(a) = &p.assuming {
        condition(a).map_err(|e| format!("`assuming` is not a Cedar condition: {e}"))?;
    }
    let claim = if let Some(a) = p.always {
        Claim::Always(a)
    } else if let Some(cond) = &p.implies {
        condition(cond).map_err(|e| format!("`implies` is not a Cedar condition: {e}"))?;
        Claim::Implies(cond.clone())
    } else if let Some(other) = &p.no_wider_than {
        Claim::NoWiderThan(other.clone())
    } else if let Some(other) = &p.equivalent_to {
        Claim::EquivalentTo(other.clone())
    } else {
        Claim::NeverErrors
    };
    Ok((envs, claim))
}

/// A Cedar condition as a one-permit policy set (`permit … when { condition };`).
pub fn condition(cond: &str) -> Result<PolicySet, String> {
    let text = format!("permit(principal, action, resource) when {{ {cond} }};");
    let policy = Policy::parse(Some(PolicyId::new("condition")), &text).map_err(|e| e.to_string())?;
    let mut set = PolicySet::new();
    set.add(policy).map_err(|e| e.to_string())?;
    Ok(set)
}

/// What every request of a kind is assumed to meet: what the store keeps true of a user (it is
/// a member of its `company`, and of its `role` and no other role of roles.toml), for the
/// principal and for a resource that is a user, and the property's own assumptions.
pub fn assumptions(snapshot: &Snapshot, env: &RequestEnv, written: &[String]) -> Option<String> {
    let mut parts: Vec<String> = written.iter().map(|a| format!("({a})")).collect();
    if let Some(m) = snapshot.model() {
        let qualify = |t: &str| qualified(snapshot, t);
        let user_type = qualify(&m.cedar.user_type);
        let role_type = qualify(&m.cedar.role_type);
        let company_type = qualify(&m.cedar.company_type);
        let attrs = snapshot.user_attributes();
        let is_user = |ty: &cedar_policy::EntityTypeName| ty.to_string() == user_type;
        for (var, ty, other, other_ty) in [
            ("principal", env.principal(), "resource", env.resource()),
            ("resource", env.resource(), "principal", env.principal()),
        ] {
            if !is_user(ty) {
                continue;
            }
            if attrs.contains("company") {
                parts.push(format!("{var} in {var}.company"));
                // A user is in a company exactly when its company is (its one company parent
                // and that company's enterprise), asked of the companies the request names.
                let mut companies = Vec::new();
                if is_user(other_ty) {
                    companies.push(format!("{other}.company"));
                } else if other_ty.to_string() == company_type {
                    companies.push(other.to_owned());
                }
                for c in companies {
                    parts.push(format!("(({var} in {c}) == ({var}.company in {c}))"));
                }
            }
            if attrs.contains("role") {
                for r in &m.roles {
                    let role = format!("{role_type}::{:?}", r.name);
                    parts.push(format!("(({var} in {role}) == ({var}.role == {role}))"));
                }
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(" && "))
}
