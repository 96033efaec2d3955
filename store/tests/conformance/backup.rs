//! `backup` (SQLite): an online, consistent copy that a fresh store opens with users, grants
//! and the audit trail, and without sign-in sessions.

use std::sync::Arc;

use portcullis_store::*;
use time::Duration;

use crate::harness::{company, start, user};

async fn open(path: &std::path::Path) -> SqliteStore {
    let clock = Arc::new(ManualClock::new(start()));
    let s = SqliteStore::open(SqliteOptions::new(path), clock, StoreLimits::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    s
}

/// The newest 500 audit entries.
async fn last_500(s: &SqliteStore) -> Vec<AuditEntry> {
    let q = AuditQuery {
        limit: Some(500),
        ..AuditQuery::default()
    };
    s.query_audit(&q).await.unwrap().items
}

#[tokio::test]
async fn a_backup_restores_users_grants_and_audit_but_no_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let s = open(&db).await;
    company(&s, "shipper", None, None).await;
    company(&s, "partner", None, None).await;
    user(&s, "owner", "shipper", "owner").await;
    user(&s, "vic", "partner", "regular").await;
    let g = s
        .request_grant(
            NewGrant {
                user: "vic".into(),
                company: "shipper".into(),
                locations: vec![],
                actors: vec![],
                expires_at: None,
            },
            &Audit::by("vic"),
        )
        .await
        .unwrap();
    s.approve_grant(&g.id, &Audit::by("owner")).await.unwrap();
    let session = s
        .create_session(
            NewSession {
                user: "owner".into(),
                device: "laptop".into(),
                mfa: false,
                switched_to: None,
                lifetime: Duration::hours(12),
            },
            &Audit::by("owner"),
        )
        .await
        .unwrap();
    let audit_before = last_500(&s).await;

    // Online: the store keeps taking writes while the copy is made.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                user(&s, &format!("busy{i}"), "shipper", "regular").await;
            }
        })
    };
    let copy = dir.path().join("backup.db");
    let summary = backup(&db, &copy).await.unwrap();
    writer.await.unwrap();
    assert_eq!(summary.companies, 2);
    assert_eq!(summary.grants, 1);
    assert!((2..=52).contains(&summary.users), "{summary:?}");
    assert!(
        summary.audit >= i64::try_from(audit_before.len()).unwrap(),
        "{summary:?}"
    );
    assert!(summary.left_out >= 1, "the session is left out: {summary:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds password hashes");
    }

    // A consistent snapshot: every user the copy counts is whole, and the copy opens as a store.
    let restored = open(&copy).await;
    assert_eq!(restored.get_user("owner").await.unwrap().role, "owner");
    assert_eq!(restored.get_user("vic").await.unwrap().company, "partner");
    let active = restored.active_grants_for_user("vic").await.unwrap();
    assert_eq!(active.len(), 1, "the approved grant survives");
    let restored_audit = last_500(&restored).await;
    for e in &audit_before {
        assert!(
            restored_audit.iter().any(|r| r.id == e.id),
            "audit entry {} survives",
            e.id
        );
    }
    assert!(
        matches!(
            restored.get_session(&session.session.id).await,
            Err(StoreError::NotFound { .. })
        ),
        "no session survives a restore"
    );
    assert!(restored
        .resolve_session(session.token.expose(), Duration::hours(1))
        .await
        .is_err());
    // The original still has it.
    assert!(s.get_session(&session.session.id).await.is_ok());

    // Never over an existing file, which is left as it was.
    std::fs::write(dir.path().join("taken.db"), b"keep me").unwrap();
    let err = backup(&db, &dir.path().join("taken.db")).await.unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("taken.db")).unwrap(), b"keep me");
    // Nor from a file that is not there, leaving nothing behind.
    let err = backup(&dir.path().join("missing.db"), &dir.path().join("out.db"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a SQLite store"), "{err}");
    assert!(!dir.path().join("out.db").exists());
    restored.close().await;
    s.close().await;
}
