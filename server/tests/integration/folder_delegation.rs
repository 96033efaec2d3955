//! Delegation property over HTTP on every policy folder (`policies/` and each example): random
//! management calls (create a user, set its role, flags or add-ons) by random stored users of
//! the folder's own roles; after each allowed call, the user it created or changed holds no
//! right its caller lacks. The world and the calls come from the folder's `roles.toml` (account
//! types, roles, flags, add-on features), so no name of any folder is written here.
//!
//! "A right" is an action `POST /v1/permissions` allows: on a new record of every entity type
//! of the schema in the company both act in, and on every stored company and every other
//! stored user. Rights a user has over itself (its own profile, its own sessions) are not
//! compared: no manager holds them over somebody else.
//!
//! `PROPTEST_CASES` sets the sequences per folder (3 by default, a short CI run). Figures go to
//! stderr.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use portcullis_engine::Engine;
use portcullis_store::{Audit, NewCompany, NewUser, UserStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::common::{Fixture, Http};
use crate::manage::{env_at, key_for, sqlite_url, Env};

/// What the folder's `roles.toml` and schema say a call may use.
#[derive(Debug, Clone)]
struct Model {
    ns: String,
    /// Account types and their roles.
    types: Vec<(String, Vec<String>)>,
    flags: Vec<String>,
    addons: Vec<String>,
    /// Entity types a new record may have (everything but users and companies).
    record_types: Vec<String>,
}

fn folder_path(folder: &str) -> PathBuf {
    crate::common::repo().join(folder)
}

fn model_of(folder: &str) -> Model {
    let engine = Engine::open(folder_path(folder)).expect("the folder loads");
    let s = engine.snapshot();
    let m = s.model().expect("the folder has a roles.toml");
    let (user, company) = (s.user_type(), s.company_type());
    let record_types = s
        .schema()
        .entity_types()
        .map(ToString::to_string)
        .filter(|t| *t != user && *t != company && !t.ends_with("::Role"))
        .collect();
    Model {
        ns: s.namespace().to_owned(),
        types: m
            .account_types
            .iter()
            .filter(|t| !t.roles.is_empty())
            .map(|t| (t.name.clone(), t.roles.clone()))
            .collect(),
        flags: m.flags.iter().map(|f| f.name.clone()).collect(),
        addons: m
            .features
            .iter()
            .filter(|f| !f.addon_roles.is_empty())
            .map(|f| f.name.clone())
            .collect(),
        record_types,
    }
}

/// One management call. Indices pick from the world and the model modulo their sizes.
#[derive(Debug, Clone)]
enum Call {
    Create {
        caller: usize,
        role: usize,
        flags: u8,
        addons: u8,
    },
    SetRole {
        caller: usize,
        target: usize,
        role: usize,
    },
    SetFlags {
        caller: usize,
        target: usize,
        flags: u8,
    },
    SetAddons {
        caller: usize,
        target: usize,
        addons: u8,
    },
}

fn call() -> impl Strategy<Value = Call> {
    let who = 0usize..64;
    prop_oneof![
        (who.clone(), 0usize..16, any::<u8>(), any::<u8>()).prop_map(|(caller, role, flags, addons)| {
            Call::Create {
                caller,
                role,
                flags,
                addons,
            }
        }),
        (who.clone(), who.clone(), 0usize..16).prop_map(|(caller, target, role)| Call::SetRole {
            caller,
            target,
            role
        }),
        (who.clone(), who.clone(), any::<u8>()).prop_map(|(caller, target, flags)| Call::SetFlags {
            caller,
            target,
            flags
        }),
        (who.clone(), who, any::<u8>()).prop_map(|(caller, target, addons)| Call::SetAddons {
            caller,
            target,
            addons
        }),
    ]
}

/// The members of `all` whose bit is set in `bits`.
fn subset(all: &[String], bits: u8) -> Vec<String> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| *i < 8 && bits & (1 << i) != 0)
        .map(|(_, v)| v.clone())
        .collect()
}

struct Member {
    id: String,
    company: String,
    account_type: String,
    http: Http,
}

struct World {
    env: Env,
    model: Model,
    users: Vec<Member>,
    companies: Vec<String>,
    created: usize,
}

