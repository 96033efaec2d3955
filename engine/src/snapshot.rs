//! `Snapshot`: one immutable, validated build of a policy folder.
//!
//! Input: a `SourceSet`. The schema is parsed first; then `roles.toml` is checked and compiled,
//! the `.cedar` files are parsed, every policy gets its id and its origin, and the whole set is
//! validated against the schema in strict mode. Output: a `Snapshot` (policies, schema, role
//! model, version, load time), or every diagnostic of the build. A snapshot never changes; a
//! reload builds a new one and swaps it in whole.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use cedar_policy::{Authorizer, PolicyId, PolicySet, Schema, SchemaFragment, ValidationMode, Validator};
use serde::Serialize;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::roles::compile::{self, CompiledPolicy, RESERVED_PREFIXES};
use crate::roles::model::RoleModel;
use crate::source::{SourceFile, SourceSet, ROLES_FILE, SCHEMA_FILE};

/// Permit or forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// A `permit` policy.
    Permit,
    /// A `forbid` policy.
    Forbid,
}

/// What is known about one policy of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyInfo {
    /// The policy id: its `@id`, or `file:line` when it has none.
    pub id: String,
    /// Permit or forbid.
    pub effect: Effect,
    /// Where it comes from: the `.cedar` file, or the `roles.toml` item it was compiled from.
    pub file: String,
    /// 1-based line of that place.
    pub line: usize,
    /// 1-based column of that place.
    pub column: usize,
    /// True when compiled from `roles.toml`.
    pub compiled: bool,
    /// True for templates (linked at run time, e.g. visitor grants).
    pub template: bool,
    /// The rule it implements, for compiled policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe: Option<String>,
    /// Cedar source.
    #[serde(skip)]
    pub text: String,
}

/// A validated policy folder, ready to decide.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) version: Arc<str>,
    pub(crate) loaded_at: SystemTime,
    pub(crate) sources: SourceSet,
    pub(crate) schema: Schema,
    /// The schema with its entity types described once, for parsing entities.
    described: crate::described::DescribedSchema,
    pub(crate) policies: PolicySet,
    pub(crate) info: HashMap<PolicyId, Arc<PolicyInfo>>,
    pub(crate) model: Option<RoleModel>,
    /// The namespace of the folder's types: `roles.toml`'s, else the schema's when all its
    /// entity types share one, else `Portal`.
    namespace: String,
    pub(crate) warnings: Diagnostics,
    pub(crate) user_attrs: BTreeSet<String>,
    pub(crate) company_attrs: BTreeSet<String>,
    /// Context attribute names per action uid text.
    contexts: HashMap<String, BTreeSet<String>>,
    /// Context attributes with their kinds per action uid text, for forms.
    context_fields: HashMap<String, Vec<ContextField>>,
    /// Attribute names per qualified entity type.
    attrs: HashMap<String, BTreeSet<String>>,
    /// Entity types of entity-valued attributes, by (entity type, attribute).
    entity_attrs: HashMap<(String, String), String>,
    /// Entity types of entity-valued context attributes, by attribute name.
    context_entities: HashMap<String, String>,
    /// Entity and action type names of the schema, for resolving references without a scan.
    pub(crate) type_names: HashMap<String, cedar_policy::EntityTypeName>,
    pub(crate) action_uids: std::collections::HashSet<cedar_policy::EntityUid>,
    /// Per action, only the policies whose action scope can match it: the authorizer then
    /// evaluates a handful of policies per request instead of the whole folder.
    pub(crate) by_action: HashMap<cedar_policy::EntityUid, PolicySet>,
    pub(crate) authorizer: Authorizer,
    /// How far the policies can look into the entities (what a slice must hold).
    pub(crate) reach: crate::reach::Reach,
}

