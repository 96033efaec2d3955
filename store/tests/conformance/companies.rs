//! Companies: creation, enterprise trees, patches, facts and constraint names.

use portcullis_store::*;
use serde_json::json;

use crate::harness::{audit_count, company, Ctx};

conformance!(
    create_get_list,
    duplicate_id_is_a_named_conflict,
    update_and_facts,
    unknown_parent_is_not_found
);

async fn create_get_list(cx: Ctx) {
    let s = &*cx.store;
    let acme = company(s, "acme", None, Some(5)).await;
    assert_eq!(acme.user_limit, Some(5));
    assert_eq!(acme.created_at, crate::harness::start());
    company(s, "acme-eu", Some("acme"), None).await;
    company(s, "acme-us", Some("acme"), None).await;
    company(s, "zeta", None, None).await;
    assert_eq!(
        s.get_company("acme-eu").await.unwrap().parent.as_deref(),
        Some("acme")
    );

    let children = s
        .list_companies(&CompanyQuery {
            parent: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = children.items.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["acme-eu", "acme-us"]);
    assert_eq!(children.next, None);

    let first = s
        .list_companies(&CompanyQuery {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.next.as_deref(), Some("acme-us"));
    let rest = s
        .list_companies(&CompanyQuery {
            after: first.next,
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["zeta"]
    );
    assert_eq!(rest.next, None);

    let err = s.get_company("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "company `nope` not found");
    assert_eq!(err.code(), "not_found");
}

async fn duplicate_id_is_a_named_conflict(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    let version = s.version().await.unwrap();
    let new = NewCompany {
        id: "acme".into(),
        account_type: "customer".into(),
        ..Default::default()
    };
    match s.create_company(new, &Audit::by("root")).await.unwrap_err() {
        StoreError::Conflict { constraint, message } => {
            assert_eq!(constraint, "companies_pkey");
            assert_eq!(message, "a company with this id already exists");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.version().await.unwrap(), version);
    let q = AuditQuery {
        action: Some(actions::COMPANY_CREATE.into()),
        ..Default::default()
    };
    assert_eq!(audit_count(s, q).await, 1);
}

async fn update_and_facts(cx: Ctx) {
    let s = &*cx.store;
    company(s, "parent", None, None).await;
    company(s, "acme", Some("parent"), Some(2)).await;
    let mut attrs = Attrs::new();
    attrs.insert("subscription".into(), json!("gold"));
    let patch = CompanyPatch {
        account_type: Some("forwarder".into()),
        user_limit: Some(None),
        attrs: Some(attrs),
        ..Default::default()
    };
    let c = s.update_company("acme", patch, &Audit::by("root")).await.unwrap();
    assert_eq!(c.account_type, "forwarder");
    assert_eq!(c.user_limit, None);
    let facts = s.company_facts("acme").await.unwrap();
    assert_eq!(facts.account_type, "forwarder");
    assert_eq!(facts.parent.as_deref(), Some("parent"));
    assert_eq!(facts.attrs.get("subscription"), Some(&json!("gold")));
    let q = AuditQuery {
        action: Some(actions::COMPANY_UPDATE.into()),
        ..Default::default()
    };
    let rows = s.query_audit(&q).await.unwrap().items;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].details["changed"],
        json!(["account_type", "user_limit", "attrs"])
    );
    assert_eq!(rows[0].target.as_deref(), Some("company:acme"));
}

async fn unknown_parent_is_not_found(cx: Ctx) {
    let s = &*cx.store;
    let new = NewCompany {
        id: "child".into(),
        account_type: "customer".into(),
        parent: Some("ghost".into()),
        ..Default::default()
    };
    let err = s.create_company(new, &Audit::system()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "company", .. }),
        "{err:?}"
    );
    let empty = NewCompany {
        id: " ".into(),
        account_type: "customer".into(),
        ..Default::default()
    };
    let err = s.create_company(empty, &Audit::system()).await.unwrap_err();
    assert_eq!(err.to_string(), "company id must not be empty");
}
