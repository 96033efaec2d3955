//! Users: CRUD, facts, the user limit under concurrency, atomicity, moves, deletion.

use std::collections::BTreeMap;

use portcullis_store::*;
use serde_json::json;

use crate::harness::{audit_actions, audit_count, company, new_user, user, Ctx};

conformance!(
    create_get_and_facts,
    twenty_concurrent_creations_against_a_limit_of_ten,
    sub_companies_count_toward_the_enterprise_limit,
    failed_writes_leave_no_trace,
    update_deactivate_reactivate,
    delete_keeps_audit_and_records_transfer,
    move_within_an_enterprise,
    accessible_companies_and_context_switch,
    list_users_in_pages,
    passwords_and_credentials,
);

async fn create_get_and_facts(cx: Ctx) {
    let s = &*cx.store;
    company(s, "parent", None, None).await;
    company(s, "acme", Some("parent"), None).await;
    let mut new = new_user("alice", "acme", "admin");
    new.flags = vec!["isolated".into(), "isolated".into()];
    new.addons = vec!["cargo_editor".into()];
    new.email = Some("Alice@Acme.Example".into());
    new.attrs.insert("customers".into(), json!(["c1", "c2"]));
    let alice = s.create_user(new, &Audit::by("root")).await.unwrap();
    assert_eq!(alice.flags, ["isolated"]);
    assert_eq!(alice.email.as_deref(), Some("alice@acme.example"));
    assert!(alice.active);
    assert!(!alice.has_password);
    assert_eq!(s.get_user("alice").await.unwrap(), alice);
    assert_eq!(
        s.get_user_by_login("alice@acme.example").await.unwrap().id,
        "alice"
    );

    let facts = s.user_facts("alice", None).await.unwrap();
    assert_eq!(facts.user_id, "alice");
    assert_eq!(
        facts.user,
        UserFacts {
            company: "acme".into(),
            role: "admin".into(),
            active: true,
            flags: vec!["isolated".into()],
            addons: vec!["cargo_editor".into()],
            group: None,
            attrs: BTreeMap::from([("customers".to_owned(), json!(["c1", "c2"]))]),
            login: Some("alice@acme.example".into()),
            accessible: Vec::new(),
        }
    );
    assert_eq!(facts.company.parent.as_deref(), Some("parent"));
    assert_eq!(facts.company.account_type, "customer");

    let generated = NewUser {
        id: None,
        ..new_user("x", "acme", "user")
    };
    assert_eq!(
        s.create_user(generated, &Audit::system()).await.unwrap().id.len(),
        36
    );
    let err = s.get_user("ghost").await.unwrap_err();
    assert_eq!(err.to_string(), "user `ghost` not found");
    let err = s
        .create_user(new_user("bob", "ghost-co", "user"), &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "company `ghost-co` not found");
}

/// Issue 13: an owner at its limit who creates a sub-company does not escape the limit there,
/// whatever the sub-company's own limit; a move inside the enterprise counts once.
async fn sub_companies_count_toward_the_enterprise_limit(cx: Ctx) {
    let s = cx.store.clone();
    company(&*s, "acme", None, Some(2)).await;
    company(&*s, "acme-sub", Some("acme"), Some(50)).await;
    company(&*s, "acme-sub-sub", Some("acme-sub"), None).await;
    s.create_user(new_user("a1", "acme", "user"), &Audit::system())
        .await
        .unwrap();
    s.create_user(new_user("a2", "acme-sub-sub", "user"), &Audit::system())
        .await
        .unwrap();
    for c in ["acme", "acme-sub", "acme-sub-sub"] {
        let err = s
            .create_user(new_user(&format!("x-{c}"), c, "user"), &Audit::system())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::LimitReached { company, limit: 2 } if company == "acme"),
            "{c}: {err:?}"
        );
    }
    s.move_user("a1", "acme-sub", &Audit::system()).await.unwrap();
    s.deactivate_user("a2", &Audit::system()).await.unwrap();
    s.create_user(new_user("a3", "acme-sub", "user"), &Audit::system())
        .await
        .unwrap();
    let err = s.reactivate_user("a2", &Audit::system()).await.unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err:?}");
}

async fn twenty_concurrent_creations_against_a_limit_of_ten(cx: Ctx) {
    let s = cx.store.clone();
    company(&*s, "acme", None, Some(10)).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_user(new_user(&format!("u{i:02}"), "acme", "user"), &Audit::by("root"))
                    .await
            })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::LimitReached { company, limit }) => {
                assert_eq!((company.as_str(), limit), ("acme", 10));
                limited += 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok, limited), (10, 10));
    let all = s
        .list_users(&UserQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 10);
    let q = AuditQuery {
        action: Some(actions::USER_CREATE.into()),
        ..Default::default()
    };
    assert_eq!(audit_count(&*s, q).await, 10);
}

