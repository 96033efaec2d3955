//! Delegation property over HTTP (issue 13): random sequences of management calls by random
//! callers against `policies/` with a SQLite store; after each allowed call, the user it
//! created or changed holds no right its caller lacks, compared with `POST /v1/permissions` on
//! a fixed sample of resources (records of both account types: shipments, locations, actors,
//! customer profiles, declarations, companies).
//!
//! `PROPTEST_CASES` sets the number of sequences (8 by default, a short CI run); each case
//! starts its own server. Figures (calls tried and allowed, checks, time) go to stderr.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use portcullis_store::{Audit, NewCompany, NewUser, UserStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::common::{Fixture, Http};
use crate::manage::{env_at, key_for, sqlite_url, Env};

/// Roles a call may give (every role of `policies/`).
const ROLES: &[&str] = &[
    "owner", "admin", "regular", "visitor", "user", "operator", "viewer",
];

/// The resources whose allowed actions are compared.
const SAMPLE: &[&str] = &[
    r#"Portal::Shipment::"s1""#,
    r#"Portal::Shipment::"s2""#,
    r#"Portal::Location::"l1""#,
    r#"Portal::Location::"l2""#,
    r#"Portal::Actor::"a1""#,
    r#"Portal::Actor::"a2""#,
    r#"Portal::CustomerProfile::"c1""#,
    r#"Portal::CustomerProfile::"c2""#,
    r#"Portal::Declaration::"d1""#,
    r#"Portal::Declaration::"d2""#,
    r#"Portal::Company::"acme""#,
    r#"Portal::Company::"fw""#,
];

static TRIED: AtomicUsize = AtomicUsize::new(0);
static ALLOWED: AtomicUsize = AtomicUsize::new(0);
static CHECKS: AtomicUsize = AtomicUsize::new(0);

fn r(ty: &str, id: &str) -> Value {
    json!({ "__entity": { "type": format!("Portal::{ty}"), "id": id } })
}

fn held(ty: &str, id: &str, attrs: Value, parents: &[(&str, &str)]) -> Value {
    let parents: Vec<Value> = parents
        .iter()
        .map(|(t, i)| json!({ "type": format!("Portal::{t}"), "id": i }))
        .collect();
    json!({ "uid": { "type": format!("Portal::{ty}"), "id": id }, "attrs": attrs, "parents": parents })
}

/// A scope and customer access a call may give (or a caller may hold).
#[derive(Debug, Clone, Copy)]
struct Reach {
    scope: u8,
    customers: u8,
}

impl Reach {
    fn attrs(self) -> Value {
        let (scope_all, locations, actors) = match self.scope % 4 {
            0 => (true, json!([]), json!([])),
            1 => (false, json!([r("Location", "l1")]), json!([])),
            2 => (false, json!([r("Location", "l2")]), json!([])),
            _ => (false, json!([r("Location", "l1")]), json!([r("Actor", "a2")])),
        };
        let (all_customers, customers) = match self.customers % 4 {
            0 => (true, json!([])),
            1 => (false, json!([r("CustomerProfile", "c1")])),
            2 => (false, json!([r("CustomerProfile", "c2")])),
            _ => (false, json!([])),
        };
        json!({ "scope_all": scope_all, "locations": locations, "actors": actors,
                "all_customers": all_customers, "customers": customers })
    }
}

/// One management call: who makes it, what it does.
#[derive(Debug, Clone)]
enum Call {
    Create {
        caller: usize,
        role: usize,
        reach: Reach,
    },
    SetAttrs {
        caller: usize,
        target: usize,
        reach: Reach,
    },
    SetRole {
        caller: usize,
        target: usize,
        role: usize,
    },
    SetAddons {
        caller: usize,
        target: usize,
    },
}

fn reach() -> impl Strategy<Value = Reach> {
    (0u8..4, 0u8..4).prop_map(|(scope, customers)| Reach { scope, customers })
}

/// A caller: mostly one of the first managers (so that many calls are allowed), else anyone.
fn caller() -> impl Strategy<Value = usize> {
    prop_oneof![3 => proptest::sample::select(vec![0usize, 1, 2, 4, 5]), 1 => 0usize..64]
}

