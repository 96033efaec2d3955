//! Privilege escalation over HTTP: every (caller role, action, target role, account type,
//! scope) combination of the default folder `policies/` sent to a real server with a SQLite
//! store, each answer (2xx vs 403) compared with an expectation computed here, independently
//! of the Cedar files, from `roles.toml` (`manages`, the roles of each account type, ranks) and
//! the rules the portals' help pages state:
//!
//! - a user gives only roles its own role `manages`, to users whose current role it manages,
//!   in its own company or a company of its enterprise below it, never a role the target
//!   company's account type forbids (the shipping platform: carriers are never Owners or Visitors);
//! - in Customer accounts only the Owner gives the Admin role (the shipping platform);
//! - whoever gives a scope holds all of it (the shipping platform);
//! - nobody changes its own Admin role or moves itself (the load planner), nobody reaches into another
//!   company: moves, accessible companies, deactivations and deletions included;
//! - and, whatever the files say, no allowed assignment gives a role ranked above the
//!   caller's.
//!
//! Companies and permission groups too: only an Owner (an Admin where there are no Owners)
//! shapes its enterprise below its own company, never its own terms or another tenant.
//!
//! Sequences: create-then-promote, invite-then-accept with an altered role, set-role on self.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

use portcullis_store::{Audit, NewCompany, NewUser, UserStore};
use serde_json::{json, Value};

use crate::common::{send, Http};
use crate::manage::{key_for, loc, sqlite_env};

/// The default folder's role model, read from `roles.toml` with a plain TOML parser.
struct Model {
    manages: BTreeMap<String, BTreeSet<String>>,
    rank: BTreeMap<String, i64>,
    types: BTreeMap<String, BTreeSet<String>>,
}