impl Snapshot {
    /// Builds a snapshot from the files of a folder.
    pub fn build(sources: SourceSet) -> Result<Snapshot, Diagnostics> {
        let mut diags = Diagnostics::default();
        let Some(schema_file) = sources.schema.as_ref() else {
            diags.push(
                Diagnostic::error(
                    "schema::missing",
                    format!("the policy folder has no `{SCHEMA_FILE}`"),
                )
                .with_help("every policy folder declares its entity types and actions in a Cedar schema"),
            );
            return Err(diags);
        };
        let schema = match Schema::from_cedarschema_str(&schema_file.text) {
            Ok((schema, _warnings)) => schema,
            Err(e) => {
                push_cedar(&mut diags, "schema::invalid", &e, &|span| {
                    Location::new(&schema_file.path, &schema_file.text, span)
                });
                return Err(diags);
            }
        };
        let shapes = SchemaShapes::read(&schema_file.text);

        let mut model = None;
        let mut compiled = Vec::new();
        let mut warnings = Diagnostics::default();
        if let Some(roles) = &sources.roles {
            match RoleModel::parse(&roles.path, &roles.text) {
                Ok((m, w)) => {
                    warnings.extend(w);
                    check_conventions(&m, &schema, roles, &mut diags);
                    check_stored_attributes(&m, &shapes, schema_file, &mut diags);
                    let actions = action_ids(&schema, &m.cedar.namespace);
                    match compile::compile(&m, &actions, &roles.text) {
                        Ok(c) => compiled = c,
                        Err(d) => diags.extend(d),
                    }
                    model = Some(m);
                }
                Err(d) => diags.extend(d),
            }
        }

        let mut set = PolicySet::new();
        let mut info: HashMap<PolicyId, Arc<PolicyInfo>> = HashMap::new();
        let mut compiled_by_id: HashMap<String, &CompiledPolicy> = HashMap::new();
        let roles_file = sources.roles.as_ref();
        let parsed = parse_compiled(&compiled);
        for (c, parsed) in compiled.iter().zip(parsed) {
            match parsed {
                Ok(p) => {
                    if let Err(e) = set.add(p) {
                        diags.push(Diagnostic::error("roles::compile", e.to_string()).at(c.origin.clone()));
                        continue;
                    }
                    info.insert(
                        PolicyId::new(&c.id),
                        Arc::new(PolicyInfo {
                            id: c.id.clone(),
                            effect: if c.text.contains("\nforbid (") {
                                Effect::Forbid
                            } else {
                                Effect::Permit
                            },
                            file: c.origin.file.clone(),
                            line: c.origin.line,
                            column: c.origin.column,
                            compiled: true,
                            template: false,
                            describe: Some(c.describe.clone()),
                            text: c.text.clone(),
                        }),
                    );
                    compiled_by_id.insert(c.id.clone(), c);
                }
                Err(e) => {
                    if let Some(rf) = roles_file {
                        push_cedar(&mut diags, "roles::when", &*e, &|span| {
                            compiled_location(c, rf, span)
                        });
                    }
                }
            }
        }

        let mut file_of: HashMap<String, &SourceFile> = HashMap::new();
        for f in &sources.cedar {
            add_cedar_file(f, &mut set, &mut info, &mut diags);
            file_of.insert(f.path.clone(), f);
        }

        // Validate what did parse, so one run reports syntax and type errors together.
        let validator = Validator::new(schema.clone());
        let (to_validate, groups) = validation_set(&schema, &set, &compiled_by_id, !shapes.has_enums);
        let action_uids: std::collections::HashSet<cedar_policy::EntityUid> =
            schema.actions().cloned().collect();
        // The per-action index is built on a second core while the validator runs; it is
        // only kept if the folder validates.
        let (first, by_action) = std::thread::scope(|scope| {
            let index = scope.spawn(|| index_by_action(&schema, &set, &action_uids));
            let first = validator.validate(&to_validate, ValidationMode::Strict);
            (first, index.join().ok())
        });
        // A representative that fails sends its whole group through the validator, so every
        // member's own error is reported.
        let failing: std::collections::HashSet<&PolicyId> =
            first.validation_errors().map(|e| e.policy_id()).collect();
        let mut retry = PolicySet::new();
        let mut retried = std::collections::HashSet::new();
        for (rep, members) in &groups {
            if failing.contains(rep) && members.len() > 1 {
                retried.insert(rep.clone());
                for m in members {
                    let _ = retry.add(m.clone());
                }
            }
        }
        let mut errors: Vec<cedar_policy::ValidationError> = first
            .validation_errors()
            .filter(|e| !retried.contains(e.policy_id()))
            .cloned()
            .collect();
        let warnings_found: Vec<cedar_policy::ValidationWarning> =
            first.validation_warnings().cloned().collect();
        if !retried.is_empty() {
            errors.extend(
                validator
                    .validate(&retry, ValidationMode::Strict)
                    .validation_errors()
                    .cloned(),
            );
        }
        for e in &errors {
            let id = e.policy_id().to_string();
            let locate = |span: Range<usize>| -> Location {
                if let Some(c) = compiled_by_id.get(&id) {
                    if let Some(rf) = roles_file {
                        return compiled_location(c, rf, span);
                    }
                }
                match info.get(e.policy_id()).and_then(|i| file_of.get(&i.file)) {
                    Some(f) => Location::new(&f.path, &f.text, span),
                    None => Location::file_only(ROLES_FILE),
                }
            };
            let code = if compiled_by_id.contains_key(&id) {
                "roles::invalid"
            } else {
                "cedar::invalid"
            };
            let before = diags.0.len();
            push_cedar(&mut diags, code, e, &locate);
            if let Some(c) = compiled_by_id.get(&id) {
                for d in &mut diags.0[before..] {
                    d.message = format!("{} (in the policy compiled for: {})", d.message, c.describe);
                }
            }
        }
        for w in &warnings_found {
            let id = w.policy_id().to_string();
            if compiled_by_id.contains_key(&id) {
                continue;
            }
            let Some(f) = info.get(w.policy_id()).and_then(|i| file_of.get(&i.file)) else {
                continue;
            };
            let before = diags.0.len();
            push_cedar(&mut diags, "cedar::warning", w, &|span| {
                Location::new(&f.path, &f.text, span)
            });
            for d in &mut diags.0[before..] {
                d.severity = crate::diag::Severity::Warning;
            }
        }
        if diags.has_errors() {
            diags.extend(warnings);
            return Err(diags);
        }
        warnings.extend(diags);

        let fallback_ns = schema_namespace(&schema);
        let (ns, user, company) = match &model {
            Some(m) => (
                m.cedar.namespace.as_str(),
                m.cedar.user_type.as_str(),
                m.cedar.company_type.as_str(),
            ),
            None => (fallback_ns.as_str(), "User", "Company"),
        };
        let namespace = ns.to_owned();
        let user_attrs = shapes.attrs_of(&qualify(ns, user));
        let company_attrs = shapes.attrs_of(&qualify(ns, company));
        let contexts = shapes.contexts;
        let context_fields = shapes.context_fields;
        let attrs = shapes.attrs;
        let entity_attrs = shapes.entity_attrs;
        let context_entities = shapes.context_entities;
        let mut type_names: HashMap<String, cedar_policy::EntityTypeName> = schema
            .entity_types()
            .map(|t| (t.to_string(), t.clone()))
            .collect();
        for a in &action_uids {
            type_names.insert(a.type_name().to_string(), a.type_name().clone());
        }
        let by_action = by_action.unwrap_or_else(|| index_by_action(&schema, &set, &action_uids));
        let version: Arc<str> = Arc::from(sources.version());
        let reach = crate::reach::Reach::of(&set);
        Ok(Snapshot {
            version,
            loaded_at: SystemTime::now(),
            sources,
            described: crate::described::DescribedSchema::new(&schema),
            schema,
            policies: set,
            info,
            model,
            namespace,
            warnings,
            user_attrs,
            company_attrs,
            contexts,
            context_fields,
            attrs,
            entity_attrs,
            context_entities,
            type_names,
            action_uids,
            by_action,
            authorizer: Authorizer::new(),
            reach,
        })
    }

    /// The content hash of the policy files.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The version as a shared string, cheap to clone into every decision.
    pub fn version_arc(&self) -> Arc<str> {
        self.version.clone()
    }

    /// When this snapshot was built.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// The files it was built from.
    pub fn sources(&self) -> &SourceSet {
        &self.sources
    }

    /// The Cedar schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The Cedar schema, described for parsing entities ([`crate::described`]).
    pub fn described(&self) -> &crate::described::DescribedSchema {
        &self.described
    }

    /// Every policy and template, compiled and hand-written.
    pub fn policy_set(&self) -> &PolicySet {
        &self.policies
    }

    /// How far the policies can look into the entities: what a slice of them must hold.
    pub fn reach(&self) -> &crate::reach::Reach {
        &self.reach
    }

    /// The role model, when the folder has a `roles.toml`.
    pub fn model(&self) -> Option<&RoleModel> {
        self.model.as_ref()
    }

    /// Warnings of the build.
    pub fn warnings(&self) -> &Diagnostics {
        &self.warnings
    }

    /// What is known about a policy.
    pub fn policy_info(&self, id: &PolicyId) -> Option<&Arc<PolicyInfo>> {
        self.info.get(id)
    }