async fn failed_writes_leave_no_trace(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, Some(2)).await;
    user(s, "alice", "acme", "admin").await;
    let version = s.version().await.unwrap();
    let audits = audit_count(s, AuditQuery::default()).await;

    // A unique login: the insert fails after the limit check and the version bump.
    let mut dup = new_user("bob", "acme", "user");
    dup.login = "alice@acme.example".into();
    dup.email = None;
    match s.create_user(dup, &Audit::by("root")).await.unwrap_err() {
        StoreError::Conflict { constraint, message } => {
            assert_eq!(constraint, "users_login_key");
            assert_eq!(message, "a user with this login already exists");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let same_id = NewUser {
        login: "other".into(),
        email: None,
        ..new_user("alice", "acme", "user")
    };
    let err = s.create_user(same_id, &Audit::by("root")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref constraint, .. } if constraint == "users_pkey"),
        "{err:?}"
    );

    user(s, "carol", "acme", "user").await;
    let version_after_carol = s.version().await.unwrap();
    assert_eq!(version_after_carol, version + 1);
    let err = s
        .create_user(new_user("dave", "acme", "user"), &Audit::by("root"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "company `acme` has reached its limit of 2 users");

    assert!(matches!(
        s.get_user("bob").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.get_user("dave").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.version().await.unwrap(), version_after_carol);
    assert_eq!(audit_count(s, AuditQuery::default()).await, audits + 1);
    assert_eq!(s.changes_since(version, 100).await.unwrap().len(), 1);
}

async fn update_deactivate_reactivate(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, Some(1)).await;
    user(s, "alice", "acme", "planner").await;
    let patch = UserPatch {
        role: Some("editor".into()),
        flags: Some(vec!["isolated".into()]),
        addons: Some(vec![]),
        email: Some(None),
        ..Default::default()
    };
    let alice = s.update_user("alice", patch, &Audit::by("root")).await.unwrap();
    assert_eq!(
        (alice.role.as_str(), alice.flags.as_slice(), alice.email),
        ("editor", &["isolated".to_owned()][..], None)
    );
    let ghost = UserPatch {
        group: Some(Some("ghost".into())),
        ..Default::default()
    };
    let err = s.update_user("alice", ghost, &Audit::system()).await.unwrap_err();
    assert_eq!(err.to_string(), "permission group `ghost` not found");

    let off = s.deactivate_user("alice", &Audit::by("root")).await.unwrap();
    assert!(!off.active);
    assert!(!s.user_facts("alice", None).await.unwrap().user.active);
    // A deactivated user frees its seat...
    user(s, "bob", "acme", "planner").await;
    // ...so reactivating it would exceed the limit.
    let err = s.reactivate_user("alice", &Audit::by("root")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { limit: 1, .. }),
        "{err:?}"
    );
    s.deactivate_user("bob", &Audit::by("root")).await.unwrap();
    assert!(
        s.reactivate_user("alice", &Audit::by("root"))
            .await
            .unwrap()
            .active
    );
    let q = AuditQuery {
        user: Some("alice".into()),
        ..Default::default()
    };
    let actions = audit_actions(s, q).await;
    assert_eq!(
        actions,
        ["user.reactivate", "user.deactivate", "user.update", "user.create"]
    );
}