fn model() -> Model {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/roles.toml");
    let doc: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let names = |v: Option<&toml::Value>| -> BTreeSet<String> {
        v.and_then(toml::Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut m = Model {
        manages: BTreeMap::new(),
        rank: BTreeMap::new(),
        types: BTreeMap::new(),
    };
    for (name, r) in doc["roles"].as_table().unwrap() {
        m.manages.insert(name.clone(), names(r.get("manages")));
        m.rank.insert(
            name.clone(),
            r.get("rank").and_then(toml::Value::as_integer).unwrap(),
        );
    }
    for (name, t) in doc["account_types"].as_table().unwrap() {
        m.types.insert(name.clone(), names(t.get("roles")));
    }
    m
}

/// A scope: everything, or some locations.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scope {
    All,
    L1,
    L2,
}

impl Scope {
    fn attrs(self) -> serde_json::Map<String, Value> {
        let v = match self {
            Scope::All => json!({ "scope_all": true }),
            Scope::L1 => json!({ "scope_all": false, "locations": [loc("l1")] }),
            Scope::L2 => json!({ "scope_all": false, "locations": [loc("l2")] }),
        };
        v.as_object().unwrap().clone()
    }
    /// Whether a holder of `self` may give `given`.
    fn covers(self, given: Scope) -> bool {
        match self {
            Scope::All => true,
            Scope::L1 => given == Scope::L1,
            Scope::L2 => given == Scope::L2,
        }
    }
}

#[derive(Clone)]
struct Caller {
    ty: String,
    role: String,
    scope: Scope,
    http: Http,
}

/// The companies of one account type: `home-T`, its sub-company `home-T-sub`, and `far-T`,
/// another tenant.
fn home(ty: &str) -> String {
    format!("home-{ty}")
}
fn sub(ty: &str) -> String {
    format!("home-{ty}-sub")
}
fn far(ty: &str) -> String {
    format!("far-{ty}")
}
fn type_of(company: &str) -> String {
    company
        .trim_start_matches("home-")
        .trim_start_matches("far-")
        .trim_end_matches("-sub")
        .to_owned()
}

static SEQ: AtomicU32 = AtomicU32::new(0);
fn fresh(prefix: &str) -> String {
    format!("{prefix}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

async fn stored_user(store: &dyn UserStore, company: &str, role: &str, scope: Scope) -> String {
    let id = fresh(&format!("t-{company}-{role}"));
    store
        .create_user(
            NewUser {
                id: Some(id.clone()),
                company: company.to_owned(),
                login: id.clone(),
                role: role.to_owned(),
                attrs: scope.attrs(),
                ..NewUser::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    id
}

/// What one combination is and what came back.
struct Outcome {
    what: String,
    expected: bool,
    status: u16,
    body: Value,
}

impl Model {
    fn may_give(&self, c: &Caller, company: &str, current: &str, given: &str, scope: Scope) -> bool {
        let m = &self.manages[&c.role];
        let inside = company == home(&c.ty) || company == sub(&c.ty);
        let customer_admin = c.role == "admin" && c.ty == "customer" && given == "admin";
        let type_allows = self.types[&type_of(company)].contains(given);
        inside
            && m.contains(current)
            && m.contains(given)
            && !customer_admin
            // "All locations and actors of the installation are available to the owner",
            // whatever scope the store holds for it.
            && (c.role == "owner" || c.scope.covers(scope))
            && type_allows
    }
    fn may_manage(&self, c: &Caller, company: &str, role: &str) -> bool {
        let inside = company == home(&c.ty) || company == sub(&c.ty);
        inside && self.manages[&c.role].contains(role)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_combination_escalates() {
    let env = sqlite_env().await;
    let store = &*env.store;
    let model = model();
    let types: Vec<String> = model.types.keys().cloned().collect();
    let all_roles: Vec<String> = model.rank.keys().cloned().collect();
    for t in &types {
        for (id, parent) in [(home(t), None), (sub(t), Some(home(t))), (far(t), None)] {
            store
                .create_company(
                    NewCompany {
                        id: id.clone(),
                        name: id.clone(),
                        account_type: t.clone(),
                        parent,
                        ..NewCompany::default()
                    },
                    &Audit::system(),
                )
                .await
                .unwrap();
        }
    }
    // Callers: every role of every account type, with every location or only `l1`.
    let mut callers = Vec::new();
    for t in &types {
        for r in &model.types[t] {
            for scope in [Scope::All, Scope::L1] {
                let id = stored_user(store, &home(t), r, scope).await;
                let key = key_for(store, &id).await;
                callers.push(Caller {
                    ty: t.clone(),
                    role: r.clone(),
                    scope,
                    http: Http::new(&env.server).with_key(&key),
                });
            }
        }
    }
    let mut out: Vec<Outcome> = Vec::new();
    let started = std::time::Instant::now();
    for c in &callers {
        let who = format!("{}/{}/{:?}", c.ty, c.role, c.scope);
        let mut companies = vec![home(&c.ty), sub(&c.ty)];
        companies.extend(types.iter().map(|t| far(t)));

        // Create and invite: every role, every company, every scope.
        for company in &companies {
            for given in &all_roles {
                for scope in [Scope::All, Scope::L1, Scope::L2] {
                    let expected = model.may_give(c, company, given, given, scope);
                    let id = fresh("new");
                    let body = json!({ "id": id, "login": id, "company": company, "role": given, "attrs": scope.attrs() });
                    let (status, b) = c.http.post("/v1/users", &body).await;
                    out.push(Outcome {
                        what: format!("{who} creates {given} {scope:?} in {company}"),
                        expected,
                        status,
                        body: b,
                    });
                    let body = json!({ "email": format!("{id}@x.test"), "company": company, "role": given, "attrs": scope.attrs() });
                    let (status, b) = c.http.post("/v1/invitations", &body).await;
                    out.push(Outcome {
                        what: format!("{who} invites {given} {scope:?} to {company}"),
                        expected,
                        status,
                        body: b,
                    });
                }
            }
        }

        // Changes to existing users: every role of every company; a fresh target per write.
        for company in &companies {
            for current in &model.types[&type_of(company)] {
                let mut checks: Vec<(String, String, String, Value, bool)> = Vec::new();
                for given in &all_roles {
                    checks.push((
                        format!("sets role {given}"),
                        "PUT".into(),
                        "role".into(),
                        json!({ "role": given }),
                        model.may_give(c, company, current, given, Scope::L1),
                    ));
                }
                let same = model.may_give(c, company, current, current, Scope::L1);
                checks.push((
                    "sets flags".into(),
                    "PATCH".into(),
                    String::new(),
                    json!({ "flags": ["mfa"] }),
                    same,
                ));
                checks.push((
                    "isolates".into(),
                    "PATCH".into(),
                    String::new(),
                    json!({ "flags": ["isolated"] }),
                    same,
                ));
                checks.push((
                    "sets add-ons".into(),
                    "PATCH".into(),
                    String::new(),
                    json!({ "addons": ["all_action_centers"] }),
                    same,
                ));
                for scope in [Scope::All, Scope::L2] {
                    checks.push((
                        format!("sets scope {scope:?}"),
                        "PATCH".into(),
                        String::new(),
                        json!({ "attrs": scope.attrs() }),
                        model.may_give(c, company, current, current, scope),
                    ));
                }
                for dest in [sub(&c.ty), far(&c.ty)] {
                    for role in [None, Some("owner"), Some("admin")] {
                        let there = role.unwrap_or(current);
                        checks.push((
                            format!("gives access to {dest} as {there}"),
                            "PUT".into(),
                            "companies".into(),
                            json!({ "companies": [{ "company": dest, "role": role }] }),
                            same && model.may_give(c, &dest, there, there, Scope::L1),
                        ));
                    }
                }
                let elsewhere = if *company == sub(&c.ty) {
                    home(&c.ty)
                } else {
                    sub(&c.ty)
                };
                for dest in [elsewhere, far(&c.ty)] {
                    checks.push((
                        format!("moves to {dest}"),
                        "POST".into(),
                        "move".into(),
                        json!({ "company": dest }),
                        model.may_manage(c, company, current)
                            && model.may_give(c, &dest, current, current, Scope::L1),
                    ));
                }
                let manage = model.may_manage(c, company, current);
                checks.push((
                    "deactivates".into(),
                    "POST".into(),
                    "deactivate".into(),
                    json!({}),
                    manage,
                ));
                checks.push((
                    "reactivates".into(),
                    "POST".into(),
                    "reactivate".into(),
                    json!({}),
                    manage,
                ));
                checks.push((
                    "deletes".into(),
                    "DELETE".into(),
                    String::new(),
                    Value::Null,
                    manage,
                ));
                for (what, method, tail, body, expected) in checks {
                    let target = stored_user(store, company, current, Scope::L1).await;
                    if tail == "reactivate" {
                        store.deactivate_user(&target, &Audit::system()).await.unwrap();
                    }
                    let path = if tail.is_empty() {
                        format!("/v1/users/{target}")
                    } else {
                        format!("/v1/users/{target}/{tail}")
                    };
                    let (status, b) = send(&c.http, &method, &path, body).await;
                    out.push(Outcome {
                        what: format!("{who} {what} of a {current} of {company}"),
                        expected,
                        status,
                        body: b,
                    });
                }
            }
        }
    }

    // On itself: a role change, a move, scopes, add-ons, accessible companies; each on a fresh
    // copy of the caller.
    for c in &callers {
        let who = format!("{}/{}/{:?}", c.ty, c.role, c.scope);
        let mut checks: Vec<(String, String, String, Value, bool)> = Vec::new();
        for given in &all_roles {
            // Keeping one's own role is no change; any other is refused (the load planner).
            let expected = given == &c.role && model.may_give(c, &home(&c.ty), &c.role, given, c.scope);
            checks.push((
                format!("sets its own role to {given}"),
                "PUT".into(),
                "role".into(),
                json!({ "role": given }),
                expected,
            ));
        }
        checks.push((
            format!("moves itself to {}", sub(&c.ty)),
            "POST".into(),
            "move".into(),
            json!({ "company": sub(&c.ty) }),
            false,
        ));
        checks.push((
            "widens its own scope".into(),
            "PATCH".into(),
            String::new(),
            json!({ "attrs": Scope::All.attrs() }),
            c.scope == Scope::All && model.may_give(c, &home(&c.ty), &c.role, &c.role, Scope::All),
        ));
        checks.push((
            format!("gives itself access to {} as owner", far(&c.ty)),
            "PUT".into(),
            "companies".into(),
            json!({ "companies": [{ "company": far(&c.ty), "role": "owner" }] }),
            false,
        ));
        for (what, method, tail, body, expected) in checks {
            let me = stored_user(store, &home(&c.ty), &c.role, c.scope).await;
            let http = Http::new(&env.server).with_key(&key_for(store, &me).await);
            let path = if tail.is_empty() {
                format!("/v1/users/{me}")
            } else {
                format!("/v1/users/{me}/{tail}")
            };
            let (status, b) = send(&http, &method, &path, body).await;
            out.push(Outcome {
                what: format!("{who} {what}"),
                expected,
                status,
                body: b,
            });
        }
    }

    // Companies and permission groups: only an Owner (or, where there are no Owners, an
    // Admin) shapes its own enterprise below its company, never its own terms, never another
    // tenant; only Owners define groups.
    for c in &callers {
        let who = format!("{}/{}/{:?}", c.ty, c.role, c.scope);
        let shaper = c.role == "owner" || (c.role == "admin" && c.ty != "customer");
        let mut checks: Vec<(String, String, String, Value, bool)> = Vec::new();
        for t in &types {
            let id = fresh("co");
            checks.push((
                format!("creates a {t} sub-company"),
                "POST".into(),
                "/v1/companies".into(),
                json!({ "id": id, "account_type": t }),
                shaper && *t == c.ty,
            ));
            let id = fresh("co");
            checks.push((
                format!("creates a {t} company under {}", far(t)),
                "POST".into(),
                "/v1/companies".into(),
                json!({ "id": id, "account_type": t, "parent": far(t) }),
                false,
            ));
        }
        for (company, field, value, expected) in [
            (home(&c.ty), "name", json!("renamed"), shaper),
            (home(&c.ty), "user_limit", json!(1000), false),
            (home(&c.ty), "account_type", json!("customer"), false),
            (sub(&c.ty), "user_limit", json!(1000), shaper),
            (far(&c.ty), "name", json!("mine"), false),
        ] {
            checks.push((
                format!("sets {field} of {company}"),
                "PATCH".into(),
                format!("/v1/companies/{company}"),
                json!({ field: value }),
                expected,
            ));
        }
        checks.push((
            "creates a permission group".into(),
            "POST".into(),
            "/v1/groups".into(),
            json!({ "name": fresh("g") }),
            c.role == "owner",
        ));
        for (what, method, path, body, expected) in checks {
            let (status, b) = send(&c.http, &method, &path, body).await;
            out.push(Outcome {
                what: format!("{who} {what}"),
                expected,
                status,
                body: b,
            });
        }
    }

    // Whatever the files say: no allowed assignment gives a role ranked above the caller's.
    let mut wrong: Vec<String> = Vec::new();
    for o in &out {
        let allowed = (200..300).contains(&o.status);
        // 404: a target the caller may not read is answered as a missing one.
        let refused = o.status == 403 || o.status == 404;
        if !(allowed || refused) || allowed != o.expected {
            wrong.push(format!(
                "{}: expected {}, got {} {}",
                o.what,
                if o.expected { "2xx" } else { "403 or 404" },
                o.status,
                o.body
            ));
        }
        if allowed {
            if let Some(role) = o.body.get("role").and_then(Value::as_str).or_else(|| {
                o.body
                    .get("invitation")
                    .and_then(|i| i.get("role"))
                    .and_then(Value::as_str)
            }) {
                let caller_role = o.what.split('/').nth(1).unwrap();
                assert!(
                    model.rank[role] <= model.rank[caller_role],
                    "{}: gave {role}, above {caller_role}",
                    o.what
                );
            }
        }
    }
    let allowed = out.iter().filter(|o| o.expected).count();
    eprintln!(
        "escalation: {} combinations checked ({allowed} allowed, {} refused) by {} callers in {:?}",
        out.len(),
        out.len() - allowed,
        callers.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} combinations disagree:\n{}",
        wrong.len(),
        out.len(),
        wrong.join("\n")
    );
}

/// Sequences: a user created inside the rules and then promoted, an invitation accepted with
/// another role, set-role on self: none ends above what its creator could grant.
#[tokio::test]
async fn no_sequence_escalates() {
    let env = sqlite_env().await;
    let store = &*env.store;
    for (id, ty) in [("acme", "customer"), ("beta", "customer")] {
        crate::manage::company(store, id, ty, None).await;
    }
    let admin_key = crate::manage::user_with_key(store, "adm", "acme", "admin", true).await;
    let admin = Http::new(&env.server).with_key(&admin_key);
    // Create-then-promote: the admin creates a regular, then tries to make it admin or owner.
    let (s, b) = admin
        .post(
            "/v1/users",
            &json!({ "id": "r1", "login": "r1", "role": "regular", "attrs": { "scope_all": true } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    for role in ["admin", "owner"] {
        let (s, b) = send(&admin, "PUT", "/v1/users/r1/role", json!({ "role": role })).await;
        assert_eq!(s, 403, "{role}: {b}");
        let (s, b) = send(&admin, "PATCH", "/v1/users/r1", json!({ "role": role })).await;
        assert_eq!(s, 403, "{role}: {b}");
    }
    // The created user itself cannot promote itself or its creator.
    let r1 = Http::new(&env.server).with_key(&key_for(store, "r1").await);
    for (target, role) in [("r1", "admin"), ("r1", "owner"), ("adm", "owner")] {
        let (s, b) = send(
            &r1,
            "PUT",
            &format!("/v1/users/{target}/role"),
            json!({ "role": role }),
        )
        .await;
        // Its creator, which it may not read, is answered as a missing user.
        let want = if target == "adm" { 404 } else { 403 };
        assert_eq!(s, want, "{target} {role}: {b}");
    }
    // Invite-then-accept with another role: the token fixes the role; an extra field is refused.
    let (s, b) = admin
        .post(
            "/v1/invitations",
            &json!({ "email": "i@acme.test", "role": "regular" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    let anon = Http::new(&env.server);
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": token, "user_id": "i1", "role": "owner" }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = anon
        .post(
            "/v1/invitations/accept",
            &json!({ "token": token, "user_id": "i1" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["role"], "regular");
    // Set-role on self: the admin cannot make itself owner, nor leave its role (the load planner).
    for role in ["owner", "regular"] {
        let (s, b) = send(&admin, "PUT", "/v1/users/adm/role", json!({ "role": role })).await;
        assert_eq!(s, 403, "{role}: {b}");
    }
    // Accessible companies: no access to another tenant, no higher role in a sub-company.
    let (s, b) = send(
        &admin,
        "PUT",
        "/v1/users/r1/companies",
        json!({ "companies": [{ "company": "beta", "role": "owner" }] }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    // After all that, r1 is still a regular user.
    let u = store.get_user("r1").await.unwrap();
    assert_eq!(u.role, "regular");
    assert!(u.accessible.is_empty(), "{:?}", u.accessible);
}

// ---- Issue 13: each escalation reproduced over HTTP, now refused ----------------------------

/// A server on `policies/` with the test entities and `extra` held entities, and a SQLite
/// store.
async fn env_holding(extra: Vec<Value>) -> crate::manage::Env {
    let fx = crate::common::Fixture::new();
    let path = fx.entities();
    let mut all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    all.extend(extra);
    std::fs::write(&path, serde_json::to_vec(&all).unwrap()).unwrap();
    let url = crate::manage::sqlite_url(&fx);
    crate::manage::env_at(fx, url).await
}

/// A server on a copy of `examples/<name>` (no held entities) with a SQLite store.
async fn env_on_example(name: &str) -> crate::manage::Env {
    let fx = crate::common::Fixture::new();
    let policies = fx.policies();
    std::fs::remove_dir_all(&policies).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    crate::common::copy_dir(&src, &policies);
    std::fs::write(fx.entities(), "[]").unwrap();
    let url = crate::manage::sqlite_url(&fx);
    crate::manage::env_at(fx, url).await
}

fn entity(ty: &str, id: &str, parents: &[(&str, &str)]) -> Value {
    let parents: Vec<Value> = parents
        .iter()
        .map(|(t, i)| json!({ "type": format!("Portal::{t}"), "id": i }))
        .collect();
    json!({ "uid": { "type": format!("Portal::{ty}"), "id": id }, "attrs": {}, "parents": parents })
}

fn reference(ty: &str, id: &str) -> Value {
    json!({ "__entity": { "type": format!("Portal::{ty}"), "id": id } })
}

/// A user created by the operator (the store, no decision), and its API client.
async fn user_with(env: &crate::manage::Env, id: &str, company: &str, role: &str, attrs: Value) -> Http {
    let store = &*env.store;
    store
        .create_user(
            NewUser {
                id: Some(id.to_owned()),
                company: company.to_owned(),
                login: id.to_owned(),
                role: role.to_owned(),
                attrs: attrs.as_object().unwrap().clone(),
                ..NewUser::default()
            },
            &Audit::system(),
        )
        .await
        .unwrap();
    Http::new(&env.server).with_key(&key_for(store, id).await)
}

fn message(b: &Value) -> String {
    b["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// Escalation 1: an admin with locations `[l1]` gave a user an actor of `l2` by sending
/// `"actor_locations": [l1]`. The body field is refused, and the server derives the actors'
/// locations from the entities it holds (`[management.derived]`).
#[tokio::test]
async fn actor_locations_come_from_held_entities_not_the_body() {
    let env = env_holding(vec![
        entity("Location", "l1", &[("Company", "acme")]),
        entity("Location", "l2", &[("Company", "acme")]),
        entity("Actor", "a1", &[("Location", "l1")]),
        entity("Actor", "a2", &[("Location", "l2")]),
    ])
    .await;
    crate::manage::company(&*env.store, "acme", "customer", None).await;
    let admin = user_with(
        &env,
        "adm-l1",
        "acme",
        "admin",
        json!({ "scope_all": false, "locations": [loc("l1")] }),
    )
    .await;
    let new_user = |id: &str, actor: &str| {
        json!({ "id": id, "login": id, "role": "regular",
                "attrs": { "scope_all": false, "locations": [loc("l1")], "actors": [reference("Actor", actor)] } })
    };
    // The old trick: a trusted fact in the body.
    let mut body = new_user("u-a2", "a2");
    body["actor_locations"] = json!([loc("l1")]);
    let (s, b) = admin.post("/v1/users", &body).await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("actor_locations"), "{b}");
    // Derived by the server: `a2` is at `l2`, outside the admin's scope.
    let (s, b) = admin.post("/v1/users", &new_user("u-a2", "a2")).await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("scope.assign-within"), "{b}");
    // An actor the server does not hold is at no location the admin holds.
    let (s, b) = admin.post("/v1/users", &new_user("u-a9", "a9")).await;
    assert_eq!(s, 403, "{b}");
    // The same on a change of an existing user's scope, and on an invitation.
    let (s, b) = admin.post("/v1/users", &new_user("u-a1", "a1")).await;
    assert_eq!(s, 201, "an actor at the admin's own location: {b}");
    let patch = json!({ "attrs": { "scope_all": false, "locations": [loc("l1")], "actors": [reference("Actor", "a2")] } });
    let (s, b) = send(&admin, "PATCH", "/v1/users/u-a1", patch).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = admin
        .post(
            "/v1/invitations",
            &json!({ "email": "a2@acme.test", "role": "regular",
                     "attrs": { "scope_all": false, "actors": [reference("Actor", "a2")] } }),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert!(env.store.get_user("u-a2").await.is_err());
}

/// Escalation 2: a forwarder admin limited to customer `c1` gave itself every customer with
/// `PATCH /v1/users/<self>`. Customer access is decided with the access the user will have
/// (`customers.assign-within`), to itself as to anyone.
#[tokio::test]
async fn limited_forwarder_admin_gives_no_customer_it_lacks() {
    let env = env_holding(Vec::new()).await;
    crate::manage::company(&*env.store, "fw", "forwarder", None).await;
    let limited = json!({ "scope_all": true, "all_customers": false, "customers": [reference("CustomerProfile", "c1")] });
    let admin = user_with(&env, "fw-adm", "fw", "admin", limited.clone()).await;
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/fw-adm",
        json!({ "attrs": { "all_customers": true } }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("customers.assign-within"), "{b}");
    let wider = json!({ "attrs": { "scope_all": true, "all_customers": false,
                                   "customers": [reference("CustomerProfile", "c1"), reference("CustomerProfile", "c2")] } });
    let (s, b) = send(&admin, "PATCH", "/v1/users/fw-adm", wider).await;
    assert_eq!(s, 403, "{b}");
    // Nor to another user, on creation or later.
    let op = |customers: Value, all: bool| {
        json!({ "id": "fw-op", "login": "fw-op", "role": "operator",
                "attrs": { "scope_all": true, "all_customers": all, "customers": customers } })
    };
    let (s, b) = admin.post("/v1/users", &op(json!([]), true)).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = admin
        .post(
            "/v1/users",
            &op(json!([reference("CustomerProfile", "c2")]), false),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = admin
        .post(
            "/v1/users",
            &op(json!([reference("CustomerProfile", "c1")]), false),
        )
        .await;
    assert_eq!(s, 201, "its own customer: {b}");
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/fw-op",
        json!({ "attrs": { "scope_all": true, "all_customers": true } }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let me = env.store.get_user("fw-adm").await.unwrap();
    assert_eq!(me.attrs.get("all_customers"), Some(&json!(false)));
    let op = env.store.get_user("fw-op").await.unwrap();
    assert_eq!(op.attrs.get("all_customers"), Some(&json!(false)));
}

/// Escalation 4: an owner bought paid subscriptions with `PATCH /v1/companies/<own>`, and an
/// owner at its user limit kept adding users in a sub-company it created.
#[tokio::test]
async fn owners_buy_no_subscription_and_sub_companies_share_the_limit() {
    let env = env_holding(Vec::new()).await;
    crate::manage::company(&*env.store, "shop", "customer", Some(2)).await;
    let owner = user_with(&env, "shop-own", "shop", "owner", json!({ "scope_all": true })).await;
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/companies/shop",
        json!({ "attrs": { "subscription": ["insights", "action_centers"] } }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("companies.subscription-by-platform"), "{b}");
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/companies/shop",
        json!({ "name": "Shop AS" }),
    )
    .await;
    assert_eq!(s, 200, "a rename is the owner's: {b}");
    let (s, b) = owner
        .post(
            "/v1/companies",
            &json!({ "id": "shop-paid", "name": "paid", "account_type": "customer", "attrs": { "subscription": ["insights"] } }),
        )
        .await;
    assert_eq!(s, 403, "a sub-company with a subscription: {b}");
    let company = env.store.get_company("shop").await.unwrap();
    assert!(
        company.attrs.get("subscription").is_none_or(|v| v == &json!([])),
        "{company:?}"
    );

    // The limit: two users, the owner and one more.
    let (s, b) = owner
        .post("/v1/users", &json!({ "id": "shop-r1", "login": "shop-r1", "role": "regular", "attrs": { "scope_all": true } }))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = owner
        .post("/v1/users", &json!({ "id": "shop-r2", "login": "shop-r2", "role": "regular", "attrs": { "scope_all": true } }))
        .await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = owner
        .post(
            "/v1/companies",
            &json!({ "id": "shop-sub", "name": "sub", "account_type": "customer" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = send(
        &owner,
        "PATCH",
        "/v1/companies/shop-sub",
        json!({ "user_limit": 50 }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = owner
        .post(
            "/v1/users",
            &json!({ "id": "shop-r3", "login": "shop-r3", "company": "shop-sub", "role": "regular", "attrs": { "scope_all": true } }),
        )
        .await;
    assert_eq!(
        s, 409,
        "the sub-company does not escape the enterprise's limit: {b}"
    );
    assert_eq!(b["error"]["code"], "limit_reached", "{b}");
    // A move inside the enterprise does not count twice.
    let (s, b) = send(
        &owner,
        "POST",
        "/v1/users/shop-r1/move",
        json!({ "company": "shop-sub" }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

/// Escalation 5: finer folder rules were never consulted (add-ons, the Usage Profile, moves,
/// all decided as `user.set_role`), so an admin gave a regular user a feature withheld from
/// the admin itself. Each kind of change is now decided as the folder's own action.
#[tokio::test]
async fn each_change_is_decided_as_the_folders_own_action() {
    let env = on_shipping_platform().await;
    let admin = user_with(
        &env,
        "sp-adm",
        "sp",
        "admin",
        json!({ "scope_all": true, "locations": [], "actors": [], "withheld": ["shipping_rules"] }),
    )
    .await;
    let regular =
        |withheld: Value| json!({ "scope_all": true, "locations": [], "actors": [], "withheld": withheld });
    user_with(
        &env,
        "sp-reg",
        "sp",
        "regular",
        regular(json!(["shipping_rules"])),
    )
    .await;
    // The Usage Profile (`user.set_usage_profile`): nothing withheld from the admin is given.
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/sp-reg",
        json!({ "attrs": regular(json!([])) }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("user.set_usage_profile"), "{b}");
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/sp-reg",
        json!({ "attrs": regular(json!(["shipping_rules", "actors"])) }),
    )
    .await;
    assert_eq!(s, 200, "narrowing is the admin's: {b}");
    // Add-ons (`user.set_addons`): the Owner's alone.
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/sp-reg",
        json!({ "addons": ["all_action_centers"] }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("user.set_addons"), "{b}");
    // A PATCH of several kinds is decided once per kind: the role passes, the add-on does not.
    let (s, b) = send(
        &admin,
        "PATCH",
        "/v1/users/sp-reg",
        json!({ "role": "regular", "addons": ["all_action_centers"] }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let reg = env.store.get_user("sp-reg").await.unwrap();
    assert!(reg.addons.is_empty(), "{reg:?}");
    assert_eq!(
        reg.attrs.get("withheld"),
        Some(&json!(["shipping_rules", "actors"]))
    );
    // An operation the folder does not map is refused, naming the mapping.
    let (s, b) = send(
        &admin,
        "POST",
        "/v1/users/sp-reg/move",
        json!({ "company": "sp" }),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let m = message(&b);
    assert!(
        (m.contains("`user.remove`") || m.contains("`user.move`")) && m.contains("[management.operations]"),
        "{b}"
    );
}

/// Escalation 5 on `examples/load-planner`: a move is decided as its `user.move`, the audit
/// export as its `access_log.download`, add-ons as its `user.set_addons`.
#[tokio::test]
async fn load_planner_operations_use_its_own_actions() {
    let env = env_on_example("load-planner").await;
    let store = &*env.store;
    for (id, parent) in [("lp", None), ("lp-b", Some("lp"))] {
        store
            .create_company(
                NewCompany {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    account_type: "enterprise".to_owned(),
                    parent: parent.map(str::to_owned),
                    ..NewCompany::default()
                },
                &Audit::system(),
            )
            .await
            .unwrap();
    }
    // `accessible` is derived by the store: the own company and those the user may switch to.
    let admin = user_with(&env, "lp-adm", "lp", "administrator", json!({})).await;
    store
        .set_accessible_companies(
            "lp-adm",
            vec![portcullis_store::AccessibleCompany {
                company: "lp-b".to_owned(),
                role: None,
            }],
            &Audit::system(),
        )
        .await
        .unwrap();
    let planner = user_with(&env, "lp-pl", "lp", "planner", json!({})).await;
    // The audit export: the administrator's `access_log.download`, not the planner's.
    let (s, b) = admin.get("/v1/audit").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = planner.get("/v1/audit").await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("access_log.download"), "{b}");
    // A move: `user.move` (and the removal as `user.delete`). The administrator the planner
    // cannot read answers the 404 of a missing user; the administrator moves the planner.
    let (s, b) = send(
        &planner,
        "POST",
        "/v1/users/lp-adm/move",
        json!({ "company": "lp-b" }),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = send(
        &admin,
        "POST",
        "/v1/users/lp-pl/move",
        json!({ "company": "lp-b" }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

async fn on_shipping_platform() -> crate::manage::Env {
    let env = env_on_example("shipping-platform").await;
    crate::manage::company(&*env.store, "sp", "customer", None).await;
    env
}
