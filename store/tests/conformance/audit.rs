//! The audit trail: filters, pagination, appended entries.

use portcullis_store::*;
use serde_json::json;
use time::Duration;

use crate::harness::{company, user, Ctx};

conformance!(filters_and_pages, appended_entries);

async fn filters_and_pages(cx: Ctx) {
    let s = &*cx.store;
    let t0 = crate::harness::start();
    company(s, "acme", None, None).await;
    company(s, "beta", None, None).await;
    cx.clock.advance(Duration::hours(1));
    user(s, "alice", "acme", "admin").await;
    cx.clock.advance(Duration::hours(1));
    s.create_user(
        crate::harness::new_user("bob", "beta", "user"),
        &Audit::by("alice").in_company("beta"),
    )
    .await
    .unwrap();
    cx.clock.advance(Duration::hours(1));
    let patch = UserPatch {
        role: Some("viewer".into()),
        ..Default::default()
    };
    s.update_user("bob", patch, &Audit::by("alice").with("reason", "offboarding"))
        .await
        .unwrap();

    let all = s.query_audit(&AuditQuery::default()).await.unwrap().items;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].details["reason"], json!("offboarding"));
    assert_eq!(all[0].details["changed"], json!(["role"]));
    assert!(all[0].version.is_some());

    let count = |q: AuditQuery| async move { s.query_audit(&q).await.unwrap().items.len() };
    let by_user = |u: &str| AuditQuery {
        user: Some(u.into()),
        ..Default::default()
    };
    assert_eq!(count(by_user("alice")).await, 3);
    assert_eq!(count(by_user("bob")).await, 2);
    let in_beta = AuditQuery {
        company: Some("beta".into()),
        ..Default::default()
    };
    assert_eq!(count(in_beta).await, 3);
    let creations = AuditQuery {
        action: Some("user.create".into()),
        ..Default::default()
    };
    assert_eq!(count(creations).await, 2);
    let window = AuditQuery {
        since: Some(t0 + Duration::hours(1)),
        until: Some(t0 + Duration::hours(2)),
        ..Default::default()
    };
    let rows = s.query_audit(&window).await.unwrap().items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].target.as_deref(), Some("user:alice"));
    assert_eq!(rows[0].at, t0 + Duration::hours(1));

    let mut ids = Vec::new();
    let mut q = AuditQuery {
        limit: Some(2),
        ..Default::default()
    };
    loop {
        let page = s.query_audit(&q).await.unwrap();
        ids.extend(page.items.iter().map(|e| e.id));
        match page.next {
            Some(before) => q.before = Some(before),
            None => break,
        }
    }
    assert_eq!(ids, all.iter().map(|e| e.id).collect::<Vec<_>>());
}

async fn appended_entries(cx: Ctx) {
    let s = &*cx.store;
    let version = s.version().await.unwrap();
    let entry = NewAuditEntry {
        actor: Some("mallory".into()),
        company: Some("acme".into()),
        action: "user.delete".into(),
        target: Some("user:alice".into()),
        outcome: Outcome::Denied,
        details: [("policy".to_owned(), json!("users.cedar:12"))]
            .into_iter()
            .collect(),
    };
    let row = s.append_audit(entry).await.unwrap();
    assert_eq!((row.outcome, row.version), (Outcome::Denied, None));
    assert_eq!(
        s.version().await.unwrap(),
        version,
        "appending an entry is not a store change"
    );
    let q = AuditQuery {
        user: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(s.query_audit(&q).await.unwrap().items, [row]);
}
