//! Properties of a policy folder proven for every request, not sampled (`portcullis verify`).
//!
//! Input: a loaded [`Snapshot`] (its schema and policy set, roles.toml compiled in) and the
//! folder's `properties/*.toml`. Each property names request kinds (principal type, actions,
//! resource type; any left out means all the schema allows) and one claim. Cedar's symbolic
//! compiler (`cedar-policy-symcc`) turns the claim, for each request kind, into SMT queries the
//! cvc5 solver decides over every possible request, context and entity store the schema admits.
//! Output: one [`Verdict`] per property: proved, or refuted with a counterexample (a request and
//! its entities) that the engine then decides, written as a fixture file `portcullis test` runs.
//!
//! ```text
//! properties/*.toml ─parse─> Property{request kinds, claim} ─┐
//! built-in: "no request of any action errors" ───────────────┤
//!                                        per request kind ───┴─> symcc ─> cvc5 ─unsat─> proved
//!                                                                            └─sat─> model ─> Counterexample
//!                                                               (decided by the engine, as a fixture)
//! ```
//!
//! What it cannot see: template-linked policies (visitor grants) are instances the store creates
//! at run time, so claims are over the folder's static policies; a counterexample may use entity
//! ids and attribute values no real store holds, which is the point (every store the schema
//! admits).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Decision, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet, Request, RequestEnv,
};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};
use portcullis_engine::Snapshot;
use serde::{Deserialize, Serialize};

/// The folder's sub-folder of property files.
pub const PROPERTIES_DIR: &str = "properties";

/// Per query, how long the solver may take before it gives up (milliseconds).
const SOLVER_TIME_LIMIT_MS: u32 = 30_000;

/// One `properties/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertyFile {
    /// A Cedar condition every property of the file assumes of its requests.
    #[serde(default)]
    assuming: Option<String>,
    #[serde(default)]
    property: Vec<toml::Spanned<PropertySpec>>,
}

/// A property as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertySpec {
    /// What it says, in the product's words.
    name: String,
    /// The principal type (`User` or `Portal::User`); all when left out.
    #[serde(default)]
    principal: Option<String>,
    /// Action ids (`shipment.read`); all when empty.
    #[serde(default)]
    actions: Vec<String>,
    /// The resource type; all when left out.
    #[serde(default)]
    resource: Option<String>,
    /// Every such request is allowed, or every one denied.
    #[serde(default)]
    always: Option<Always>,
    /// A Cedar condition every allowed request meets (`resource.owner == principal`).
    #[serde(default)]
    implies: Option<String>,
    /// No policy errors on any such request.
    #[serde(default)]
    never_errors: bool,
    /// A Cedar condition the claim assumes of its requests (beside the file's).
    #[serde(default)]
    assuming: Option<String>,
}

/// `always = "allow"` or `always = "deny"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Always {
    /// Every request of the kinds is allowed.
    Allow,
    /// Every request of the kinds is denied.
    Deny,
}

/// What a property claims.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Every request is allowed, or every one denied.
    Always(Always),
    /// Every allowed request meets the condition.
    Implies(String),
    /// No policy errors.
    NeverErrors,
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

/// A request that breaks a property, decided by the folder.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// The principal.
    pub principal: String,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// The request's context (Cedar JSON).
    pub context: serde_json::Value,
    /// The entities (Cedar JSON).
    pub entities: Vec<serde_json::Value>,
    /// How the folder decides it.
    pub decision: &'static str,
    /// The policies that error on it.
    pub errors: Vec<String>,
}

/// What became of a property.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// It holds for every request of its kinds.
    Proved,
    /// This request breaks it.
    Refuted {
        /// The request.
        counterexample: Box<Counterexample>,
    },
}

