//! The change feed: versions, change rows, and NOTIFY on PostgreSQL.

use std::time::Duration;

use portcullis_store::*;

use crate::harness::{company, user, Ctx};

conformance!(versions_and_changes, notifications);

async fn versions_and_changes(cx: Ctx) {
    let s = &*cx.store;
    let v0 = s.version().await.unwrap();
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    s.deactivate_user("alice", &Audit::system()).await.unwrap();
    assert_eq!(s.version().await.unwrap(), v0 + 3);
    let changes = s.changes_since(v0, 100).await.unwrap();
    let seen: Vec<(i64, &str, &str)> = changes
        .iter()
        .map(|c| (c.version - v0, c.kind.as_str(), c.id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(1, "company", "acme"), (2, "user", "alice"), (3, "user", "alice")]
    );
    assert_eq!(s.changes_since(v0 + 2, 100).await.unwrap().len(), 1);
    assert_eq!(s.changes_since(v0, 1).await.unwrap().len(), 1);
}

async fn notifications(cx: Ctx) {
    let Some(pg) = &cx.pg else {
        return; // SQLite has one process: the version counter is the feed.
    };
    let mut listener = pg.listen().await.unwrap();
    company(&*cx.store, "acme", None, None).await;
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.channel(), portcullis_store::postgres::CHANGE_CHANNEL);
    assert_eq!(n.payload(), cx.store.version().await.unwrap().to_string());
    // A failed write notifies nobody.
    let dup = NewCompany {
        id: "acme".into(),
        account_type: "customer".into(),
        ..Default::default()
    };
    assert!(cx.store.create_company(dup, &Audit::system()).await.is_err());
    assert!(tokio::time::timeout(Duration::from_millis(300), listener.recv())
        .await
        .is_err());
}