    /// Every policy, sorted by id.
    pub fn policies(&self) -> Vec<&Arc<PolicyInfo>> {
        let mut v: Vec<_> = self.info.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The Cedar namespace of the folder's entity types.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Attribute names the schema declares for the entity type `ty` (qualified); `None` for
    /// a type the schema does not declare.
    pub fn entity_attributes(&self, ty: &str) -> Option<&BTreeSet<String>> {
        self.attrs.get(ty)
    }

    /// Context attribute names the schema declares for `action`; `None` for an action the
    /// schema does not declare.
    pub fn context_attributes(&self, action: &cedar_policy::EntityUid) -> Option<&BTreeSet<String>> {
        self.contexts.get(&action.to_string())
    }

    /// Attribute names the schema declares for users.
    pub fn user_attributes(&self) -> &BTreeSet<String> {
        &self.user_attrs
    }

    /// Attribute names the schema declares for companies.
    pub fn company_attributes(&self) -> &BTreeSet<String> {
        &self.company_attrs
    }

    /// The entity type of an entity-valued attribute the schema declares (e.g. the
    /// `CustomerProfile` of a user's `active_customer`), qualified.
    pub fn attribute_entity_type(&self, ty: &str, attr: &str) -> Option<&str> {
        self.entity_attrs
            .get(&(ty.to_owned(), attr.to_owned()))
            .map(String::as_str)
    }

    /// The entity type of the context attribute `attr`, when an action's context declares it
    /// as an entity.
    pub fn context_entity_type(&self, attr: &str) -> Option<&str> {
        self.context_entities.get(attr).map(String::as_str)
    }

    /// The context attributes the schema declares for `action`, with their kinds (for forms
    /// that build a request's context); empty for an action without context.
    pub fn context_fields(&self, action: &cedar_policy::EntityUid) -> &[ContextField] {
        self.context_fields
            .get(&action.to_string())
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the context type of `action` declares the attribute `attr` (so the server may
    /// add what a session knows, such as `mfa_verified`, without failing validation).
    pub fn context_declares(&self, action: &cedar_policy::EntityUid, attr: &str) -> bool {
        self.contexts
            .get(&action.to_string())
            .is_some_and(|attrs| attrs.contains(attr))
    }
}

/// Splits the static policies by the actions their scope can match (action groups followed),
/// in one pass over the policies.
fn index_by_action(
    schema: &Schema,
    set: &PolicySet,
    actions: &std::collections::HashSet<cedar_policy::EntityUid>,
) -> HashMap<cedar_policy::EntityUid, PolicySet> {
    use cedar_policy::{ActionConstraint, EntityUid};
    // Each action and group, mapped to the actions it stands for.
    let mut members: HashMap<EntityUid, Vec<EntityUid>> = HashMap::new();
    let hierarchy = schema.action_entities().ok();
    for action in actions {
        members.entry(action.clone()).or_default().push(action.clone());
        if let Some(anc) = hierarchy.as_ref().and_then(|h| h.ancestors(action)) {
            for group in anc {
                members.entry(group.clone()).or_default().push(action.clone());
            }
        }
    }
    let mut out: HashMap<EntityUid, PolicySet> =
        actions.iter().map(|a| (a.clone(), PolicySet::new())).collect();
    for p in set.policies() {
        let targets: Vec<&EntityUid> = match p.action_constraint() {
            ActionConstraint::Any => actions.iter().collect(),
            ActionConstraint::Eq(a) => members.get(&a).map(|m| m.iter().collect()).unwrap_or_default(),
            ActionConstraint::In(list) => {
                let mut t: Vec<&EntityUid> = list.iter().filter_map(|a| members.get(a)).flatten().collect();
                t.sort();
                t.dedup();
                t
            }
        };
        for a in targets {
            if let Some(sub) = out.get_mut(a) {
                // Ids are unique in `set`, so adding to a subset cannot fail.
                let _ = sub.add(p.clone());
            }
        }
    }
    out
}

/// The policies to hand the validator. Compiled policies that differ only in names
/// (quoted strings: roles, actions, features) and whose actions apply to the same principal
/// and resource types type-check alike, so one of each such group stands for the rest; a
/// folder of 1,000 features validates a few dozen policies. Returns the set and the members
/// of each representative's group. Schemas with enumerated entity types, where a name can
/// matter to the validator, get no grouping.
fn validation_set(
    schema: &Schema,
    set: &PolicySet,
    compiled: &HashMap<String, &CompiledPolicy>,
    grouping: bool,
) -> (PolicySet, HashMap<PolicyId, Vec<cedar_policy::Policy>>) {
    let mut out = PolicySet::new();
    for t in set.templates() {
        let _ = out.add_template(t.clone());
    }
    let mut groups: HashMap<String, (PolicyId, Vec<cedar_policy::Policy>)> = HashMap::new();
    for p in set.policies() {
        let id = p.id().to_string();
        let key = match compiled.get(&id) {
            Some(c) if grouping => Some(shape_key(schema, p, &c.text)),
            _ => None,
        };
        match key {
            Some(k) => {
                let entry = groups.entry(k).or_insert_with(|| {
                    let _ = out.add(p.clone());
                    (p.id().clone(), Vec::new())
                });
                entry.1.push(p.clone());
            }
            None => {
                let _ = out.add(p.clone());
            }
        }
    }
    (out, groups.into_values().collect())
}

fn shape_key(schema: &Schema, p: &cedar_policy::Policy, text: &str) -> String {
    use cedar_policy::ActionConstraint;
    // The text with every string literal emptied.
    let mut key = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
                key.push('"');
            }
            continue;
        }
        if ch == '"' {
            in_string = true;
        }
        key.push(ch);
    }
    let actions = match p.action_constraint() {
        ActionConstraint::Any => Vec::new(),
        ActionConstraint::Eq(a) => vec![a],
        ActionConstraint::In(list) => list,
    };
    let mut sigs: Vec<String> = actions
        .iter()
        .map(|a| {
            let mut ps: Vec<String> = schema
                .principals_for_action(a)
                .map(|i| i.map(ToString::to_string).collect())
                .unwrap_or_default();
            let mut rs: Vec<String> = schema
                .resources_for_action(a)
                .map(|i| i.map(ToString::to_string).collect())
                .unwrap_or_default();
            ps.sort();
            rs.sort();
            format!("{}->{}", ps.join("|"), rs.join("|"))
        })
        .collect();
    sigs.sort();
    sigs.dedup();
    let mut key = collapse_lists(&key);
    key.push('\n');
    key.push_str(&sigs.join(";"));
    key
}