/// A property's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The property.
    pub name: String,
    /// Where it is written.
    pub source: String,
    /// How many request kinds it covered.
    pub request_kinds: usize,
    /// Proved or refuted.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A property file is wrong: each message starts with `file:line:col`.
    #[error("{}", .0.join("\n"))]
    Properties(Vec<String>),
    /// The solver is not there.
    #[error("`portcullis verify` needs the cvc5 SMT solver, and `{command}` cannot be started ({reason}): install it (Debian and Ubuntu: `apt-get install cvc5`; others: https://cvc5.github.io/downloads.html) or name it with CVC5=/path/to/cvc5")]
    NoSolver {
        /// The command tried.
        command: String,
        /// What went wrong.
        reason: String,
    },
    /// The symbolic compiler or the solver failed on a property.
    #[error("{property}: {message}")]
    Solver {
        /// The property.
        property: String,
        /// What went wrong.
        message: String,
    },
}

/// The solver command: `$CVC5`, else `cvc5` on the `PATH`.
pub fn solver_command() -> String {
    std::env::var("CVC5").unwrap_or_else(|_| "cvc5".to_owned())
}

/// The built-in properties every folder gets without writing anything.
pub fn built_in(snapshot: &Snapshot) -> Vec<Property> {
    vec![Property {
        name: "no request of any action errors".to_owned(),
        source: "built-in".to_owned(),
        envs: snapshot.schema().request_envs().collect(),
        claim: Claim::NeverErrors,
        assuming: Vec::new(),
    }]
}

/// Reads `properties/*.toml` of a folder (none when the folder has no such sub-folder).
pub fn load(folder: &Path, snapshot: &Snapshot) -> Result<Vec<Property>, VerifyError> {
    let dir = folder.join(PROPERTIES_DIR);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(VerifyError::Properties(vec![format!(
                "{PROPERTIES_DIR}: cannot read the folder: {e}"
            )]))
        }
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
        Err(VerifyError::Properties(errors))
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
        let (line, col) = line_col(text, spanned.span().start);
        let at = format!("{file}:{line}:{col}");
        match property(spanned.get_ref(), snapshot) {
            Ok((envs, claim)) => out.push(Property {
                name: spanned.get_ref().name.clone(),
                source: at,
                envs,
                claim,
                assuming: parsed
                    .assuming
                    .iter()
                    .chain(&spanned.get_ref().assuming)
                    .cloned()
                    .collect(),
            }),
            Err(m) => errors.push(format!("{at}: property `{}`: {m}", spanned.get_ref().name)),
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
    let claims =
        usize::from(p.always.is_some()) + usize::from(p.implies.is_some()) + usize::from(p.never_errors);
    if claims != 1 {
        return Err(
            "expected exactly one claim: `always = \"allow\" | \"deny\"`, `implies = \"<Cedar condition>\"` or `never_errors = true`"
                .to_owned(),
        );
    }
    let schema = snapshot.schema();
    let qualify = |t: &str| {
        if t.contains("::") || snapshot.namespace().is_empty() {
            t.to_owned()
        } else {
            format!("{}::{t}", snapshot.namespace())
        }
    };
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
            if let Some(close) = portcullis_engine::diag::did_you_mean(a, actions.iter().map(String::as_str))
            {
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
    } else {
        Claim::NeverErrors
    };
    Ok((envs, claim))
}

/// A Cedar condition as a one-permit policy set (`permit … when { condition };`).
fn condition(cond: &str) -> Result<PolicySet, String> {
    let text = format!("permit(principal, action, resource) when {{ {cond} }};");
    let policy = Policy::parse(Some(PolicyId::new("condition")), &text).map_err(|e| e.to_string())?;
    let mut set = PolicySet::new();
    set.add(policy).map_err(|e| e.to_string())?;
    Ok(set)
}

