//! Benchmarks of the engine's two hot paths.
//!
//! - `decide/*`: `Snapshot::decide` against Cedar's own `Authorizer::is_authorized` on the same
//!   prepared request, the same `PolicySet` (`snapshot.policy_set()`) and the same `Entities`,
//!   from the default `policies/` folder. The difference is what the engine adds: mapping
//!   reasons to policy infos and the "an evaluation error never allows" rule. Target: median
//!   overhead at most 20%.
//! - `load/*`: `Snapshot::build` from an in-memory `SourceSet` of a generated folder with 50
//!   roles and 1,000 features. Target: under 200 ms.
//!
//! Figures and the command to reproduce them are in `engine/benches/README.md`.

#![expect(clippy::panic, reason = "a benchmark whose inputs do not load cannot run")]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cedar_policy::{ActionConstraint, Authorizer, EntityUid, PolicySet};
use criterion::{criterion_main, BatchSize, Criterion};
use portcullis_engine::{AuthzQuery, EntityRef, Snapshot, SourceFile, SourceSet};
use serde_json::{json, Map, Value};

fn uid(ty: &str, id: &str) -> Value {
    json!({ "type": format!("Portal::{ty}"), "id": id })
}

fn user(id: &str, role: &str, scope_all: bool, locations: &[&str]) -> Value {
    let locations: Vec<Value> = locations.iter().map(|l| uid("Location", l)).collect();
    json!({
        "uid": uid("User", id),
        "attrs": {
            "company": { "__entity": uid("Company", "acme") },
            "role": { "__entity": uid("Role", role) },
            "active": true,
            "flags": [],
            "addons": [],
            "scope_all": scope_all,
            "locations": locations,
            "actors": [],
            "all_customers": true,
            "customers": [],
        },
        "parents": [uid("Role", role), uid("Company", "acme")],
    })
}

/// A realistic slice: a customer company, two users, two locations, two shipments.
fn slice() -> Vec<Value> {
    let location =
        |id: &str| json!({ "uid": uid("Location", id), "attrs": {}, "parents": [uid("Company", "acme")] });
    let shipment = |id: &str, at: &str| {
        json!({
            "uid": uid("Shipment", id),
            "attrs": { "owner": uid("User", "olivia") },
            "parents": [uid("Location", at), uid("Company", "acme")],
        })
    };
    vec![
        json!({
            "uid": uid("Company", "acme"),
            "attrs": { "account_type": "customer", "subscription": ["insights"] },
            "parents": [],
        }),
        location("acme-oslo"),
        location("acme-bergen"),
        user("olivia", "owner", true, &[]),
        user("rita", "regular", false, &["acme-oslo"]),
        shipment("oslo-1", "acme-oslo"),
        shipment("bergen-1", "acme-bergen"),
    ]
}

fn query(principal: &str, action: &str, resource: &str) -> AuthzQuery {
    AuthzQuery {
        explain: false,
        principal: EntityRef::Text(principal.to_owned()),
        action: EntityRef::Text(action.to_owned()),
        resource: EntityRef::Text(resource.to_owned()),
        context: Map::new(),
        entities: slice(),
    }
}

/// The policies of `set` whose action scope can match `action` (its action groups followed):
/// what Cedar needs to see to decide a request for that action.
fn policies_for(schema: &cedar_policy::Schema, set: &PolicySet, action: &EntityUid) -> PolicySet {
    let hierarchy = schema.action_entities().ok();
    let mut groups = vec![action.clone()];
    if let Some(ancestors) = hierarchy.as_ref().and_then(|h| h.ancestors(action)) {
        groups.extend(ancestors.cloned());
    }
    let mut sub = PolicySet::new();
    for p in set.policies() {
        let matches = match p.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => groups.contains(&a),
            ActionConstraint::In(list) => list.iter().any(|a| groups.contains(a)),
        };
        if matches {
            let _ = sub.add(p.clone());
        }
    }
    sub
}

/// The sides measured against each other, in the order of `Side::ALL`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `Authorizer::is_authorized` over the snapshot's whole `PolicySet`.
    CedarAll,
    /// `Authorizer::is_authorized` over only the policies whose scope can match the action.
    CedarAction,
    /// `Snapshot::decide`.
    Engine,
}