static TRIED: AtomicUsize = AtomicUsize::new(0);
static ALLOWED: AtomicUsize = AtomicUsize::new(0);
static CHECKS: AtomicUsize = AtomicUsize::new(0);

/// A server on a copy of `folder`, one company per account type and one user per role there.
async fn world(folder: &str, model: &Model) -> World {
    let fx = Fixture::new();
    let policies = fx.policies();
    std::fs::remove_dir_all(&policies).unwrap();
    crate::common::copy_dir(&folder_path(folder), &policies);
    std::fs::write(fx.entities(), "[]").unwrap();
    let url = sqlite_url(&fx);
    let env = env_at(fx, url).await;
    let store: &dyn UserStore = &*env.store;
    let mut users = Vec::new();
    let mut companies = Vec::new();
    for (ty, roles) in &model.types {
        let company = format!("co-{ty}");
        store
            .create_company(
                NewCompany {
                    id: company.clone(),
                    name: company.clone(),
                    account_type: ty.clone(),
                    ..NewCompany::default()
                },
                &Audit::system(),
            )
            .await
            .unwrap();
        for role in roles {
            let id = format!("{ty}-{role}");
            store
                .create_user(
                    NewUser {
                        id: Some(id.clone()),
                        company: company.clone(),
                        login: format!("{id}@example.com"),
                        role: role.clone(),
                        ..NewUser::default()
                    },
                    &Audit::system(),
                )
                .await
                .unwrap();
            let key = key_for(store, &id).await;
            users.push(Member {
                id,
                company: company.clone(),
                account_type: ty.clone(),
                http: Http::new(&env.server).with_key(&key),
            });
        }
        companies.push(company);
    }
    World {
        env,
        model: model.clone(),
        users,
        companies,
        created: 0,
    }
}