fn call() -> impl Strategy<Value = Call> {
    let who = 0usize..64;
    prop_oneof![
        (caller(), 0..ROLES.len(), reach()).prop_map(|(caller, role, reach)| Call::Create {
            caller,
            role,
            reach
        }),
        (caller(), who.clone(), reach()).prop_map(|(caller, target, reach)| Call::SetAttrs {
            caller,
            target,
            reach
        }),
        (caller(), who.clone(), 0..ROLES.len()).prop_map(|(caller, target, role)| Call::SetRole {
            caller,
            target,
            role
        }),
        (caller(), who).prop_map(|(caller, target)| Call::SetAddons { caller, target }),
    ]
}

struct World {
    env: Env,
    /// Users that may call: id, company, client.
    users: Vec<(String, String, Http)>,
    created: usize,
}

async fn world() -> World {
    let fx = Fixture::new();
    let nobody = r("User", "nobody");
    let entities = vec![
        held("Location", "l1", json!({}), &[("Company", "acme")]),
        held("Location", "l2", json!({}), &[("Company", "acme")]),
        held("Actor", "a1", json!({}), &[("Location", "l1")]),
        held("Actor", "a2", json!({}), &[("Location", "l2")]),
        held(
            "Shipment",
            "s1",
            json!({ "owner": nobody }),
            &[("Actor", "a1"), ("Location", "l1"), ("Company", "acme")],
        ),
        held(
            "Shipment",
            "s2",
            json!({ "owner": nobody }),
            &[("Actor", "a2"), ("Location", "l2"), ("Company", "acme")],
        ),
        held("CustomerProfile", "c1", json!({}), &[("Company", "fw")]),
        held("CustomerProfile", "c2", json!({}), &[("Company", "fw")]),
        held(
            "Declaration",
            "d1",
            json!({ "owner": nobody }),
            &[("CustomerProfile", "c1"), ("Company", "fw")],
        ),
        held(
            "Declaration",
            "d2",
            json!({ "owner": nobody }),
            &[("CustomerProfile", "c2"), ("Company", "fw")],
        ),
    ];
    std::fs::write(fx.entities(), serde_json::to_vec(&entities).unwrap()).unwrap();
    let url = sqlite_url(&fx);
    let env = env_at(fx, url).await;
    let store: &dyn UserStore = &*env.store;
    for (id, ty) in [("acme", "customer"), ("fw", "forwarder")] {
        store
            .create_company(
                NewCompany {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    account_type: ty.to_owned(),
                    attrs: serde_json::from_value(json!({ "subscription": ["insights"] })).unwrap(),
                    ..NewCompany::default()
                },
                &Audit::system(),
            )
            .await
            .unwrap();
    }
    let first: &[(&str, &str, &str, Reach)] = &[
        (
            "own",
            "acme",
            "owner",
            Reach {
                scope: 0,
                customers: 3,
            },
        ),
        (
            "adm-all",
            "acme",
            "admin",
            Reach {
                scope: 0,
                customers: 3,
            },
        ),
        (
            "adm-l1",
            "acme",
            "admin",
            Reach {
                scope: 1,
                customers: 3,
            },
        ),
        (
            "reg-l1",
            "acme",
            "regular",
            Reach {
                scope: 1,
                customers: 3,
            },
        ),
        (
            "fadm-all",
            "fw",
            "admin",
            Reach {
                scope: 0,
                customers: 0,
            },
        ),
        (
            "fadm-c1",
            "fw",
            "admin",
            Reach {
                scope: 0,
                customers: 1,
            },
        ),
        (
            "fop-c1",
            "fw",
            "operator",
            Reach {
                scope: 0,
                customers: 1,
            },
        ),
    ];
    let mut users = Vec::new();
    for (id, company, role, reach) in first {
        store
            .create_user(
                NewUser {
                    id: Some((*id).to_owned()),
                    company: (*company).to_owned(),
                    login: (*id).to_owned(),
                    role: (*role).to_owned(),
                    attrs: reach.attrs().as_object().unwrap().clone(),
                    ..NewUser::default()
                },
                &Audit::system(),
            )
            .await
            .unwrap();
        let http = Http::new(&env.server).with_key(&key_for(store, id).await);
        users.push(((*id).to_owned(), (*company).to_owned(), http));
    }
    World {
        env,
        users,
        created: 0,
    }
}