/// `[A, A, A]` becomes `[A]`: a set literal types the same whatever its length.
fn collapse_lists(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(after);
            return out;
        };
        let inner = &after[..close];
        if inner.contains('[') {
            out.push_str(inner);
        } else {
            let mut items: Vec<&str> = inner.split(", ").collect();
            items.dedup();
            out.push_str(&items.join(", "));
        }
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

/// Parses the compiled policies, on as many threads as the machine has (parsing is most of
/// the cost of loading a large role model).
fn parse_compiled(
    compiled: &[CompiledPolicy],
) -> Vec<Result<cedar_policy::Policy, Box<cedar_policy::ParseErrors>>> {
    let parse = |c: &CompiledPolicy| {
        cedar_policy::Policy::parse(Some(PolicyId::new(&c.id)), &c.text).map_err(Box::new)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(8);
    if threads < 2 || compiled.len() < 64 {
        return compiled.iter().map(parse).collect();
    }
    let chunk = compiled.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = compiled
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(parse).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(compiled.len());
        for (h, part) in handles.into_iter().zip(compiled.chunks(chunk)) {
            // A parser thread cannot panic on any input; if it did, parse that part here.
            match h.join() {
                Ok(v) => out.extend(v),
                Err(_) => out.extend(part.iter().map(parse)),
            }
        }
        out
    })
}

/// `Namespace::Type`, or `Type` without a namespace.
/// The namespace every entity type of a folder without `roles.toml` shares (`Todo` for a
/// schema that is one `namespace Todo { ... }`); `Portal` when they share none or the empty one.
fn schema_namespace(schema: &Schema) -> String {
    let mut found: Option<String> = None;
    for t in schema.entity_types() {
        let full = t.to_string();
        let ns = full.rsplit_once("::").map_or("", |(ns, _)| ns).to_owned();
        match &found {
            None => found = Some(ns),
            Some(f) if *f == ns => {}
            Some(_) => return "Portal".to_owned(),
        }
    }
    found
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "Portal".to_owned())
}

pub(crate) fn qualify(ns: &str, t: &str) -> String {
    if ns.is_empty() {
        t.to_owned()
    } else {
        format!("{ns}::{t}")
    }
}

/// Action ids (without their type) the schema declares in a namespace.
pub(crate) fn action_ids(schema: &Schema, ns: &str) -> BTreeSet<String> {
    let ty = qualify(ns, "Action");
    schema
        .actions()
        .filter(|a| a.type_name().to_string() == ty)
        .map(|a| a.id().unescaped().to_owned())
        .collect()
}

/// The entity types named in `[cedar]` must exist in the schema.
fn check_conventions(m: &RoleModel, schema: &Schema, roles: &SourceFile, diags: &mut Diagnostics) {
    let declared: Vec<String> = schema.entity_types().map(ToString::to_string).collect();
    for (key, t) in [
        ("user_type", &m.cedar.user_type),
        ("role_type", &m.cedar.role_type),
        ("company_type", &m.cedar.company_type),
    ] {
        let full = qualify(&m.cedar.namespace, t);
        if !declared.contains(&full) {
            let at = roles.text.find("[cedar]").map_or(0..0, |i| i..i + 7);
            diags.push(
                Diagnostic::error(
                    "roles::unknown-entity-type",
                    format!("`cedar.{key}` names entity type `{full}`, which the schema does not declare"),
                )
                .at(Location::new(&roles.path, &roles.text, at))
                .suggest(&full, declared.iter().map(String::as_str)),
            );
        }
    }
}

/// Checks `[attributes.*]` against the schema: every attribute the schema requires of users
/// and companies beyond the core facts has a default or is `required` of a creation, every
/// declared one exists, and every default fits the attribute's type.
fn check_stored_attributes(
    m: &RoleModel,
    shapes: &SchemaShapes,
    schema_file: &SourceFile,
    diags: &mut Diagnostics,
) {
    let ns = m.cedar.namespace.as_str();
    for (kind, ty, declared, core) in [
        (
            "user",
            &m.cedar.user_type,
            &m.user_attributes,
            crate::facts::CORE_USER_ATTRS,
        ),
        (
            "company",
            &m.cedar.company_type,
            &m.company_attributes,
            crate::facts::CORE_COMPANY_ATTRS,
        ),
    ] {
        let full = qualify(ns, ty);
        let Some(attrs) = shapes.attrs.get(&full) else {
            continue;
        };
        for a in declared {
            if core.contains(&a.name.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "roles::core-attribute",
                        format!(
                            "`{}` is a core fact the user store keeps itself; remove \
                             `[attributes.{kind}.{}]`",
                            a.name, a.name
                        ),
                    )
                    .at(a.location.clone()),
                );
                continue;
            }
            let Some((schema_ty, _)) = shapes.attr_types.get(&(full.clone(), a.name.clone())) else {
                diags.push(
                    Diagnostic::error(
                        "roles::unknown-attribute",
                        format!(
                            "`[attributes.{kind}.{}]`: the schema declares no attribute `{}` of `{full}`",
                            a.name, a.name
                        ),
                    )
                    .at(a.location.clone())
                    .suggest(&a.name, attrs.iter().map(String::as_str)),
                );
                continue;
            };
            for (value, at) in &a.values {
                if let Err(why) = fits(value, schema_ty) {
                    diags.push(
                        Diagnostic::error(
                            "roles::attribute-value-type",
                            format!(
                                "an allowed value of {kind} attribute `{}` does not fit the schema: {why}",
                                a.name
                            ),
                        )
                        .at(at.clone()),
                    );
                }
            }
            if let Some(default) = &a.default {
                if let Err(why) = fits(default, schema_ty) {
                    diags.push(
                        Diagnostic::error(
                            "roles::attribute-default-type",
                            format!(
                                "the default of {kind} attribute `{}` does not fit the schema: {why}",
                                a.name
                            ),
                        )
                        .at(a.default_location.clone().unwrap_or_else(|| a.location.clone())),
                    );
                }
            }
        }
        for name in attrs {
            if core.contains(&name.as_str()) {
                continue;
            }
            let required = shapes
                .attr_types
                .get(&(full.clone(), name.clone()))
                .is_none_or(|(_, r)| *r);
            let given = declared
                .iter()
                .any(|a| a.name == *name && (a.default.is_some() || a.required || a.from.is_some()));
            if required && !given {
                let at = schema_attribute_span(&schema_file.text, ty, name);
                diags.push(
                    Diagnostic::error(
                        "roles::attribute-without-default",
                        format!(
                            "the schema requires {kind} attribute `{name}`, which the user store keeps, but \
                             roles.toml gives it no default: a new {kind} could not be stored"
                        ),
                    )
                    .at(Location::new(&schema_file.path, &schema_file.text, at))
                    .with_help(format!(
                        "add `[attributes.{kind}.{name}]` to roles.toml with `default = ...`, or \
                         `required = true` if every creation must give it"
                    )),
                );
            }
        }
    }
}

