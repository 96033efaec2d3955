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
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Decision, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet, Request, RequestEnv,
};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};
use portcullis_engine::properties::{assumptions, condition, Always, Claim, Property};
use portcullis_engine::Snapshot;
use serde::Serialize;

/// Per query, how long the solver may take before it gives up (milliseconds).
const SOLVER_TIME_LIMIT_MS: u32 = 30_000;

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

impl Outcome {
    /// Whether a counterexample was found.
    pub fn is_refuted(&self) -> bool {
        matches!(self, Outcome::Refuted { .. })
    }
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

/// A policy set that decides as `set` does on requests meeting `assumed`, and denies the rest.
fn restricted(set: &PolicySet, assumed: Option<&str>) -> Result<PolicySet, String> {
    let Some(a) = assumed else {
        return Ok(set.clone());
    };
    let text = format!("forbid(principal, action, resource) unless {{ {a} }};");
    let forbid =
        Policy::parse(Some(PolicyId::new("portcullis.assumed")), &text).map_err(|e| e.to_string())?;
    let mut set = set.clone();
    set.add(forbid).map_err(|e| e.to_string())?;
    Ok(set)
}

/// How an edit changed one action's rights, proved over every request of its kinds.
#[derive(Debug, Clone, Serialize)]
pub struct ActionChange {
    /// The action id.
    pub action: String,
    /// How many request kinds (principal and resource types) it has in both folders.
    pub request_kinds: usize,
    /// A request the new folder allows and the old one denied, if any.
    pub widened: Option<Box<Counterexample>>,
    /// A request the old folder allowed and the new one denies, if any.
    pub narrowed: Option<Box<Counterexample>>,
}

/// One solver process and Cedar's symbolic compiler over it.
pub struct Prover {
    symcc: CedarSymCompiler<LocalSolver>,
    /// The folder's policy set compiled per request kind (keyed by the folder's version too).
    compiled: BTreeMap<String, CompiledPolicySet>,
}

impl Prover {
    /// Starts the solver: `$CVC5`, else `cvc5` on the `PATH`.
    pub fn start() -> Result<Self, VerifyError> {
        let command = solver_command();
        let mut cmd = tokio::process::Command::new(&command);
        cmd.args(["--lang", "smt", &format!("--tlimit-per={SOLVER_TIME_LIMIT_MS}")])
            .kill_on_drop(true);
        let no_solver = |reason: String| VerifyError::NoSolver {
            command: command.clone(),
            reason,
        };
        let solver = LocalSolver::from_command(&mut cmd).map_err(|e| no_solver(e.to_string()))?;
        let symcc = CedarSymCompiler::new(solver).map_err(|e| no_solver(e.to_string()))?;
        Ok(Prover {
            symcc,
            compiled: BTreeMap::new(),
        })
    }

