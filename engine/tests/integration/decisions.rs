//! Decisions of the default folder through `Engine::authorize`, with inline Cedar JSON
//! entities: allow and deny with the ids of the deciding policies, both forms of entity
//! reference, request errors with "did you mean", the rule that an evaluation error never
//! allows, policy versions, and reloads that keep the last good snapshot.

use cedar_policy::Authorizer;
use portcullis_engine::{AuthzQuery, Engine, EntityRef, Outcome, RequestError};
use serde_json::{json, Map, Value};

use crate::support::{policies_dir, Folder};

fn engine() -> Engine {
    Engine::open(policies_dir()).unwrap_or_else(|d| panic!("{}", d.render_human("policies")))
}

fn uid(ty: &str, id: &str) -> Value {
    json!({ "type": format!("Portal::{ty}"), "id": id })
}

fn company(id: &str, account_type: &str, subscription: &[&str]) -> Value {
    json!({
        "uid": uid("Company", id),
        "attrs": { "account_type": account_type, "subscription": subscription },
        "parents": [],
    })
}

/// A user entity with every attribute the schema requires; `overrides` replaces some.
fn user(id: &str, company: &str, role: &str, overrides: Value) -> Value {
    let mut attrs = json!({
        "company": { "__entity": uid("Company", company) },
        "role": { "__entity": uid("Role", role) },
        "active": true,
        "flags": [],
        "addons": [],
        "scope_all": true,
        "locations": [],
        "actors": [],
        "all_customers": true,
        "customers": [],
    });
    if let (Some(a), Some(o)) = (attrs.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            a.insert(k.clone(), v.clone());
        }
    }
    json!({
        "uid": uid("User", id),
        "attrs": attrs,
        "parents": [uid("Role", role), uid("Company", company)],
    })
}

fn entity(ty: &str, id: &str, attrs: Value, parents: Vec<Value>) -> Value {
    json!({ "uid": uid(ty, id), "attrs": attrs, "parents": parents })
}

/// The shipping platform: Acme (a customer with a location in Oslo), Globex (another
/// customer), their users, and shipments.
fn acme() -> Vec<Value> {
    vec![
        company("acme", "customer", &["insights"]),
        company("globex", "customer", &[]),
        entity("Location", "acme-oslo", json!({}), vec![uid("Company", "acme")]),
        entity("Location", "acme-bergen", json!({}), vec![uid("Company", "acme")]),
        user("olivia", "acme", "owner", json!({})),
        user(
            "rita",
            "acme",
            "regular",
            json!({ "scope_all": false, "locations": [uid("Location", "acme-oslo")] }),
        ),
        user("dora", "acme", "owner", json!({ "active": false })),
        user("oscar", "acme", "operator", json!({})),
        user("gary", "globex", "owner", json!({})),
        entity(
            "Shipment",
            "oslo-1",
            json!({ "owner": uid("User", "olivia") }),
            vec![uid("Location", "acme-oslo"), uid("Company", "acme")],
        ),
        entity(
            "Shipment",
            "bergen-1",
            json!({ "owner": uid("User", "olivia") }),
            vec![uid("Location", "acme-bergen"), uid("Company", "acme")],
        ),
        entity(
            "Shipment",
            "globex-1",
            json!({ "owner": uid("User", "gary") }),
            vec![uid("Company", "globex")],
        ),
        entity(
            "Report",
            "acme-stats",
            json!({ "owner": uid("User", "olivia"), "kind": "insights" }),
            vec![uid("Company", "acme")],
        ),
        entity(
            "Report",
            "globex-stats",
            json!({ "owner": uid("User", "gary"), "kind": "insights" }),
            vec![uid("Company", "globex")],
        ),
        entity(
            "NotificationTemplate",
            "rita-template",
            json!({ "owner": uid("User", "rita") }),
            vec![uid("Company", "acme")],
        ),
        entity(
            "NotificationTemplate",
            "olivia-template",
            json!({ "owner": uid("User", "olivia") }),
            vec![uid("Company", "acme")],
        ),
    ]
}

fn text(s: &str) -> EntityRef {
    EntityRef::Text(s.to_owned())
}