/// Where attribute `attr` of entity type `ty` is written in a schema's text (best effort: the
/// type's declaration, or the start of the file).
fn schema_attribute_span(text: &str, ty: &str, attr: &str) -> Range<usize> {
    let Some(start) = text.find(&format!("entity {ty}")) else {
        return 0..0;
    };
    let end = text[start..].find("};").map_or(text.len(), |e| start + e);
    let body = &text[start..end];
    let mut from = 0;
    while let Some(i) = body[from..].find(attr) {
        let at = from + i;
        let before = body[..at].chars().next_back();
        let after = body[at + attr.len()..].trim_start();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && (after.starts_with(':') || after.starts_with("?:"))
        {
            return start + at..start + at + attr.len();
        }
        from = at + attr.len();
    }
    start..start + 7 + ty.len()
}

/// Whether a Cedar JSON value fits a JSON-schema attribute type, as far as one value can show
/// (entity types of references are not resolved).
fn fits(v: &Value, ty: &Value) -> Result<(), String> {
    let mut kind = ty.get("type").and_then(Value::as_str).unwrap_or("");
    // The schema's JSON form leaves `Bool`, `Long` and `String` as names to resolve.
    if kind == "EntityOrCommon" {
        let name = ty.get("name").and_then(Value::as_str).unwrap_or("");
        kind = match name.trim_start_matches("__cedar::") {
            "Bool" => "Boolean",
            "Long" => "Long",
            "String" => "String",
            // An entity or a common type: a reference or a record, an object either way.
            _ if v.is_object() => return Ok(()),
            _ => "Entity",
        };
    }
    let ok = match kind {
        "Boolean" | "Bool" => v.is_boolean(),
        "Long" => v.is_i64(),
        "String" => v.is_string(),
        "Set" => {
            let Some(items) = v.as_array() else {
                return Err(format!("expected a set (a TOML array), found `{v}`"));
            };
            if let Some(element) = ty.get("element") {
                for item in items {
                    fits(item, element)?;
                }
            }
            true
        }
        "Entity" => v
            .get("__entity")
            .or(Some(v))
            .is_some_and(|e| e.get("type").is_some() && e.get("id").is_some()),
        "Record" => {
            let Some(map) = v.as_object() else {
                return Err(format!("expected a record (a TOML table), found `{v}`"));
            };
            for (name, t) in ty
                .get("attributes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                match map.get(name) {
                    Some(inner) => fits(inner, t)?,
                    None if t.get("required").and_then(Value::as_bool).unwrap_or(true) => {
                        return Err(format!("the record lacks `{name}`"))
                    }
                    None => {}
                }
            }
            true
        }
        // Common types, extension types: not followed here; Cedar checks the stored entity.
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let name = ty.get("name").and_then(Value::as_str).unwrap_or(kind);
        Err(format!("expected {name}, found `{v}`"))
    }
}

/// Where an error at `span` of a compiled policy's text belongs in `roles.toml`.
fn compiled_location(c: &CompiledPolicy, roles: &SourceFile, span: Range<usize>) -> Location {
    if let Some((in_text, toml_span)) = &c.embedded {
        if in_text.contains(&span.start) {
            // Offsets inside the expression carry over to the TOML string after its quote.
            let start = toml_span.start + 1 + (span.start - in_text.start);
            let end = (start + span.len()).min(toml_span.end);
            return Location::new(&roles.path, &roles.text, start.min(toml_span.end)..end);
        }
        return Location::new(&roles.path, &roles.text, toml_span.clone());
    }
    c.origin.clone()
}

/// Parses one `.cedar` file into the set, naming each policy by its `@id` or `file:line`.
fn add_cedar_file(
    f: &SourceFile,
    set: &mut PolicySet,
    info: &mut HashMap<PolicyId, Arc<PolicyInfo>>,
    diags: &mut Diagnostics,
) {
    let parsed = match PolicySet::from_str(&f.text) {
        Ok(p) => p,
        Err(e) => {
            push_cedar(diags, "cedar::syntax", &e, &|span| {
                Location::new(&f.path, &f.text, span)
            });
            return;
        }
    };
    // Policies and templates get ids `policy0`, `policy1`... in file order.
    let mut items: Vec<(usize, Item)> = Vec::new();
    for p in parsed.policies() {
        items.push((ordinal(p.id()), Item::Policy(p.clone())));
    }
    for t in parsed.templates() {
        items.push((ordinal(t.id()), Item::Template(t.clone())));
    }
    items.sort_by_key(|(n, _)| *n);
    let mut cursor = 0;
    for (_, item) in items {
        let (text, annotation, effect) = match &item {
            Item::Policy(p) => (p.to_cedar(), p.annotation("id").map(str::to_owned), p.effect()),
            Item::Template(t) => (
                Some(t.to_cedar()),
                t.annotation("id").map(str::to_owned),
                t.effect(),
            ),
        };
        let start = text
            .as_deref()
            .and_then(|t| f.text[cursor..].find(t.trim()).map(|i| cursor + i))
            .unwrap_or(cursor);
        if let Some(t) = &text {
            cursor = (start + t.trim().len()).min(f.text.len());
        }
        let loc = Location::new(&f.path, &f.text, start..start);
        let id = annotation
            .clone()
            .unwrap_or_else(|| format!("{}:{}", f.path, loc.line));
        if annotation.is_some() && RESERVED_PREFIXES.iter().any(|p| id.starts_with(p)) {
            diags.push(
                Diagnostic::error(
                    "cedar::reserved-id",
                    format!("policy id `{id}` uses a prefix reserved for policies compiled from roles.toml"),
                )
                .at(loc.clone())
                .with_help(format!(
                    "choose an id that does not start with {}",
                    RESERVED_PREFIXES.map(|p| format!("`{p}`")).join(", ")
                )),
            );
            continue;
        }
        let pid = PolicyId::new(&id);
        if let Some(other) = info.get(&pid) {
            diags.push(
                Diagnostic::error(
                    "cedar::duplicate-id",
                    format!(
                        "policy id `{id}` is already used at {}:{}",
                        other.file, other.line
                    ),
                )
                .at(loc.clone()),
            );
            continue;
        }
        let (added, template) = match item {
            Item::Policy(p) => (set.add(p.new_id(pid.clone())), false),
            Item::Template(t) => (set.add_template(t.new_id(pid.clone())), true),
        };
        if let Err(e) = added {
            diags.push(Diagnostic::error("cedar::invalid", e.to_string()).at(loc.clone()));
            continue;
        }
        info.insert(
            pid,
            Arc::new(PolicyInfo {
                id,
                effect: match effect {
                    cedar_policy::Effect::Permit => Effect::Permit,
                    cedar_policy::Effect::Forbid => Effect::Forbid,
                },
                file: f.path.clone(),
                line: loc.line,
                column: loc.column,
                compiled: false,
                template,
                describe: None,
                text: text.unwrap_or_default(),
            }),
        );
    }
}