    /// Checks one property on one request kind: a request that breaks it, or `None`.
    pub async fn check(
        &mut self,
        snapshot: &Snapshot,
        p: &Property,
        env: &RequestEnv,
        others: &Others,
    ) -> Result<Option<Env>, VerifyError> {
        let schema = snapshot.schema();
        let folder = snapshot.policy_set();
        let failed = |e: &dyn std::fmt::Display| VerifyError::Solver {
            property: format!("{} ({})", p.name, p.source),
            message: e.to_string(),
        };
        let assumed = assumptions(snapshot, env, &p.assuming);
        let compile = |set: &PolicySet| CompiledPolicySet::compile(set, env, schema).map_err(|e| failed(&e));
        let condition = |cond: &str| compile(&condition(cond).map_err(|e| failed(&e))?);
        if let Claim::NeverErrors = p.claim {
            for policy in folder.policies() {
                let one = CompiledPolicy::compile(policy, env, schema).map_err(|e| failed(&e))?;
                let found = self
                    .symcc
                    .check_never_errors_with_counterexample_opt(&one)
                    .await
                    .map_err(|e| failed(&e))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            return Ok(None);
        }
        if let Some(name) = p.claim.other() {
            let other = others
                .get(name)
                .ok_or_else(|| failed(&format!("`{name}` was not loaded")))?;
            let narrowed = restricted(folder, assumed.as_deref()).map_err(|e| failed(&e))?;
            // The other version compiled against this folder's schema: a policy of it that no
            // longer fits is an error, said as such.
            let then = compile(other.policy_set())
                .map_err(|e| failed(&format!("`{name}` against this folder's schema: {e}")))?;
            let found = self
                .symcc
                .check_implies_with_counterexample_opt(&compile(&narrowed)?, &then)
                .await
                .map_err(|e| failed(&e))?;
            if found.is_some() || matches!(p.claim, Claim::NoWiderThan(_)) {
                return Ok(found);
            }
            let then = restricted(other.policy_set(), assumed.as_deref()).map_err(|e| failed(&e))?;
            let found = self
                .symcc
                .check_implies_with_counterexample_opt(&compile(&then)?, &compile(folder)?)
                .await
                .map_err(|e| failed(&e))?;
            return Ok(found);
        }
        // The folder compiled once per request kind; each claim is an implication between it
        // and a one-permit condition (no forbids, so the assumptions can be written into it).
        let key = format!("{} {}", snapshot.version(), kind(env));
        if !self.compiled.contains_key(&key) {
            self.compiled.insert(key.clone(), compile(folder)?);
        }
        let Some(set) = self.compiled.get(&key) else {
            return Ok(None);
        };
        let (premise, conclusion) = match (&p.claim, assumed) {
            // Every request that meets the assumptions is allowed.
            (Claim::Always(Always::Allow), a) => (condition(a.as_deref().unwrap_or("true"))?, set.clone()),
            // No allowed request meets the assumptions.
            (Claim::Always(Always::Deny), Some(a)) => (set.clone(), condition(&format!("!({a})"))?),
            (Claim::Always(Always::Deny), None) => {
                let found = self
                    .symcc
                    .check_always_denies_with_counterexample_opt(set)
                    .await
                    .map_err(|e| failed(&e))?;
                return Ok(found);
            }
            // Every allowed request that meets the assumptions meets the condition.
            (Claim::Implies(c), Some(a)) => (set.clone(), condition(&format!("!({a}) || ({c})"))?),
            (Claim::Implies(c), None) => (set.clone(), condition(c)?),
            (Claim::NeverErrors | Claim::NoWiderThan(_) | Claim::EquivalentTo(_), _) => return Ok(None),
        };
        let found = self
            .symcc
            .check_implies_with_counterexample_opt(&premise, &conclusion)
            .await
            .map_err(|e| failed(&e))?;
        Ok(found)
    }

    /// Per action, whether going from `old` to `new` widened rights (a request `new` allows
    /// that `old` denied), narrowed them, or kept them, over every request of the new schema's
    /// kinds that the old schema has too, under what the new store keeps true.
    pub async fn compare(
        &mut self,
        old: &Snapshot,
        new: &Snapshot,
    ) -> Result<Vec<ActionChange>, VerifyError> {
        let schema = new.schema();
        let old_kinds: std::collections::BTreeSet<String> =
            old.schema().request_envs().map(|e| kind(&e)).collect();
        let mut by_action: BTreeMap<String, ActionChange> = BTreeMap::new();
        for env in schema.request_envs().filter(|e| old_kinds.contains(&kind(e))) {
            let action = env.action().id().unescaped().to_owned();
            let failed = |e: &dyn std::fmt::Display| VerifyError::Solver {
                property: format!("{action} ({})", kind(&env)),
                message: e.to_string(),
            };
            let assumed = assumptions(new, &env, &[]);
            let compile = |set: &PolicySet| {
                let set = restricted(set, assumed.as_deref()).map_err(|e| failed(&e))?;
                CompiledPolicySet::compile(&set, &env, schema).map_err(|e| failed(&e))
            };
            let (o, n) = (compile(old.policy_set())?, compile(new.policy_set())?);
            let widened = self
                .symcc
                .check_implies_with_counterexample_opt(&n, &o)
                .await
                .map_err(|e| failed(&e))?;
            let narrowed = self
                .symcc
                .check_implies_with_counterexample_opt(&o, &n)
                .await
                .map_err(|e| failed(&e))?;
            let change = by_action.entry(action.clone()).or_insert_with(|| ActionChange {
                action: action.clone(),
                request_kinds: 0,
                widened: None,
                narrowed: None,
            });
            change.request_kinds += 1;
            if change.widened.is_none() {
                if let Some(env) = widened {
                    change.widened = Some(Box::new(counterexample(new, &env).map_err(|e| failed(&e))?));
                }
            }
            if change.narrowed.is_none() {
                if let Some(env) = narrowed {
                    change.narrowed = Some(Box::new(counterexample(new, &env).map_err(|e| failed(&e))?));
                }
            }
        }
        Ok(by_action.into_values().collect())
    }
}

/// A request kind as text: principal type, action, resource type.
fn kind(env: &cedar_policy::RequestEnv) -> String {
    format!("{} {} {}", env.principal(), env.action(), env.resource())
}

/// The other versions of the folder that properties compare with (`no_wider_than`,
/// `equivalent_to`), by the name the property gives them.
pub type Others = BTreeMap<String, Snapshot>;

/// A refutation: the property's index, the request kind's index, the counterexample.
type Found = (usize, usize, Counterexample);

/// Proves each property, its request kinds shared out over one solver process per core (each
/// on its own thread). A refuted property answers the counterexample of its first refuted kind,
/// so the report does not depend on which solver finished first.
pub fn prove(
    snapshot: &Snapshot,
    properties: &[Property],
    others: &Others,
) -> Result<Vec<Verdict>, VerifyError> {
    let work: Vec<(usize, usize)> = properties
        .iter()
        .enumerate()
        .flat_map(|(p, prop)| (0..prop.envs.len()).map(move |e| (p, e)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, work.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Per property, the first refuted kind found so far: later kinds need not be checked.
    let refuted: Vec<std::sync::atomic::AtomicUsize> = properties
        .iter()
        .map(|_| std::sync::atomic::AtomicUsize::new(usize::MAX))
        .collect();
    let worker = || -> Result<Vec<Found>, VerifyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| VerifyError::NoSolver {
                command: solver_command(),
                reason: format!("no runtime: {e}"),
            })?;
        runtime.block_on(async {
            let mut prover = Prover::start()?;
            let mut found = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(p, e)) = work.get(i) else {
                    break;
                };
                if refuted[p].load(std::sync::atomic::Ordering::Relaxed) < e {
                    continue;
                }
                let prop = &properties[p];
                if let Some(env) = prover.check(snapshot, prop, &prop.envs[e], others).await? {
                    let c = counterexample(snapshot, &env).map_err(|m| VerifyError::Solver {
                        property: format!("{} ({})", prop.name, prop.source),
                        message: m,
                    })?;
                    refuted[p].fetch_min(e, std::sync::atomic::Ordering::Relaxed);
                    found.push((p, e, c));
                }
            }
            Ok(found)
        })
    };
    let results: Vec<Result<Vec<Found>, VerifyError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(VerifyError::Solver {
                        property: "(all)".to_owned(),
                        message: "a prover thread panicked".to_owned(),
                    })
                })
            })
            .collect()
    });
    let mut first: BTreeMap<usize, (usize, Counterexample)> = BTreeMap::new();
    for r in results {
        for (p, e, c) in r? {
            if first.get(&p).is_none_or(|(known, _)| e < *known) {
                first.insert(p, (e, c));
            }
        }
    }
    Ok(properties
        .iter()
        .enumerate()
        .map(|(i, p)| Verdict {
            name: p.name.clone(),
            source: p.source.clone(),
            request_kinds: p.envs.len(),
            outcome: match first.remove(&i) {
                Some((_, c)) => Outcome::Refuted {
                    counterexample: Box::new(c),
                },
                None => Outcome::Proved,
            },
        })
        .collect())
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
