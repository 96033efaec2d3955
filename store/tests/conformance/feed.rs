//! The change feed: versions, change rows, and NOTIFY on PostgreSQL.

use std::time::Duration;

use portcullis_store::*;

use crate::harness::{company, user, Ctx};

conformance!(versions_and_changes, notifications, pruning);

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

/// Pruning keeps the rows a live reader can still need (recent by version or by age), moves
/// the horizon past the rest, and a cursor behind the horizon is told so (`expired`).
async fn pruning(cx: Ctx) {
    let s = &*cx.store;
    assert_eq!(s.changes_horizon().await.unwrap(), 0);
    company(s, "acme", None, None).await;
    for i in 0..5 {
        user(s, &format!("u{i}"), "acme", "admin").await;
    }
    let v = s.version().await.unwrap();
    let all = ChangeRetention {
        keep_versions: 0,
        max_age: Duration::ZERO,
    };
    // Young rows stay whatever the version window says.
    let young = ChangeRetention {
        keep_versions: 0,
        max_age: Duration::from_secs(3600),
    };
    assert_eq!(s.prune_changes(young).await.unwrap(), 0);
    assert_eq!(s.changes_horizon().await.unwrap(), 0);
    // An hour later, all but the last two versions go.
    cx.clock.advance(time::Duration::seconds(7200));
    let window = ChangeRetention {
        keep_versions: 2,
        max_age: Duration::from_secs(3600),
    };
    assert_eq!(s.prune_changes(window).await.unwrap(), 4);
    assert_eq!(s.changes_horizon().await.unwrap(), v - 2);
    assert_eq!(s.version().await.unwrap(), v, "pruning is no write of the feed");
    let kept: Vec<i64> = s
        .changes_since(v - 2, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(kept, [v - 1, v]);
    // A reader behind the horizon learns it missed rows.
    let err = s.changes_since(v - 3, 100).await.unwrap_err();
    assert_eq!(err.code(), "expired", "{err}");
    // Pruning again changes nothing; the horizon never goes back.
    assert_eq!(s.prune_changes(window).await.unwrap(), 0);
    assert_eq!(s.prune_changes(ChangeRetention::default()).await.unwrap(), 0);
    assert_eq!(s.changes_horizon().await.unwrap(), v - 2);
    // Everything: the horizon is the current version, new writes are seen from it.
    assert_eq!(s.prune_changes(all).await.unwrap(), 2);
    assert_eq!(s.changes_horizon().await.unwrap(), v);
    user(s, "late", "acme", "admin").await;
    let seen = s.changes_since(v, 100).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, "late");
}