enum Item {
    Policy(cedar_policy::Policy),
    Template(cedar_policy::Template),
}

fn ordinal(id: &PolicyId) -> usize {
    id.to_string()
        .trim_start_matches("policy")
        .parse()
        .unwrap_or(usize::MAX)
}

/// Turns a Cedar error (and the errors related to it) into diagnostics.
fn push_cedar(
    diags: &mut Diagnostics,
    code: &str,
    err: &dyn miette::Diagnostic,
    locate: &dyn Fn(Range<usize>) -> Location,
) {
    let related: Vec<&dyn miette::Diagnostic> = err.related().map(|r| r.collect()).unwrap_or_default();
    push_one(diags, code, err, locate);
    for r in related {
        push_one(diags, code, r, locate);
    }
}

fn push_one(
    diags: &mut Diagnostics,
    code: &str,
    err: &dyn miette::Diagnostic,
    locate: &dyn Fn(Range<usize>) -> Location,
) {
    let mut message = err.to_string();
    if let Some(first) = message.get(..1) {
        message = first.to_lowercase() + &message[1..];
    }
    let mut d = Diagnostic::error(code, message.trim_end_matches('.').to_owned());
    if let Some(label) = err.labels().and_then(|mut l| l.next()) {
        let span = label.offset()..label.offset() + label.len();
        d = d.at(locate(span));
    }
    if let Some(h) = err.help() {
        d = d.with_help(h.to_string());
    }
    diags.push(d);
}

/// One attribute of an action's context, as a form asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextField {
    /// The attribute.
    pub name: String,
    /// `Bool`, `Long`, `String`, `Entity`, or `Json` for anything else (sets, records,
    /// extension types).
    pub kind: &'static str,
    /// For `Entity`, its qualified type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// Whether a request must carry it.
    pub required: bool,
}

impl ContextField {
    fn of(name: &str, ty: &Value, ns: &str, entity_types: &HashMap<String, BTreeSet<String>>) -> Self {
        let required = ty.get("required").and_then(Value::as_bool).unwrap_or(true);
        let kind = ty.get("type").and_then(Value::as_str).unwrap_or_default();
        let named = ty.get("name").and_then(Value::as_str).unwrap_or_default();
        let bare = named.trim_start_matches("__cedar::");
        let (kind, entity_type) = match (kind, bare) {
            ("Boolean" | "Bool", _) | ("EntityOrCommon", "Bool" | "Boolean") => ("Bool", None),
            ("Long", _) | ("EntityOrCommon", "Long") => ("Long", None),
            ("String", _) | ("EntityOrCommon", "String") => ("String", None),
            ("Entity" | "EntityOrCommon", n) if !n.is_empty() => {
                let q = if n.contains("::") {
                    n.to_owned()
                } else {
                    qualify(ns, n)
                };
                if entity_types.contains_key(&q) {
                    ("Entity", Some(q))
                } else {
                    ("Json", None)
                }
            }
            _ => ("Json", None),
        };
        ContextField {
            name: name.to_owned(),
            kind,
            entity_type,
            required,
        }
    }
}

/// Attribute names per entity type, read from the schema text, and whether any entity type
/// is enumerated (or the schema could not be read that way, to be safe).
struct SchemaShapes {
    attrs: HashMap<String, BTreeSet<String>>,
    /// Context attribute names per action (qualified uid text, `Ns::Action::"name"`).
    contexts: HashMap<String, BTreeSet<String>>,
    /// The same with their kinds.
    context_fields: HashMap<String, Vec<ContextField>>,
    /// The entity type of entity-valued attributes: `(qualified type, attribute)` → qualified
    /// type of the value.
    entity_attrs: HashMap<(String, String), String>,
    /// Each attribute's JSON-schema type and whether it is required: `(qualified type,
    /// attribute)` → (type, required).
    attr_types: HashMap<(String, String), (Value, bool)>,
    /// The entity type of entity-valued context attributes, by attribute name (the first
    /// action that declares it).
    context_entities: HashMap<String, String>,
    has_enums: bool,
}

impl SchemaShapes {
    fn read(text: &str) -> Self {
        let mut out = Self {
            attrs: HashMap::new(),
            contexts: HashMap::new(),
            context_fields: HashMap::new(),
            entity_attrs: HashMap::new(),
            attr_types: HashMap::new(),
            context_entities: HashMap::new(),
            has_enums: true,
        };
        let Ok((fragment, _)) = SchemaFragment::from_cedarschema_str(text) else {
            return out;
        };
        let Ok(json) = fragment.to_json_value() else {
            return out;
        };
        let Some(namespaces) = json.as_object() else {
            return out;
        };
        out.has_enums = false;
        for (ns, body) in namespaces {
            let Some(types) = body.get("entityTypes").and_then(|t| t.as_object()) else {
                continue;
            };
            for (name, def) in types {
                out.has_enums |= def.get("enum").is_some();
                let declared = def.pointer("/shape/attributes").and_then(|a| a.as_object());
                let attrs = declared.map(|a| a.keys().cloned().collect()).unwrap_or_default();
                for (attr, ty) in declared.into_iter().flatten() {
                    let required = ty.get("required").and_then(Value::as_bool).unwrap_or(true);
                    out.attr_types
                        .insert((qualify(ns, name), attr.clone()), (ty.clone(), required));
                    let kind = ty.get("type").and_then(|t| t.as_str());
                    if let (Some("Entity" | "EntityOrCommon"), Some(target)) =
                        (kind, ty.get("name").and_then(|n| n.as_str()))
                    {
                        let target = if target.contains("::") {
                            target.to_owned()
                        } else {
                            qualify(ns, target)
                        };
                        out.entity_attrs.insert((qualify(ns, name), attr.clone()), target);
                    }
                }
                out.attrs.insert(qualify(ns, name), attrs);
            }
            let common = body.get("commonTypes").and_then(|t| t.as_object());
            let Some(actions) = body.get("actions").and_then(|t| t.as_object()) else {
                continue;
            };
            for (name, def) in actions {
                let Some(mut ctx) = def.pointer("/appliesTo/context") else {
                    continue;
                };
                // A context named by a common type (`context: Session`): follow the name.
                if let Some(named) = ctx
                    .get("name")
                    .or_else(|| ctx.get("type"))
                    .and_then(|n| n.as_str())
                    .filter(|n| *n != "Record")
                {
                    let bare = named.rsplit("::").next().unwrap_or(named);
                    if let Some(t) = common.and_then(|c| c.get(bare)) {
                        ctx = t;
                    }
                }
                let declared = ctx.get("attributes").and_then(|a| a.as_object());
                for (attr, ty) in declared.into_iter().flatten() {
                    let kind = ty.get("type").and_then(|t| t.as_str());
                    if let (Some("Entity" | "EntityOrCommon"), Some(target)) =
                        (kind, ty.get("name").and_then(|n| n.as_str()))
                    {
                        let target = if target.contains("::") {
                            target.to_owned()
                        } else {
                            qualify(ns, target)
                        };
                        // Entity types only (a common type's name is not one).
                        if out.attrs.contains_key(&target) {
                            out.context_entities.entry(attr.clone()).or_insert(target);
                        }
                    }
                }
                let attrs = declared.map(|a| a.keys().cloned().collect()).unwrap_or_default();
                let action_type = qualify(ns, "Action");
                let uid = format!("{action_type}::{}", Value::from(name.as_str()));
                let fields = declared
                    .into_iter()
                    .flatten()
                    .map(|(attr, ty)| ContextField::of(attr, ty, ns, &out.attrs))
                    .collect();
                out.context_fields.insert(uid.clone(), fields);
                out.contexts.insert(uid, attrs);
            }
        }
        out
    }