fn query(principal: &str, action: &str, resource: &str) -> AuthzQuery {
    AuthzQuery {
        explain: false,
        principal: text(&format!("Portal::User::\"{principal}\"")),
        action: text(action),
        resource: text(resource),
        context: Map::new(),
        entities: acme(),
    }
}

/// The outcome and the sorted reason ids.
fn decide(e: &Engine, q: &AuthzQuery) -> (Outcome, Vec<String>) {
    let d = e.authorize(q).unwrap_or_else(|err| panic!("{err}"));
    assert!(
        d.errors.is_empty(),
        "unexpected evaluation errors: {:?}",
        d.errors
    );
    let reasons = d.reason_ids().into_iter().map(str::to_owned).collect();
    (d.decision, reasons)
}

fn assert_decision(e: &Engine, q: &AuthzQuery, outcome: Outcome, reasons: &[&str]) {
    let (got, got_reasons) = decide(e, q);
    assert_eq!(
        (got, got_reasons.iter().map(String::as_str).collect::<Vec<_>>()),
        (outcome, reasons.to_vec()),
        "{} {} {}",
        q.principal,
        q.action,
        q.resource
    );
}

#[test]
fn owner_creates_shipments_in_its_company() {
    let e = engine();
    let q = query("olivia", "shipment.create", r#"Portal::Shipment::"oslo-1""#);
    assert_decision(&e, &q, Outcome::Allow, &["feature.create_shipments"]);
}

#[test]
fn regular_user_stays_inside_its_scope() {
    let e = engine();
    let q = query("rita", "shipment.read", r#"Portal::Shipment::"oslo-1""#);
    assert_decision(&e, &q, Outcome::Allow, &["feature.read_shipments"]);
    let q = query("rita", "shipment.read", r#"Portal::Shipment::"bergen-1""#);
    assert_decision(&e, &q, Outcome::Deny, &["scope.records"]);
}

#[test]
fn another_company_s_records_are_out_of_reach() {
    let e = engine();
    let q = query("olivia", "shipment.read", r#"Portal::Shipment::"globex-1""#);
    assert_decision(&e, &q, Outcome::Deny, &[]);
}

#[test]
fn deactivated_users_are_denied_everything() {
    let e = engine();
    let q = query("dora", "shipment.create", r#"Portal::Shipment::"oslo-1""#);
    let (outcome, reasons) = decide(&e, &q);
    assert_eq!(outcome, Outcome::Deny);
    assert!(reasons.contains(&"core.deactivated".to_owned()), "{reasons:?}");
}

#[test]
fn a_role_the_account_type_does_not_allow_is_denied() {
    let e = engine();
    // Operators belong to forwarders: a Customer company's operator is refused everything, and
    // the account-type rule is the reason given.
    let mut q = query("oscar", "audit.read", r#"Portal::AuditLog::"acme-log""#);
    q.entities.push(entity(
        "AuditLog",
        "acme-log",
        json!({}),
        vec![uid("Company", "acme")],
    ));
    assert_decision(&e, &q, Outcome::Deny, &["account_type.customer"]);
}

#[test]
fn subscription_conditions_decide_conditional_cells() {
    let e = engine();
    let q = query(
        "olivia",
        "report.insights.create",
        r#"Portal::Report::"acme-stats""#,
    );
    assert_decision(&e, &q, Outcome::Allow, &["feature.insights_reports"]);
    // Globex pays for no insights.
    let q = query(
        "gary",
        "report.insights.create",
        r#"Portal::Report::"globex-stats""#,
    );
    assert_decision(&e, &q, Outcome::Deny, &[]);
}

#[test]
fn own_only_features_reach_owned_records_only() {
    let e = engine();
    let q = query(
        "rita",
        "notification_template.edit",
        r#"Portal::NotificationTemplate::"rita-template""#,
    );
    assert_decision(&e, &q, Outcome::Allow, &["feature.notification_templates.own"]);
    let q = query(
        "rita",
        "notification_template.edit",
        r#"Portal::NotificationTemplate::"olivia-template""#,
    );
    assert_decision(&e, &q, Outcome::Deny, &[]);
}

fn assignment(role: &str) -> Map<String, Value> {
    let v = json!({
        "role": { "__entity": uid("Role", role) },
        "flags": [],
        "scope_all": false,
        "locations": [],
        "actors": [],
        "actor_locations": [],
    });
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn owners_give_the_roles_they_manage() {
    let e = engine();
    let mut q = query("olivia", "user.set_role", r#"Portal::User::"rita""#);
    q.context = assignment("admin");
    assert_decision(&e, &q, Outcome::Allow, &["role.owner.assign"]);
    // A regular user manages nobody.
    let mut q = query("rita", "user.set_role", r#"Portal::User::"olivia""#);
    q.context = assignment("regular");
    assert_decision(&e, &q, Outcome::Deny, &[]);
    // Nobody gives a role in another company.
    let mut q = query("olivia", "user.set_role", r#"Portal::User::"gary""#);
    q.context = assignment("regular");
    assert_decision(&e, &q, Outcome::Deny, &[]);
}

#[test]
fn every_user_reads_its_own_profile() {
    let e = engine();
    let q = query("rita", "user.read", r#"Portal::User::"rita""#);
    assert_decision(&e, &q, Outcome::Allow, &["users.self"]);
    let q = query("rita", "user.read", r#"Portal::User::"olivia""#);
    assert_decision(&e, &q, Outcome::Deny, &[]);
}

#[test]
fn both_forms_of_entity_reference_decide_alike() {
    let e = engine();
    let obj = |ty: &str, id: &str| EntityRef::Object {
        ty: ty.to_owned(),
        id: id.to_owned(),
    };
    let principals = [
        text(r#"Portal::User::"olivia""#),
        obj("Portal::User", "olivia"),
        obj("User", "olivia"),
        text("olivia"),
    ];
    let actions = [
        text(r#"Portal::Action::"shipment.create""#),
        obj("Portal::Action", "shipment.create"),
        obj("Action", "shipment.create"),
        text("shipment.create"),
    ];
    let resources = [
        text(r#"Portal::Shipment::"oslo-1""#),
        obj("Portal::Shipment", "oslo-1"),
        obj("Shipment", "oslo-1"),
    ];
    for p in &principals {
        for a in &actions {
            for r in &resources {
                let q = AuthzQuery {
                    explain: false,
                    principal: p.clone(),
                    action: a.clone(),
                    resource: r.clone(),
                    context: Map::new(),
                    entities: acme(),
                };
                assert_decision(&e, &q, Outcome::Allow, &["feature.create_shipments"]);
            }
        }
    }
}

#[test]
fn references_read_from_json_in_both_forms() {
    let q: AuthzQuery = serde_json::from_value(json!({
        "principal": "Portal::User::\"olivia\"",
        "action": { "type": "Portal::Action", "id": "shipment.create" },
        "resource": { "type": "Portal::Shipment", "id": "oslo-1" },
        "entities": acme(),
    }))
    .unwrap();
    assert_eq!(q.principal, text(r#"Portal::User::"olivia""#));
    assert_decision(&engine(), &q, Outcome::Allow, &["feature.create_shipments"]);
}

fn request_error(e: &Engine, q: &AuthzQuery) -> RequestError {
    match e.authorize(q) {
        Ok(d) => panic!("expected a request error, got {:?}", d.decision),
        Err(err) => err,
    }
}

#[test]
fn unknown_entity_type_suggests_the_close_one() {
    let e = engine();
    let q = query("olivia", "shipment.create", r#"Portal::Shipmnt::"oslo-1""#);
    let err = request_error(&e, &q);
    assert_eq!(err.code(), "invalid_reference");
    assert_eq!(
        err.to_string(),
        "invalid resource: unknown entity type `Portal::Shipmnt`; did you mean `Portal::Shipment`?"
    );
}

#[test]
fn unknown_bare_entity_type_suggests_the_qualified_one() {
    let e = engine();
    let mut q = query("olivia", "shipment.create", "");
    q.resource = EntityRef::Object {
        ty: "Shipmnt".to_owned(),
        id: "oslo-1".to_owned(),
    };
    let err = request_error(&e, &q);
    assert!(
        err.to_string().contains("did you mean `Portal::Shipment`?"),
        "{err}"
    );
}

#[test]
fn unknown_action_suggests_the_close_one() {
    let e = engine();
    let q = query("olivia", "shipment.creat", r#"Portal::Shipment::"oslo-1""#);
    let err = request_error(&e, &q);
    assert_eq!(err.code(), "invalid_reference");
    assert_eq!(
        err.to_string(),
        "invalid action: unknown action `shipment.creat`; did you mean `shipment.create`?"
    );
}

#[test]
fn resource_must_name_its_type() {
    let e = engine();
    let q = query("olivia", "shipment.create", "oslo-1");
    let err = request_error(&e, &q);
    assert_eq!(err.code(), "invalid_reference");
    assert!(err
        .to_string()
        .starts_with("invalid resource: `oslo-1` does not name its type"));
}

#[test]
fn entities_and_context_are_checked_against_the_schema() {
    let e = engine();
    let mut q = query("olivia", "shipment.create", r#"Portal::Shipment::"oslo-1""#);
    q.entities
        .push(json!({ "uid": uid("User", "nobody"), "attrs": {}, "parents": [] }));
    assert_eq!(request_error(&e, &q).code(), "invalid_entities");

    let q = query("olivia", "user.set_role", r#"Portal::User::"rita""#);
    assert_eq!(request_error(&e, &q).code(), "invalid_context");

    let q = query("olivia", "shipment.read", r#"Portal::Company::"acme""#);
    assert_eq!(request_error(&e, &q).code(), "invalid_request");
}

/// A folder whose only permit always applies and whose forbid errors when the record's owner is
/// missing from the entity slice.
fn guarded_folder() -> Folder {
    let f = Folder::empty();
    f.write(
        "schema.cedarschema",
        r#"namespace App {
  entity User = { blocked: Bool };
  entity Doc = { owner: User };
  action "read" appliesTo { principal: User, resource: Doc, context: {} };
}
"#,
    );
    f.write(
        "policies.cedar",
        r#"@id("open")
permit (principal, action, resource);

@id("blocked-owner")
forbid (principal, action, resource is App::Doc)
when { resource.owner.blocked };
"#,
    );
    f
}

fn guarded_query(owner: &str) -> AuthzQuery {
    AuthzQuery {
        explain: false,
        principal: text(r#"App::User::"ann""#),
        action: text(r#"App::Action::"read""#),
        resource: text(r#"App::Doc::"d1""#),
        context: Map::new(),
        entities: vec![
            json!({ "uid": { "type": "App::User", "id": "ann" }, "attrs": { "blocked": false }, "parents": [] }),
            json!({ "uid": { "type": "App::Doc", "id": "d1" }, "attrs": { "owner": { "type": "App::User", "id": owner } }, "parents": [] }),
        ],
    }
}

#[test]
fn an_evaluation_error_in_a_forbid_never_allows() {
    let f = guarded_folder();
    let e = Engine::open(f.path()).unwrap();

    // The owner is in the slice and not blocked: the permit decides.
    let d = e.authorize(&guarded_query("ann")).unwrap();
    assert_eq!(d.decision, Outcome::Allow);
    assert_eq!(d.reason_ids(), ["open"]);
    assert!(d.errors.is_empty());

    // The owner is missing from the slice: the forbid cannot be evaluated.
    let q = guarded_query("ghost");
    let snap = e.snapshot();
    let prepared = snap.prepare(&q).unwrap();
    let raw = Authorizer::new().is_authorized(&prepared.request, snap.policy_set(), &prepared.entities);
    assert_eq!(
        raw.decision(),
        cedar_policy::Decision::Allow,
        "Cedar alone skips the failing forbid and allows; the engine must not"
    );
    let d = e.authorize(&q).unwrap();
    assert_eq!(d.decision, Outcome::Deny);
    assert!(d.reasons.is_empty(), "{:?}", d.reason_ids());
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert_eq!(d.errors[0].policy, "blocked-owner");
    assert!(d.errors[0].message.contains("ghost"), "{}", d.errors[0].message);
}

#[test]
fn an_evaluation_error_in_a_permit_only_loses_that_permit() {
    let f = guarded_folder();
    f.write(
        "policies.cedar",
        r#"@id("open")
permit (principal, action, resource);

@id("owner-unblocked")
permit (principal, action, resource is App::Doc)
when { !resource.owner.blocked };
"#,
    );
    let e = Engine::open(f.path()).unwrap();
    let d = e.authorize(&guarded_query("ghost")).unwrap();
    assert_eq!(d.decision, Outcome::Allow);
    assert_eq!(d.reason_ids(), ["open"]);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].policy, "owner-unblocked");
}

#[test]
fn policies_on_an_action_group_decide_its_member_actions() {
    let f = Folder::empty();
    f.write(
        "schema.cedarschema",
        r#"namespace App {
  entity User;
  entity Doc;
  action "read";
  action "view" in ["read"] appliesTo { principal: User, resource: Doc, context: {} };
  action "edit" appliesTo { principal: User, resource: Doc, context: {} };
}
"#,
    );
    f.write(
        "policies.cedar",
        r#"@id("readers")
permit (principal, action in App::Action::"read", resource);

@id("editors")
permit (principal, action in [App::Action::"edit"], resource);

@id("frozen")
forbid (principal, action == App::Action::"edit", resource);
"#,
    );
    let e = Engine::open(f.path()).unwrap();
    let ask = |action: &str| AuthzQuery {
        explain: false,
        principal: text(r#"App::User::"ann""#),
        action: text(&format!("App::Action::\"{action}\"")),
        resource: text(r#"App::Doc::"d1""#),
        context: Map::new(),
        entities: vec![],
    };
    assert_decision(&e, &ask("view"), Outcome::Allow, &["readers"]);
    assert_decision(&e, &ask("edit"), Outcome::Deny, &["frozen"]);
}

#[test]
fn version_follows_policy_files_not_fixtures() {
    let f = Folder::copy_of_policies();
    let e = Engine::open(f.path()).unwrap();
    let v1 = e.snapshot().version().to_owned();
    assert_eq!(e.reload().unwrap().version(), v1, "a reload of the same files");

    f.append("fixtures/common.toml", "\n# a comment in a fixture\n");
    assert_eq!(e.reload().unwrap().version(), v1, "a fixture edit");

    f.write("fixtures/new.toml", "include = [\"common.toml\"]\n");
    assert_eq!(e.reload().unwrap().version(), v1, "a new fixture file");

    f.append("users.cedar", "\n// a comment in a policy file\n");
    let v2 = e.reload().unwrap().version().to_owned();
    assert_ne!(v2, v1, "a policy edit");

    f.append("roles.toml", "\n# a comment in roles.toml\n");
    let v3 = e.reload().unwrap().version().to_owned();
    assert_ne!(v3, v2, "a roles.toml edit");

    f.append("schema.cedarschema", "\n// a comment in the schema\n");
    let v4 = e.reload().unwrap().version().to_owned();
    assert_ne!(v4, v3, "a schema edit");
    assert_eq!(e.snapshot().version(), v4);
}

#[test]
fn reload_keeps_the_old_snapshot_when_the_folder_breaks() {
    let f = Folder::copy_of_policies();
    let e = Engine::open(f.path()).unwrap();
    let before = e.snapshot();
    let q = AuthzQuery {
        explain: false,
        principal: text("olivia"),
        action: text("shipment.read"),
        resource: text(r#"Portal::Shipment::"oslo-1""#),
        context: Map::new(),
        entities: acme(),
    };
    assert!(e.authorize(&q).unwrap().allowed());

    let good_roles = f.read("roles.toml");
    f.edit("roles.toml", "[roles.owner]", "[roles.owner");
    let err = e.reload().unwrap_err();
    assert_eq!(err.0[0].code, "roles::syntax");
    assert!(
        std::sync::Arc::ptr_eq(&before, &e.snapshot()),
        "the old snapshot still serves"
    );
    let d = e.authorize(&q).unwrap();
    assert!(d.allowed());
    assert_eq!(&*d.version, before.version());

    f.remove("schema.cedarschema");
    assert_eq!(e.reload().unwrap_err().0[0].code, "schema::missing");
    assert!(std::sync::Arc::ptr_eq(&before, &e.snapshot()));

    // Mend both: the same files give the same version, in a new snapshot.
    f.write("roles.toml", &good_roles);
    f.write(
        "schema.cedarschema",
        &std::fs::read_to_string(crate::support::frozen_policies_dir().join("schema.cedarschema")).unwrap(),
    );
    let after = e.reload().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&before, &after));
    assert_eq!(after.version(), before.version());
}