/// What every request of a kind is assumed to meet: what the store keeps true of a user (it is
/// a member of its `company`, and of its `role` and no other role of roles.toml), for the
/// principal and for a resource that is a user, and the property's own assumptions.
fn assumptions(snapshot: &Snapshot, env: &RequestEnv, written: &[String]) -> Option<String> {
    let mut parts: Vec<String> = written.iter().map(|a| format!("({a})")).collect();
    if let Some(m) = snapshot.model() {
        let ns = snapshot.namespace();
        let qualify = |t: &str| {
            if ns.is_empty() || t.contains("::") {
                t.to_owned()
            } else {
                format!("{ns}::{t}")
            }
        };
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

/// Proves each property with one solver process.
pub async fn prove(snapshot: &Snapshot, properties: &[Property]) -> Result<Vec<Verdict>, VerifyError> {
    let command = solver_command();
    let mut cmd = tokio::process::Command::new(&command);
    cmd.args(["--lang", "smt", &format!("--tlimit-per={SOLVER_TIME_LIMIT_MS}")])
        .kill_on_drop(true);
    let solver = LocalSolver::from_command(&mut cmd).map_err(|e| VerifyError::NoSolver {
        command: command.clone(),
        reason: e.to_string(),
    })?;
    let mut symcc = CedarSymCompiler::new(solver).map_err(|e| VerifyError::NoSolver {
        command,
        reason: e.to_string(),
    })?;
    let schema = snapshot.schema();
    let folder = snapshot.policy_set();
    let mut compiled: BTreeMap<String, CompiledPolicySet> = BTreeMap::new();
    let mut verdicts = Vec::new();
    for p in properties {
        let failed = |e: &dyn std::fmt::Display| VerifyError::Solver {
            property: format!("{} ({})", p.name, p.source),
            message: e.to_string(),
        };
        let mut outcome = Outcome::Proved;
        'kinds: for env in &p.envs {
            let key = format!("{} {} {}", env.principal(), env.action(), env.resource());
            let found: Option<Env> = match &p.claim {
                Claim::NeverErrors => {
                    let mut found = None;
                    for policy in folder.policies() {
                        let one = CompiledPolicy::compile(policy, env, schema).map_err(|e| failed(&e))?;
                        if let Some(env) = symcc
                            .check_never_errors_with_counterexample_opt(&one)
                            .await
                            .map_err(|e| failed(&e))?
                        {
                            found = Some(env);
                            break;
                        }
                    }
                    found
                }
                claim => {
                    if !compiled.contains_key(&key) {
                        let set = CompiledPolicySet::compile(folder, env, schema).map_err(|e| failed(&e))?;
                        compiled.insert(key.clone(), set);
                    }
                    let Some(set) = compiled.get(&key) else {
                        continue;
                    };
                    let assumed = assumptions(snapshot, env, &p.assuming);
                    let compile = |cond: &str| {
                        let set = condition(cond).map_err(|e| failed(&e))?;
                        CompiledPolicySet::compile(&set, env, schema).map_err(|e| failed(&e))
                    };
                    match (claim, assumed) {
                        (Claim::Always(Always::Allow), None) => symcc
                            .check_always_allows_with_counterexample_opt(set)
                            .await
                            .map_err(|e| failed(&e))?,
                        (Claim::Always(Always::Deny), None) => symcc
                            .check_always_denies_with_counterexample_opt(set)
                            .await
                            .map_err(|e| failed(&e))?,
                        // Every request that meets the assumptions is allowed.
                        (Claim::Always(Always::Allow), Some(a)) => symcc
                            .check_implies_with_counterexample_opt(&compile(&a)?, set)
                            .await
                            .map_err(|e| failed(&e))?,
                        // Every allowed request breaks an assumption.
                        (Claim::Always(Always::Deny), Some(a)) => symcc
                            .check_implies_with_counterexample_opt(set, &compile(&format!("!({a})"))?)
                            .await
                            .map_err(|e| failed(&e))?,
                        (Claim::Implies(c), a) => {
                            let c = match a {
                                Some(a) => format!("!({a}) || ({c})"),
                                None => c.clone(),
                            };
                            symcc
                                .check_implies_with_counterexample_opt(set, &compile(&c)?)
                                .await
                                .map_err(|e| failed(&e))?
                        }
                        (Claim::NeverErrors, _) => None,
                    }
                }
            };
            if let Some(env) = found {
                let counterexample = counterexample(snapshot, &env).map_err(|e| failed(&e))?;
                outcome = Outcome::Refuted {
                    counterexample: Box::new(counterexample),
                };
                break 'kinds;
            }
        }
        verdicts.push(Verdict {
            name: p.name.clone(),
            source: p.source.clone(),
            request_kinds: p.envs.len(),
            outcome,
        });
    }
    Ok(verdicts)
}

/// The solver's model as a request and entities, decided by the folder.
fn counterexample(snapshot: &Snapshot, env: &Env) -> Result<Counterexample, String> {
    let r: &Request = &env.request;
    let missing = || "the solver's model has no principal, action or resource".to_owned();
    let principal = r.principal().ok_or_else(missing)?.clone();
    let action = r.action().ok_or_else(missing)?.clone();
    let resource = r.resource().ok_or_else(missing)?.clone();
    let context = match r.context() {
        Some(c) => context_json(c.clone())?,
        None => serde_json::json!({}),
    };
    let entities = match env.entities.to_json_value().map_err(|e| e.to_string())? {
        serde_json::Value::Array(items) => items
            .into_iter()
            // Action entities come from the schema; a fixture names only the others.
            .filter(|e| !e["uid"]["type"].as_str().is_some_and(|t| t.ends_with("Action")))
            .collect(),
        _ => Vec::new(),
    };
    let (decision, errors) = decide(snapshot, r, &env.entities);
    Ok(Counterexample {
        principal: principal.to_string(),
        action: action.id().unescaped().to_owned(),
        resource: resource.to_string(),
        context,
        entities,
        decision,
        errors,
    })
}

/// How the folder's policies decide a concrete request over concrete entities.
fn decide(snapshot: &Snapshot, r: &Request, entities: &Entities) -> (&'static str, Vec<String>) {
    let response = Authorizer::new().is_authorized(r, snapshot.policy_set(), entities);
    let decision = match response.decision() {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
    };
    let errors = response
        .diagnostics()
        .errors()
        .map(|e| match e {
            cedar_policy::AuthorizationError::PolicyEvaluationError(e) => e.policy_id().to_string(),
        })
        .collect();
    (decision, errors)
}

/// A context as Cedar JSON (through an entity's attributes, which Cedar writes as JSON).
fn context_json(context: cedar_policy::Context) -> Result<serde_json::Value, String> {
    let uid = EntityUid::from_str(r#"Context::"c""#).map_err(|e| e.to_string())?;
    let attrs = context.into_iter().collect();
    let entity = Entity::new(uid, attrs, Default::default()).map_err(|e| e.to_string())?;
    let json = entity.to_json_value().map_err(|e| e.to_string())?;
    Ok(json["attrs"].clone())
}

impl Counterexample {
    /// A fixture file holding this request as one case that expects what the folder decides:
    /// saved under `fixtures/`, `portcullis test` runs it.
    pub fn fixture(&self, property: &str) -> String {
        #[derive(Serialize)]
        struct Case<'a> {
            name: String,
            principal: &'a str,
            action: &'a str,
            resource: &'a str,
            context: &'a serde_json::Value,
            expect: &'a str,
        }
        #[derive(Serialize)]
        struct File<'a> {
            entities: &'a [serde_json::Value],
            case: [Case<'a>; 1],
        }
        let file = File {
            entities: &self.entities,
            case: [Case {
                name: format!("counterexample to \"{property}\""),
                principal: &self.principal,
                action: &self.action,
                resource: &self.resource,
                context: &self.context,
                expect: self.decision,
            }],
        };
        let mut text = format!("# A request that refutes \"{property}\", found by `portcullis verify`.\n");
        if !self.errors.is_empty() {
            text.push_str(&format!(
                "# Policies that error on it: {}.\n",
                self.errors.join(", ")
            ));
        }
        text.push_str(&toml::to_string(&file).unwrap_or_default());
        text
    }
}