    fn attrs_of(&self, ty: &str) -> BTreeSet<String> {
        self.attrs.get(ty).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"namespace Portal {
  entity Role;
  entity Company = { account_type: String };
  entity User in [Role, Company] = { company: Company, role: Role, active: Bool, flags: Set<String>, addons: Set<String> };
  entity Doc in [Company];
  action "a", "b", "c" appliesTo { principal: User, resource: Doc, context: {} };
}"#;

    fn folder(roles: &str) -> SourceSet {
        SourceSet {
            roles: Some(SourceFile {
                path: "roles.toml".to_owned(),
                text: roles.to_owned(),
            }),
            schema: Some(SourceFile {
                path: SCHEMA_FILE.to_owned(),
                text: SCHEMA.to_owned(),
            }),
            ..SourceSet::default()
        }
    }

    /// Grouped validation: features of one shape are validated through one representative,
    /// and when it fails every member's error is still reported at its own TOML line.
    #[test]
    fn every_member_of_a_failing_shape_is_reported() {
        let mut roles = String::from("[roles.x]\nrank = 1\n[roles.y]\nrank = 2\n");
        for (i, action) in ["a", "b", "c"].iter().enumerate() {
            roles.push_str(&format!(
                "[features.f{i}]\ntitle = \"F\"\nactions = [\"{action}\"]\nroles = [\"x\"]\nwhen = 'principal.company.nope'\n"
            ));
        }
        let d = Snapshot::build(folder(&roles)).expect_err("the `when` reads an undeclared attribute");
        let mut lines: Vec<usize> = d
            .iter()
            .filter(|x| x.code == "roles::invalid")
            .map(|x| x.location.as_ref().map_or(0, |l| l.line))
            .collect();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 3, "{}", d.render_human(""));
    }

    #[test]
    fn valid_shapes_build_and_decide_through_the_index() {
        let mut roles = String::from("[roles.x]\nrank = 1\n[roles.y]\nrank = 2\n");
        for (i, action) in ["a", "b", "c"].iter().enumerate() {
            roles.push_str(&format!(
                "[features.f{i}]\ntitle = \"F\"\nactions = [\"{action}\"]\nroles = [\"x\"]\n"
            ));
        }
        let s = Snapshot::build(folder(&roles)).unwrap_or_else(|d| panic!("{}", d.render_human("")));
        assert_eq!(s.by_action.len(), 3);
        for set in s.by_action.values() {
            // Its own feature and `core.deactivated`.
            assert_eq!(set.policies().count(), 2);
        }
    }

    #[test]
    fn context_attributes_are_read_through_common_types() {
        let schema = r#"namespace Portal {
  entity Role;
  entity Company = { account_type: String };
  entity User in [Role, Company] = { company: Company, role: Role, active: Bool, flags: Set<String>, addons: Set<String> };
  entity Doc in [Company];
  type Session = { mfa_verified: Bool };
  action "a" appliesTo { principal: User, resource: Doc, context: Session };
  action "b" appliesTo { principal: User, resource: Doc, context: { reason: String, doc?: Doc, n: Long, tags: Set<String> } };
  action "c" appliesTo { principal: User, resource: Doc, context: {} };
}"#;
        let mut set = folder("[roles.x]\nrank = 1\n[sign_in]\nrequire_mfa_roles = [\"x\"]\n");
        if let Some(f) = set.schema.as_mut() {
            f.text = schema.to_owned();
        }
        let s = Snapshot::build(set).unwrap_or_else(|d| panic!("{}", d.render_human("")));
        let uid = |a: &str| cedar_policy::EntityUid::from_str(&format!("Portal::Action::\"{a}\"")).unwrap();
        assert!(s.context_declares(&uid("a"), "mfa_verified"));
        assert!(!s.context_declares(&uid("b"), "mfa_verified"));
        assert!(s.context_declares(&uid("b"), "reason"));
        assert!(!s.context_declares(&uid("c"), "mfa_verified"));
        let kinds = |a: &str| -> Vec<(String, &str, Option<String>, bool)> {
            s.context_fields(&uid(a))
                .iter()
                .map(|f| (f.name.clone(), f.kind, f.entity_type.clone(), f.required))
                .collect()
        };
        assert_eq!(kinds("a"), vec![("mfa_verified".to_owned(), "Bool", None, true)]);
        assert_eq!(
            kinds("b"),
            vec![
                ("doc".to_owned(), "Entity", Some("Portal::Doc".to_owned()), false),
                ("n".to_owned(), "Long", None, true),
                ("reason".to_owned(), "String", None, true),
                ("tags".to_owned(), "Json", None, true),
            ]
        );
        assert!(kinds("c").is_empty());
        assert_eq!(
            s.model().map(|m| m.sign_in.require_mfa_roles.clone()),
            Some(vec!["x".to_owned()])
        );
    }

    #[test]
    fn sign_in_settings_are_checked() {
        let bad =
            "[roles.admin]\nrank = 1\n[sign_in]\nlockout_attempts = 0\nrequire_mfa_roles = [\"admn\"]\n";
        let d = Snapshot::build(folder(bad)).expect_err("invalid settings are refused");
        let text = d.render_human("");
        assert!(text.contains("`sign_in.lockout_attempts` is 0"), "{text}");
        assert!(text.contains("unknown role `admn`"), "{text}");
        assert!(text.contains("admin"), "{text}");
    }

    const STORED_SCHEMA: &str = r#"namespace Portal {
  entity Role;
  entity Company = { account_type: String, plan: Set<String> };
  entity User in [Role, Company] = { company: Company, role: Role, active: Bool, flags: Set<String>, addons: Set<String>,
    scope_all: Bool, places: Set<Company>, nickname?: String };
  action "a" appliesTo { principal: User, resource: Company, context: {} };
}"#;

    fn stored_folder(roles: &str) -> SourceSet {
        let mut f = folder(&format!("[roles.x]\nrank = 1\n{roles}"));
        if let Some(schema) = f.schema.as_mut() {
            schema.text = STORED_SCHEMA.to_owned();
        }
        f
    }

    fn codes(d: &Diagnostics) -> Vec<(String, usize)> {
        d.iter()
            .map(|x| (x.code.clone(), x.location.as_ref().map_or(0, |l| l.line)))
            .collect()
    }

    /// Every attribute the schema requires beyond the core facts needs a default, `required`
    /// or `from`; each missing one is reported at its line in the schema.
    #[test]
    fn required_attributes_without_a_default_are_reported_in_the_schema() {
        let d = Snapshot::build(stored_folder("")).expect_err("three attributes lack a default");
        let mut found = codes(&d);
        found.sort();
        let expected = |line| ("roles::attribute-without-default".to_owned(), line);
        // `plan` (line 3), `scope_all` and `places` (line 5); the optional `nickname` needs none.
        assert_eq!(
            found,
            vec![expected(3), expected(5), expected(5)],
            "{}",
            d.render_human("")
        );

        let ok = "[attributes.user.scope_all]\ndefault = false\n[attributes.user.places]\nfrom = \"accessible_companies\"\n\
                  [attributes.company.plan]\nrequired = true\n";
        let s = Snapshot::build(stored_folder(ok))
            .map_err(|d| d.render_human(""))
            .expect("every attribute is given");
        assert_eq!(s.stored_user_attributes().len(), 2);
        assert_eq!(s.stored_company_attributes()[0].name, "plan");
    }

    /// `[audit] decisions` names actions of the schema; another name is an error at its place.
    #[test]
    fn audited_decisions_name_actions_of_the_schema() {
        let s = Snapshot::build(folder(
            "[roles.x]\nrank = 1\n[audit]\ndecisions = [\"a\", \"c\"]\n",
        ))
        .map_err(|d| d.render_human(""))
        .expect("known actions");
        let audited: Vec<_> = s
            .model()
            .map(|m| m.audited.iter().map(|n| n.value.clone()).collect())
            .unwrap_or_default();
        assert_eq!(audited, ["a", "c"]);
        let d = Snapshot::build(folder(
            "[roles.x]\nrank = 1\n[audit]\ndecisions = [\"a\", \"bb\"]\n",
        ))
        .expect_err("an unknown action");
        assert_eq!(
            codes(&d),
            vec![("roles::unknown-action".to_owned(), 4)],
            "{}",
            d.render_human("")
        );
    }

    /// `values` lists what a write may give: each must fit the schema's type, and the default
    /// must be one of them; both are errors at their place in roles.toml.
    #[test]
    fn allowed_values_fit_the_schema_and_hold_the_default() {
        let given = "[attributes.user.scope_all]\ndefault = false\n[attributes.user.places]\nfrom = \"accessible_companies\"\n\
                     [attributes.company.plan]\nrequired = true\n";
        let outside =
            format!("{given}[attributes.user.nickname]\ndefault = \"zed\"\nvalues = [\"ann\", \"bo\"]\n");
        let d = Snapshot::build(stored_folder(&outside)).expect_err("a default outside the values");
        assert_eq!(
            codes(&d),
            vec![("roles::attribute-default-not-allowed".to_owned(), 10)],
            "{}",
            d.render_human("")
        );
        let number = format!("{given}[attributes.user.nickname]\ndefault = \"ann\"\nvalues = [\"ann\", 3]\n");
        let d = Snapshot::build(stored_folder(&number)).expect_err("a number among strings");
        assert_eq!(
            codes(&d),
            vec![("roles::attribute-value-type".to_owned(), 11)],
            "{}",
            d.render_human("")
        );
        let good =
            format!("{given}[attributes.user.nickname]\ndefault = \"zed\"\nvalues = [\"ann\", \"zed\"]\n");
        let s = Snapshot::build(stored_folder(&good))
            .map_err(|d| d.render_human(""))
            .expect("the default is allowed");
        let nickname = s.stored_user_attributes().iter().find(|a| a.name == "nickname");
        let values: Vec<_> = nickname
            .map(|a| a.values.iter().map(|(v, _)| v.clone()).collect())
            .unwrap_or_default();
        assert_eq!(values, vec![serde_json::json!("ann"), serde_json::json!("zed")]);
    }

    /// A default of the wrong type, an unknown or core attribute, and a derived fact of the
    /// wrong kind are errors at their place in roles.toml.
    #[test]
    fn ill_typed_unknown_core_and_misplaced_attributes_are_errors() {
        let roles = "[attributes.user.scope_all]\ndefault = []\n\
                     [attributes.user.places]\ndefault = [\"x\"]\n\
                     [attributes.company.plan]\ndefault = []\n\
                     [attributes.user.nick]\ndefault = \"n\"\n\
                     [attributes.user.flags]\ndefault = []\n";
        let d = Snapshot::build(stored_folder(roles)).expect_err("bad attributes");
        let found = codes(&d);
        for (code, line) in [
            ("roles::attribute-default-type", 4),
            ("roles::attribute-default-type", 6),
            ("roles::unknown-attribute", 9),
            ("roles::core-attribute", 11),
        ] {
            assert!(
                found.contains(&(code.to_owned(), line)),
                "{code} at {line}: {}",
                d.render_human("")
            );
        }
        let d = Snapshot::build(stored_folder(
            "[attributes.company.plan]\nfrom = \"login_is_email\"\n",
        ))
        .expect_err("a user fact on a company");
        assert!(
            codes(&d).iter().any(|(c, _)| c == "roles::attribute-derived"),
            "{}",
            d.render_human("")
        );
    }
}