impl Side {
    const ALL: [Side; 3] = [Side::CedarAll, Side::CedarAction, Side::Engine];

    fn name(self) -> &'static str {
        match self {
            Side::CedarAll => "cedar-all-policies",
            Side::CedarAction => "cedar-action-policies",
            Side::Engine => "engine",
        }
    }
}

fn decide(c: &mut Criterion) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let snapshot = match portcullis_engine::load(&folder) {
        Ok(s) => s,
        Err(d) => panic!("{}", d.render_human("policies")),
    };
    let cases = [
        // An allow decided by one compiled permit.
        (
            "allow",
            query("olivia", "shipment.create", r#"Portal::Shipment::"oslo-1""#),
            cedar_policy::Decision::Allow,
        ),
        // A deny decided by a hand-written forbid (out of the user's scope).
        (
            "deny",
            query("rita", "shipment.read", r#"Portal::Shipment::"bergen-1""#),
            cedar_policy::Decision::Deny,
        ),
    ];
    let authorizer = Authorizer::new();
    let mut group = c.benchmark_group("decide");
    for (name, q, expected) in &cases {
        let prepared = match snapshot.prepare(q) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let Some(action) = prepared.request.action() else {
            panic!("the request has no action");
        };
        let for_action = policies_for(snapshot.schema(), snapshot.policy_set(), action);
        println!(
            "decide/{name}: {} policies in the folder, {} can match `{action}`",
            snapshot.policy_set().policies().count(),
            for_action.policies().count()
        );
        for set in [snapshot.policy_set(), &for_action] {
            let raw = authorizer.is_authorized(&prepared.request, set, &prepared.entities);
            assert_eq!(raw.decision(), *expected, "{name}");
        }
        assert_eq!(
            snapshot.decide(&prepared).allowed(),
            *expected == cedar_policy::Decision::Allow
        );
        let run = |side: Side| match side {
            Side::CedarAll => {
                black_box(authorizer.is_authorized(
                    black_box(&prepared.request),
                    black_box(snapshot.policy_set()),
                    black_box(&prepared.entities),
                ));
            }
            Side::CedarAction => {
                black_box(authorizer.is_authorized(
                    black_box(&prepared.request),
                    black_box(&for_action),
                    black_box(&prepared.entities),
                ));
            }
            Side::Engine => {
                black_box(snapshot.decide(black_box(&prepared)));
            }
        };
        // The machine these run on is shared, so the sides are measured interleaved: every
        // iteration times each side once, back to back, in a rotating order, and each benchmark
        // reports its own side. Load from other processes then hits every side alike, and the
        // per-sample ratios give a paired estimate of the engine's overhead.
        let samples: RefCell<Vec<[Duration; 3]>> = RefCell::new(Vec::new());
        for side in Side::ALL {
            group.bench_function(format!("{name}/{}", side.name()), |b| {
                b.iter_custom(|iters| {
                    let mut times = [Duration::ZERO; 3];
                    for i in 0..iters {
                        for k in 0..3 {
                            let s = (i as usize + k) % 3;
                            let t0 = Instant::now();
                            run(Side::ALL[s]);
                            times[s] += t0.elapsed();
                        }
                    }
                    samples.borrow_mut().push(times);
                    times[Side::ALL.iter().position(|x| *x == side).unwrap_or(0)]
                })
            });
        }
        let samples = samples.borrow();
        for (baseline, label) in [(0, "all policies"), (1, "the action's policies")] {
            let mut ratios: Vec<f64> = samples
                .iter()
                .filter(|t| !t[baseline].is_zero())
                .map(|t| t[2].as_secs_f64() / t[baseline].as_secs_f64())
                .collect();
            ratios.sort_by(f64::total_cmp);
            if let Some(median) = ratios.get(ratios.len() / 2) {
                println!(
                    "decide/{name}: engine vs Cedar over {label}: paired median {:+.1}% ({} samples)",
                    (median - 1.0) * 100.0,
                    ratios.len()
                );
            }
        }
        // For context, not for the target: what `Engine::authorize` adds on top (resolving
        // references, parsing the JSON entities and context against the schema).
        group.bench_function(format!("{name}/prepare+decide"), |b| {
            b.iter(|| {
                let p = snapshot.prepare(black_box(q));
                black_box(p.map(|p| snapshot.decide(&p)).is_ok())
            })
        });
    }
    group.finish();
}

/// A tiny deterministic generator, so every run loads the same folder.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Number of record actions in the generated schema.
const ACTIONS: usize = 200;

/// A folder of `roles` roles and `features` features over a schema of `actions` record
/// actions (plus four user-management actions).
fn generated_folder(roles: usize, features: usize, actions: usize) -> SourceSet {
    let mut rng = Lcg(0x5eed);
    let mut schema = String::from(
        "namespace Portal {\n  entity Role;\n  entity Company in [Company] = { account_type: String, subscription: Set<String> };\n  entity User in [Role, Company] = { company: Company, role: Role, active: Bool, flags: Set<String>, addons: Set<String> };\n  entity Record in [Company] = { owner: User };\n  entity Doc in [Company];\n",
    );
    for a in 0..actions {
        let _ = writeln!(
            schema,
            "  action \"a{a}\" appliesTo {{ principal: User, resource: [Record, Doc], context: {{}} }};"
        );
    }
    schema.push_str("  action \"user.create\", \"user.set_role\" appliesTo { principal: User, resource: User, context: { role: Role, flags: Set<String> } };\n");
    schema.push_str("  action \"user.update\", \"user.delete\" appliesTo { principal: User, resource: User, context: {} };\n}\n");

    let role = |i: usize| format!("\"role{i}\"");
    let some_roles = |rng: &mut Lcg, one_in: u64| -> String {
        let v: Vec<String> = (0..roles).filter(|_| rng.below(one_in) == 0).map(role).collect();
        format!("[{}]", v.join(", "))
    };
    let mut t = String::from("[management]\nassign_actions = [\"user.create\", \"user.set_role\"]\nmanage_actions = [\"user.update\", \"user.delete\"]\n\n");
    for (name, one_in) in [("customer", 1), ("carrier", 2), ("shipper", 3), ("forwarder", 3)] {
        let _ = writeln!(
            t,
            "[account_types.{name}]\nroles = {}\n",
            some_roles(&mut rng, one_in)
        );
    }
    for i in 0..roles {
        let _ = writeln!(
            t,
            "[roles.role{i}]\nrank = {}\nmanages = {}\nchange_own_role = {}\n",
            i * 10,
            some_roles(&mut rng, 4),
            i % 5 != 0
        );
    }
    for i in 0..features {
        let acts: Vec<String> = (0..1 + rng.below(3))
            .map(|_| format!("\"a{}\"", rng.below(actions as u64)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Each role holds the feature on every record, on its own records, as an add-on, or
        // not at all, as in a real rights table (no overlaps, so no warnings).
        let (with_own, with_addon) = (rng.below(3) == 0, rng.below(5) == 0);
        let (mut full, mut own, mut addon) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..roles {
            match rng.below(15) {
                0..5 => full.push(role(r)),
                5..7 if with_own => own.push(role(r)),
                7..9 if with_addon => addon.push(role(r)),
                _ => {}
            }
        }
        let _ = writeln!(
            t,
            "[features.feature{i}]\ntitle = \"Feature {i}\"\nactions = [{}]\nroles = [{}]",
            acts.join(", "),
            full.join(", ")
        );
        if with_own {
            let _ = writeln!(t, "own = [{}]", own.join(", "));
        }
        if with_addon {
            let _ = writeln!(t, "addon_roles = [{}]", addon.join(", "));
        }
        if rng.below(5) == 0 {
            let _ = writeln!(
                t,
                "when = 'principal.company.subscription.contains(\"option{}\")'",
                rng.below(10)
            );
        }
        if rng.below(20) == 0 {
            t.push_str("any_company = true\n");
        }
        t.push('\n');
    }
    t.push_str("[flags.isolated]\nowned_only = true\n\n[flags.junior]\nmax_rank = 200\n");
    SourceSet {
        roles: Some(SourceFile {
            path: "roles.toml".to_owned(),
            text: t,
        }),
        schema: Some(SourceFile {
            path: "schema.cedarschema".to_owned(),
            text: schema,
        }),
        ..SourceSet::default()
    }
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    // The validator typechecks every policy in every request environment of the schema, so
    // the load time grows with policies × actions: the main figure uses `ACTIONS` actions,
    // the second a schema ten times smaller.
    for actions in [ACTIONS, ACTIONS / 10] {
        let sources = generated_folder(50, 1000, actions);
        let snapshot = match Snapshot::build(sources.clone()) {
            Ok(s) => s,
            Err(d) => panic!("{}", d.render_human("generated")),
        };
        println!(
            "load: generated folder with {actions} actions: {} bytes of roles.toml, {} policies, {} warnings",
            sources.roles.as_ref().map_or(0, |r| r.text.len()),
            snapshot.policies().len(),
            snapshot.warnings().0.len()
        );
        group.bench_function(format!("50-roles-1000-features-{actions}-actions"), |b| {
            b.iter_batched(
                || sources.clone(),
                |s| black_box(Snapshot::build(s).is_ok()),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// The stages of `Snapshot::build` for the generated folder, timed apart through the public
/// API, to show where loading spends its time.
fn load_stages(c: &mut Criterion) {
    use cedar_policy::{Policy, PolicyId, Schema, ValidationMode, Validator};
    use portcullis_engine::roles::compile::compile;
    use portcullis_engine::roles::raw::RawRoles;
    use portcullis_engine::{Location, RoleModel};

    let sources = generated_folder(50, 1000, ACTIONS);
    let (Some(roles), Some(schema_file)) = (&sources.roles, &sources.schema) else {
        return;
    };
    let Ok((schema, _)) = Schema::from_cedarschema_str(&schema_file.text) else {
        return;
    };
    let Ok((model, _)) = RoleModel::parse(&roles.path, &roles.text) else {
        return;
    };
    let actions: std::collections::BTreeSet<String> = (0..ACTIONS)
        .map(|a| format!("a{a}"))
        .chain(["user.create", "user.set_role", "user.update", "user.delete"].map(String::from))
        .collect();
    let Ok(compiled) = compile(&model, &actions, &roles.text) else {
        return;
    };
    let parse_all = || {
        let mut set = PolicySet::new();
        for p in &compiled {
            if let Ok(policy) = Policy::parse(Some(PolicyId::new(&p.id)), &p.text) {
                let _ = set.add(policy);
            }
        }
        set
    };
    let set = parse_all();
    let validator = Validator::new(schema.clone());

    let mut group = c.benchmark_group("load-stages");
    group.sample_size(10);
    group.bench_function("1-schema", |b| {
        b.iter(|| black_box(Schema::from_cedarschema_str(&schema_file.text).is_ok()))
    });
    group.bench_function("2-roles-parse-and-check", |b| {
        b.iter(|| black_box(RoleModel::parse(&roles.path, &roles.text).is_ok()))
    });
    // The two parts of step 2 that matter: TOML deserialization, and resolving the place of
    // every role, feature and flag to a line and column, as the checks do once per item.
    group.bench_function("2a-roles-toml-deserialize", |b| {
        b.iter(|| black_box(toml::from_str::<RawRoles>(&roles.text).is_ok()))
    });
    let item_starts: Vec<usize> = roles.text.match_indices("\n[").map(|(i, _)| i + 1).collect();
    group.bench_function("2b-roles-locations", |b| {
        b.iter(|| {
            for start in &item_starts {
                black_box(Location::new(&roles.path, &roles.text, *start..*start + 1));
            }
        })
    });
    group.bench_function("3-compile", |b| {
        b.iter(|| black_box(compile(&model, &actions, &roles.text).is_ok()))
    });
    group.bench_function("4-parse-compiled", |b| {
        b.iter(|| black_box(parse_all().num_of_policies()))
    });
    group.bench_function("5-validate", |b| {
        b.iter(|| {
            black_box(
                validator
                    .validate(&set, ValidationMode::Strict)
                    .validation_passed(),
            )
        })
    });
    // What `Snapshot::build` does last: one policy subset per action, so a decision evaluates
    // only the policies whose scope can match its action (done here the same way).
    let all_actions: Vec<EntityUid> = schema.actions().cloned().collect();
    group.bench_function("6-index-by-action", |b| {
        b.iter(|| {
            for a in &all_actions {
                black_box(policies_for(&schema, &set, a).num_of_policies());
            }
        })
    });
    group.finish();
}

/// The benchmark groups, in a private module so the generated functions need no docs.
mod groups {
    use super::{decide, load, load_stages};

    criterion::criterion_group!(benches, decide, load, load_stages);
}

criterion_main!(groups::benches);