async fn delete_keeps_audit_and_records_transfer(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    company(s, "other", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "bob", "acme", "user").await;
    user(s, "olga", "other", "user").await;
    let key = s
        .create_api_key("bob", "ci", None, &Audit::by("bob"))
        .await
        .unwrap();

    let err = s
        .delete_user("bob", Some("olga"), &Audit::by("alice"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user `olga` is not in company `acme` and cannot receive its records"
    );
    let err = s
        .delete_user("bob", Some("bob"), &Audit::by("alice"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid");

    let gone = s
        .delete_user("bob", Some("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(
        (gone.user.id.as_str(), gone.transfer_to.as_deref()),
        ("bob", Some("alice"))
    );
    assert!(matches!(
        s.get_user("bob").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.resolve_api_key(key.secret.expose()).await.is_err());

    let q = AuditQuery {
        user: Some("bob".into()),
        ..Default::default()
    };
    let rows = s.query_audit(&q).await.unwrap().items;
    let actions: Vec<&str> = rows.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.delete", "api_key.create", "user.create"]);
    assert_eq!(rows[0].details["transfer_to"], json!("alice"));
    assert_eq!(rows[0].actor.as_deref(), Some("alice"));
    assert_eq!(rows[0].company.as_deref(), Some("acme"));
    let err = s.delete_user("bob", None, &Audit::by("alice")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
}

async fn move_within_an_enterprise(cx: Ctx) {
    let s = &*cx.store;
    company(s, "ent", None, None).await;
    company(s, "ent-a", Some("ent"), None).await;
    company(s, "ent-b", Some("ent"), Some(1)).await;
    company(s, "ent-c", Some("ent-a"), None).await;
    company(s, "solo", None, None).await;
    user(s, "alice", "ent-a", "admin").await;
    let access = vec![AccessibleCompany {
        company: "ent-b".into(),
        role: None,
    }];
    s.set_accessible_companies("alice", access, &Audit::by("root"))
        .await
        .unwrap();

    let moved = s.move_user("alice", "ent-b", &Audit::by("root")).await.unwrap();
    assert_eq!(moved.company, "ent-b");
    assert!(
        moved.accessible.is_empty(),
        "the new primary company is no longer listed as accessible"
    );
    assert_eq!(s.user_facts("alice", None).await.unwrap().user.company, "ent-b");

    let err = s
        .move_user("alice", "solo", &Audit::by("root"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "companies `ent-b` and `solo` are not in the same enterprise account"
    );
    let err = s
        .move_user("alice", "ent-b", &Audit::by("root"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid");

    user(s, "bob", "ent-c", "user").await;
    let err = s.move_user("bob", "ent-b", &Audit::by("root")).await.unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err:?}");
    assert_eq!(s.get_user("bob").await.unwrap().company, "ent-c");
    let q = AuditQuery {
        action: Some(actions::USER_MOVE.into()),
        ..Default::default()
    };
    let rows = s.query_audit(&q).await.unwrap().items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].details["from"], json!("ent-a"));
    assert_eq!(rows[0].details["to"], json!("ent-b"));
}

async fn accessible_companies_and_context_switch(cx: Ctx) {
    let s = &*cx.store;
    company(s, "fwd", None, None).await;
    company(s, "cust1", None, None).await;
    company(s, "cust2", None, None).await;
    user(s, "fred", "fwd", "operator").await;
    let access = vec![
        AccessibleCompany {
            company: "cust1".into(),
            role: Some("viewer".into()),
        },
        AccessibleCompany {
            company: "cust2".into(),
            role: None,
        },
        AccessibleCompany {
            company: "fwd".into(),
            role: None,
        },
        AccessibleCompany {
            company: "cust1".into(),
            role: None,
        },
    ];
    let fred = s
        .set_accessible_companies("fred", access, &Audit::by("root"))
        .await
        .unwrap();
    assert_eq!(
        fred.accessible,
        [
            AccessibleCompany {
                company: "cust1".into(),
                role: Some("viewer".into())
            },
            AccessibleCompany {
                company: "cust2".into(),
                role: None
            },
        ]
    );
    let f1 = s.user_facts("fred", Some("cust1")).await.unwrap();
    assert_eq!(
        (f1.user.company.as_str(), f1.user.role.as_str()),
        ("cust1", "viewer")
    );
    let f2 = s.user_facts("fred", Some("cust2")).await.unwrap();
    assert_eq!(
        (f2.user.company.as_str(), f2.user.role.as_str()),
        ("cust2", "operator")
    );
    let err = s.user_facts("fred", Some("elsewhere")).await.unwrap_err();
    assert_eq!(err.to_string(), "user `fred` cannot act in company `elsewhere`");

    let bad = vec![AccessibleCompany {
        company: "ghost".into(),
        role: None,
    }];
    let err = s
        .set_accessible_companies("fred", bad, &Audit::by("root"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "company `ghost` not found");
    assert_eq!(s.get_user("fred").await.unwrap().accessible.len(), 2);
    let fred = s
        .set_accessible_companies("fred", vec![], &Audit::by("root"))
        .await
        .unwrap();
    assert!(fred.accessible.is_empty());
}

async fn list_users_in_pages(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    company(s, "other", None, None).await;
    for id in ["u1", "u2", "u3", "u4", "u5"] {
        user(s, id, "acme", "user").await;
    }
    user(s, "o1", "other", "user").await;
    let acc = vec![AccessibleCompany {
        company: "other".into(),
        role: None,
    }];
    s.set_accessible_companies("u2", acc, &Audit::system())
        .await
        .unwrap();
    s.deactivate_user("u3", &Audit::system()).await.unwrap();

    let mut seen = Vec::new();
    let mut q = UserQuery {
        company: Some("acme".into()),
        limit: Some(2),
        ..Default::default()
    };
    loop {
        let page = s.list_users(&q).await.unwrap();
        seen.extend(page.items.iter().map(|u| (u.id.clone(), u.accessible.len())));
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    let expect = [("u1", 0), ("u2", 1), ("u4", 0), ("u5", 0)];
    assert_eq!(seen, expect.map(|(a, b)| (a.to_owned(), b)));
    let all = UserQuery {
        company: Some("acme".into()),
        include_inactive: true,
        ..Default::default()
    };
    assert_eq!(s.list_users(&all).await.unwrap().items.len(), 5);
}

async fn passwords_and_credentials(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    let (u, hash) = s.credentials("alice@acme.example").await.unwrap();
    assert_eq!((u.id.as_str(), hash), ("alice", None));
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned();
    s.set_password_hash("alice", Some(phc.clone()), &Audit::by("alice"))
        .await
        .unwrap();
    let (u, hash) = s.credentials("alice@acme.example").await.unwrap();
    assert!(u.has_password);
    assert_eq!(hash, Some(phc));
    let q = AuditQuery {
        action: Some(actions::USER_SET_PASSWORD.into()),
        ..Default::default()
    };
    let row = &s.query_audit(&q).await.unwrap().items[0];
    assert!(
        !serde_json::to_string(&row.details).unwrap().contains("argon2"),
        "the hash never reaches the audit trail"
    );
}