async fn allowed(http: &Http, principal: &str, resource: &str) -> BTreeSet<String> {
    let (s, b) = http
        .post(
            "/v1/permissions",
            &json!({ "principal": principal, "resource": resource }),
        )
        .await;
    assert_eq!(s, 200, "{principal} on {resource}: {b}");
    CHECKS.fetch_add(1, Ordering::Relaxed);
    b["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// After `caller` changed `target`: every action `target` is allowed on a sample resource,
/// `caller` is allowed too.
async fn holds_no_more(w: &World, caller: &str, target: &str, what: &str) -> Result<(), TestCaseError> {
    let http = &w.users[0].2;
    for res in SAMPLE {
        let mine = allowed(http, caller, res).await;
        let theirs = allowed(http, target, res).await;
        let extra: Vec<&String> = theirs.difference(&mine).collect();
        prop_assert!(
            extra.is_empty(),
            "{what}: `{target}` holds {extra:?} on {res}, which `{caller}` lacks"
        );
    }
    Ok(())
}

async fn run(calls: Vec<Call>) -> Result<(), TestCaseError> {
    let mut w = world().await;
    for c in calls {
        TRIED.fetch_add(1, Ordering::Relaxed);
        let n = w.users.len();
        let (caller, target, status, body, what) = match &c {
            Call::Create { caller, role, reach } => {
                let (cid, company, http) = w.users[caller % n].clone();
                let id = format!("u{}", w.created);
                let body = json!({ "id": id, "login": id, "company": company, "role": ROLES[*role], "attrs": reach.attrs() });
                let (s, b) = http.post("/v1/users", &body).await;
                if s == 201 {
                    w.created += 1;
                    let key = key_for(&*w.env.store, &id).await;
                    let client = Http::new(&w.env.server).with_key(&key);
                    w.users.push((id.clone(), company.clone(), client));
                }
                (cid, id, s, b, format!("{c:?}"))
            }
            Call::SetAttrs {
                caller,
                target,
                reach,
            } => {
                let (cid, _, http) = &w.users[caller % n];
                let tid = w.users[target % n].0.clone();
                let body = serde_json::to_vec(&json!({ "attrs": reach.attrs() })).unwrap();
                let (s, b) = http.send("PATCH", &format!("/v1/users/{tid}"), body).await;
                (cid.clone(), tid, s, b, format!("{c:?}"))
            }
            Call::SetRole { caller, target, role } => {
                let (cid, _, http) = &w.users[caller % n];
                let tid = w.users[target % n].0.clone();
                let body = serde_json::to_vec(&json!({ "role": ROLES[*role] })).unwrap();
                let (s, b) = http.send("PUT", &format!("/v1/users/{tid}/role"), body).await;
                (cid.clone(), tid, s, b, format!("{c:?}"))
            }
            Call::SetAddons { caller, target } => {
                let (cid, _, http) = &w.users[caller % n];
                let tid = w.users[target % n].0.clone();
                let body = serde_json::to_vec(&json!({ "addons": ["all_action_centers"] })).unwrap();
                let (s, b) = http.send("PATCH", &format!("/v1/users/{tid}"), body).await;
                (cid.clone(), tid, s, b, format!("{c:?}"))
            }
        };
        prop_assert!(
            (200..300).contains(&status) || [403, 404, 409, 422].contains(&status),
            "{what}: unexpected {status} {body}"
        );
        if (200..300).contains(&status) {
            ALLOWED.fetch_add(1, Ordering::Relaxed);
            holds_no_more(&w, &caller, &target, &what).await?;
        }
    }
    Ok(())
}

#[test]
fn no_manager_gives_what_it_does_not_hold() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(call(), 4..16), |calls| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(calls))
    });
    eprintln!(
        "delegation: {cases} sequences, {} calls tried, {} allowed, {} permission checks, {:.1?}",
        TRIED.load(Ordering::Relaxed),
        ALLOWED.load(Ordering::Relaxed),
        CHECKS.load(Ordering::Relaxed),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