async fn allowed(http: &Http, principal: &str, resource: Value) -> BTreeSet<String> {
    let mut body = json!({ "principal": principal });
    body.as_object_mut()
        .unwrap()
        .extend(resource.as_object().unwrap().clone());
    let (s, b) = http.post("/v1/permissions", &body).await;
    assert_eq!(s, 200, "{principal}: {body}: {b}");
    CHECKS.fetch_add(1, Ordering::Relaxed);
    b["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// After `caller` changed `target`: every action `target` is allowed, `caller` is allowed too.
async fn holds_no_more(w: &World, caller: usize, target: usize, what: &str) -> Result<(), TestCaseError> {
    let ns = &w.model.ns;
    let (c, t) = (&w.users[caller], &w.users[target]);
    let uid = |ty: &str, id: &str| format!("{ns}::{ty}::\"{id}\"");
    let mut sample: Vec<Value> = Vec::new();
    if c.company == t.company {
        for ty in &w.model.record_types {
            sample.push(json!({ "resource_type": ty }));
        }
    }
    for co in &w.companies {
        sample.push(json!({ "resource": uid("Company", co) }));
    }
    for u in &w.users {
        if u.id != c.id && u.id != t.id {
            sample.push(json!({ "resource": uid("User", &u.id) }));
        }
    }
    let http = &w.users[0].http;
    for res in sample {
        let mine = allowed(http, &uid("User", &c.id), res.clone()).await;
        let theirs = allowed(http, &uid("User", &t.id), res.clone()).await;
        let extra: Vec<&String> = theirs.difference(&mine).collect();
        prop_assert!(
            extra.is_empty(),
            "{what}: `{}` holds {extra:?} on {res}, which `{}` lacks",
            t.id,
            c.id
        );
    }
    Ok(())
}

async fn run(folder: &str, model: &Model, calls: Vec<Call>) -> Result<(), TestCaseError> {
    let mut w = world(folder, model).await;
    for call in calls {
        TRIED.fetch_add(1, Ordering::Relaxed);
        let n = w.users.len();
        let what = format!("{folder}: {call:?}");
        // Targets are picked among the caller's colleagues, so that many calls are decided on
        // their merits rather than refused across tenants.
        let colleague = |caller: usize, target: usize| {
            let company = &w.users[caller % n].company;
            let mates: Vec<usize> = (0..n).filter(|i| w.users[*i].company == *company).collect();
            mates[target % mates.len()]
        };
        let (caller, target, status, body) = match &call {
            Call::Create {
                caller,
                role,
                flags,
                addons,
            } => {
                let c = &w.users[caller % n];
                let roles = &w
                    .model
                    .types
                    .iter()
                    .find(|(t, _)| *t == c.account_type)
                    .unwrap()
                    .1;
                let id = format!("new{}", w.created);
                let body = json!({
                    "id": id, "login": format!("{id}@example.com"), "company": c.company,
                    "role": roles[role % roles.len()],
                    "flags": subset(&w.model.flags, *flags),
                    "addons": subset(&w.model.addons, *addons),
                });
                let (s, b) = c.http.post("/v1/users", &body).await;
                let company = c.company.clone();
                let account_type = c.account_type.clone();
                if s == 201 {
                    w.created += 1;
                    let key = key_for(&*w.env.store, &id).await;
                    let http = Http::new(&w.env.server).with_key(&key);
                    w.users.push(Member {
                        id,
                        company,
                        account_type,
                        http,
                    });
                }
                (caller % n, w.users.len() - 1, s, b)
            }
            Call::SetRole { caller, target, role } => {
                let target = &colleague(*caller, *target);
                let t = &w.users[*target];
                let roles = &w
                    .model
                    .types
                    .iter()
                    .find(|(ty, _)| *ty == t.account_type)
                    .unwrap()
                    .1;
                let body = json!({ "role": roles[role % roles.len()] });
                let path = format!("/v1/users/{}/role", t.id);
                let (s, b) = w.users[caller % n]
                    .http
                    .send("PUT", &path, serde_json::to_vec(&body).unwrap())
                    .await;
                (caller % n, *target, s, b)
            }
            Call::SetFlags {
                caller,
                target,
                flags,
            } => {
                let target = &colleague(*caller, *target);
                let body = json!({ "flags": subset(&w.model.flags, *flags) });
                let path = format!("/v1/users/{}", w.users[*target].id);
                let (s, b) = w.users[caller % n]
                    .http
                    .send("PATCH", &path, serde_json::to_vec(&body).unwrap())
                    .await;
                (caller % n, *target, s, b)
            }
            Call::SetAddons {
                caller,
                target,
                addons,
            } => {
                let target = &colleague(*caller, *target);
                let body = json!({ "addons": subset(&w.model.addons, *addons) });
                let path = format!("/v1/users/{}", w.users[*target].id);
                let (s, b) = w.users[caller % n]
                    .http
                    .send("PATCH", &path, serde_json::to_vec(&body).unwrap())
                    .await;
                (caller % n, *target, s, b)
            }
        };
        prop_assert!(
            (200..300).contains(&status) || [403, 404, 409, 422].contains(&status),
            "{what}: unexpected {status} {body}"
        );
        // A call on oneself that succeeds changes nothing another manager could compare.
        if (200..300).contains(&status) && caller != target {
            ALLOWED.fetch_add(1, Ordering::Relaxed);
            holds_no_more(&w, caller, target, &what).await?;
        }
    }
    Ok(())
}

#[test]
fn no_manager_of_any_folder_gives_what_it_does_not_hold() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let mut failures = Vec::new();
    let folders = crate::common::portal_folders();
    for folder in &folders {
        let (tried, allowed) = (TRIED.load(Ordering::Relaxed), ALLOWED.load(Ordering::Relaxed));
        let model = model_of(folder);
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 32,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&proptest::collection::vec(call(), 4..14), |calls| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run(folder, &model, calls))
        });
        eprintln!(
            "folder delegation: {folder}: {} calls tried, {} allowed and checked",
            TRIED.load(Ordering::Relaxed) - tried,
            ALLOWED.load(Ordering::Relaxed) - allowed
        );
        if let Err(e) = result {
            failures.push(format!("{folder}: {e}"));
        }
    }
    eprintln!(
        "folder delegation: {} folders x {cases} sequences, {} calls tried, {} allowed, {} permission checks, {:.1?}",
        folders.len(),
        TRIED.load(Ordering::Relaxed),
        ALLOWED.load(Ordering::Relaxed),
        CHECKS.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
