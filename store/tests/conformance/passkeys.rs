//! Passkeys: registration, lookup by credential id, use, removal by their own user only, the
//! unique credential id, cascade on user deletion; WebAuthn ceremonies taken once (also under
//! concurrency), by their kind only, expiring with a manual clock; backups keep passkeys and
//! leave ceremonies out.

use std::sync::Arc;

use portcullis_store::*;
use serde_json::json;
use time::Duration;

use crate::harness::{audit_count, company, start, user, Ctx};

conformance!(
    passkeys_register_list_and_resolve,
    a_credential_id_is_registered_once,
    using_a_passkey_updates_its_credential,
    passkeys_are_removed_by_their_user_only,
    deleting_a_user_deletes_its_passkeys_and_ceremonies,
    ceremonies_are_taken_once_by_their_kind,
    ceremonies_expire,
    concurrent_takes_succeed_once,
);

fn new_passkey(user: &str, credential_id: &str) -> NewPasskey {
    NewPasskey {
        user: user.to_owned(),
        handle: format!("handle-of-{user}"),
        credential_id: credential_id.to_owned(),
        name: format!("key {credential_id}"),
        credential: format!("{{\"cred\":\"{credential_id}\",\"counter\":0}}"),
    }
}

fn passkey_audits(user: &str) -> AuditQuery {
    AuditQuery {
        user: Some(user.to_owned()),
        action: Some("auth.passkey".to_owned()),
        ..AuditQuery::default()
    }
}

async fn passkeys_register_list_and_resolve(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "bob", "acme", "regular").await;
    assert!(s.passkeys("alice").await.unwrap().is_empty());

    let first = s
        .add_passkey(new_passkey("alice", "cred-1"), &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(first.user, "alice");
    assert_eq!(first.handle, "handle-of-alice");
    assert_eq!(first.credential_id, "cred-1");
    assert_eq!(first.name, "key cred-1");
    assert_eq!(first.credential, "{\"cred\":\"cred-1\",\"counter\":0}");
    assert_eq!(first.created_at, start());
    assert_eq!(first.last_used_at, None);
    assert_eq!(first.id.len(), 32, "a simple uuid: {}", first.id);

    // Two more a second later, at the same instant: oldest first, then by id.
    cx.clock.advance(Duration::seconds(1));
    let b = s
        .add_passkey(new_passkey("alice", "cred-2"), &Audit::by("alice"))
        .await
        .unwrap();
    let c = s
        .add_passkey(new_passkey("alice", "cred-3"), &Audit::by("alice"))
        .await
        .unwrap();
    let (second, third) = if b.id < c.id { (b, c) } else { (c, b) };
    let listed = s.passkeys("alice").await.unwrap();
    assert_eq!(listed, vec![first.clone(), second, third]);
    assert!(
        s.passkeys("bob").await.unwrap().is_empty(),
        "another user's passkeys are not listed"
    );

    // Resolved by credential id, whoever asks.
    assert_eq!(s.passkey_by_credential("cred-1").await.unwrap(), first);
    assert!(matches!(
        s.passkey_by_credential("cred-9").await.unwrap_err(),
        StoreError::NotFound { what: "passkey", .. }
    ));

    // Serialised for the API without the handle and the credential.
    let shown = serde_json::to_value(&first).unwrap();
    assert_eq!(shown["credential_id"], json!("cred-1"));
    assert!(shown.get("credential").is_none(), "{shown}");
    assert!(shown.get("handle").is_none(), "{shown}");

    // Audited, with the passkey's id, name and state.
    assert_eq!(audit_count(s, passkey_audits("alice")).await, 3);
    let rows = s.query_audit(&passkey_audits("alice")).await.unwrap().items;
    let oldest = rows.last().unwrap();
    assert_eq!(oldest.details["passkey"], json!(first.id));
    assert_eq!(oldest.details["name"], json!("key cred-1"));
    assert_eq!(oldest.details["state"], json!("registered"));
    assert_eq!(oldest.target.as_deref(), Some("user:alice"));
    assert_eq!(oldest.company.as_deref(), Some("acme"));
    assert_eq!(oldest.actor.as_deref(), Some("alice"));

    // An unknown user has no passkeys and gets none.
    assert!(matches!(
        s.passkeys("ghost").await.unwrap_err(),
        StoreError::NotFound { what: "user", .. }
    ));
    assert!(matches!(
        s.add_passkey(new_passkey("ghost", "cred-ghost"), &Audit::system())
            .await
            .unwrap_err(),
        StoreError::NotFound { what: "user", .. }
    ));
    assert!(s.passkey_by_credential("cred-ghost").await.is_err());
    assert_eq!(audit_count(s, passkey_audits("ghost")).await, 0);
}

async fn a_credential_id_is_registered_once(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    company(s, "other", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "mallory", "other", "regular").await;
    let original = s
        .add_passkey(new_passkey("alice", "cred-1"), &Audit::by("alice"))
        .await
        .unwrap();
    cx.clock.advance(Duration::minutes(1));

    for who in ["alice", "mallory"] {
        let mut again = new_passkey(who, "cred-1");
        again.credential = "{\"replaced\":true}".to_owned();
        again.handle = "another-handle".to_owned();
        let err = s.add_passkey(again, &Audit::by(who)).await.unwrap_err();
        let StoreError::Conflict { constraint, message } = &err else {
            panic!("{who}: expected a conflict, got {err:?}");
        };
        assert_eq!(constraint, "passkeys_credential_id_key");
        assert!(message.contains("cred-1"), "names the credential: {message}");
        assert!(
            !message.contains("alice") && !message.contains("mallory"),
            "says nothing of whose it is: {message}"
        );
    }
    // The first registration is untouched, and the refused ones left nothing.
    assert_eq!(s.passkey_by_credential("cred-1").await.unwrap(), original);
    assert_eq!(s.passkeys("alice").await.unwrap(), vec![original]);
    assert!(s.passkeys("mallory").await.unwrap().is_empty());
    assert_eq!(audit_count(s, passkey_audits("alice")).await, 1);
    assert_eq!(audit_count(s, passkey_audits("mallory")).await, 0);
}

async fn using_a_passkey_updates_its_credential(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    let p = s
        .add_passkey(new_passkey("alice", "cred-1"), &Audit::by("alice"))
        .await
        .unwrap();
    let other = s
        .add_passkey(new_passkey("alice", "cred-2"), &Audit::by("alice"))
        .await
        .unwrap();

    cx.clock.advance(Duration::hours(2));
    s.passkey_used(&p.id, "{\"counter\":7}".to_owned()).await.unwrap();
    let used = s.passkey_by_credential("cred-1").await.unwrap();
    assert_eq!(used.credential, "{\"counter\":7}");
    assert_eq!(used.last_used_at, Some(start() + Duration::hours(2)));
    assert_eq!(used.created_at, p.created_at, "registration time stays");
    assert_eq!(
        (used.id.as_str(), used.name.as_str(), used.handle.as_str()),
        (p.id.as_str(), p.name.as_str(), p.handle.as_str())
    );
    assert_eq!(
        s.passkey_by_credential("cred-2").await.unwrap(),
        other,
        "the other passkey is untouched"
    );

    cx.clock.advance(Duration::minutes(5));
    s.passkey_used(&p.id, "{\"counter\":8}".to_owned()).await.unwrap();
    let again = s.passkey_by_credential("cred-1").await.unwrap();
    assert_eq!(again.credential, "{\"counter\":8}");
    assert_eq!(
        again.last_used_at,
        Some(start() + Duration::hours(2) + Duration::minutes(5))
    );

    assert!(matches!(
        s.passkey_used("no-such-id", "{}".to_owned()).await.unwrap_err(),
        StoreError::NotFound { what: "passkey", .. }
    ));
    // A use is no registration: not audited here.
    assert_eq!(audit_count(s, passkey_audits("alice")).await, 2);
}

async fn passkeys_are_removed_by_their_user_only(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "bob", "acme", "regular").await;
    let mine = s
        .add_passkey(new_passkey("alice", "cred-a"), &Audit::by("alice"))
        .await
        .unwrap();
    let kept = s
        .add_passkey(new_passkey("alice", "cred-b"), &Audit::by("alice"))
        .await
        .unwrap();
    let bobs = s
        .add_passkey(new_passkey("bob", "cred-bob"), &Audit::by("bob"))
        .await
        .unwrap();

    // Bob cannot remove Alice's passkey, nor an unknown user anyone's.
    for who in ["bob", "ghost"] {
        let err = s
            .remove_passkey(who, &mine.id, &Audit::by(who))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { what: "passkey", .. }),
            "{who}: {err:?}"
        );
    }
    assert_eq!(s.passkeys("alice").await.unwrap().len(), 2, "nothing removed");
    assert_eq!(s.passkeys("bob").await.unwrap(), vec![bobs.clone()]);
    assert_eq!(audit_count(s, passkey_audits("alice")).await, 2);

    cx.clock.advance(Duration::minutes(1));
    let removed = s
        .remove_passkey("alice", &mine.id, &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(removed, mine);
    assert_eq!(s.passkeys("alice").await.unwrap(), vec![kept]);
    assert!(s.passkey_by_credential("cred-a").await.is_err());
    assert_eq!(s.passkeys("bob").await.unwrap(), vec![bobs]);

    let rows = s.query_audit(&passkey_audits("alice")).await.unwrap().items;
    assert_eq!(rows.len(), 3, "two registrations and a removal");
    let last = &rows[0];
    assert_eq!(last.details["state"], json!("removed"));
    assert_eq!(last.details["passkey"], json!(mine.id));
    assert_eq!(last.details["name"], json!("key cred-a"));
    assert_eq!(last.target.as_deref(), Some("user:alice"));
    assert_eq!(last.company.as_deref(), Some("acme"));
    assert_eq!(last.at, start() + Duration::minutes(1));

    // Gone once: a second removal is NotFound, and audits nothing.
    assert!(matches!(
        s.remove_passkey("alice", &mine.id, &Audit::by("alice"))
            .await
            .unwrap_err(),
        StoreError::NotFound { what: "passkey", .. }
    ));
    assert_eq!(audit_count(s, passkey_audits("alice")).await, 3);

    // The freed credential id can be registered again.
    s.add_passkey(new_passkey("bob", "cred-a"), &Audit::by("bob"))
        .await
        .unwrap();
}

async fn deleting_a_user_deletes_its_passkeys_and_ceremonies(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "bob", "acme", "regular").await;
    s.add_passkey(new_passkey("bob", "cred-bob"), &Audit::by("bob"))
        .await
        .unwrap();
    let bobs_ceremony = s
        .begin_ceremony("register", Some("bob"), "{}".to_owned(), Duration::minutes(5))
        .await
        .unwrap();
    let alices = s
        .add_passkey(new_passkey("alice", "cred-alice"), &Audit::by("alice"))
        .await
        .unwrap();

    s.delete_user("bob", None, &Audit::by("alice")).await.unwrap();
    assert!(matches!(
        s.passkey_by_credential("cred-bob").await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(matches!(
        s.take_ceremony("register", bobs_ceremony.expose())
            .await
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(
        s.passkey_by_credential("cred-alice").await.unwrap(),
        alices,
        "other users keep theirs"
    );
    // Its credential id is free again.
    s.add_passkey(new_passkey("alice", "cred-bob"), &Audit::by("alice"))
        .await
        .unwrap();
}

async fn ceremonies_are_taken_once_by_their_kind(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    let ttl = Duration::minutes(5);
    let state = "{\"challenge\":\"c1\",\"ünïcode\":\"✓\"}".to_owned();

    let token = s
        .begin_ceremony("register", Some("alice"), state.clone(), ttl)
        .await
        .unwrap();
    let secret = token.expose().strip_prefix("pkc_").unwrap();
    assert_eq!(secret.len(), 64, "256 random bits, hex: {secret}");

    // The wrong kind, a token without its prefix and garbage find nothing, and use nothing up.
    let not_found = |r: Result<(Option<String>, String)>| match r {
        Err(e @ StoreError::NotFound { .. }) => {
            let text = e.to_string();
            assert!(text.contains("(redacted)"), "{text}");
            assert!(!text.contains(secret), "the token is not echoed: {text}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    };
    not_found(s.take_ceremony("authenticate", token.expose()).await);
    not_found(s.take_ceremony("register", secret).await);
    not_found(s.take_ceremony("register", "").await);
    not_found(s.take_ceremony("register", "garbage").await);
    not_found(s.take_ceremony("register", "pkc_").await);
    not_found(
        s.take_ceremony("register", &format!("pkc_{}", "0".repeat(64)))
            .await,
    );
    not_found(s.take_ceremony("register", &format!("pcl_{secret}")).await);

    // The right kind takes it, once.
    assert_eq!(
        s.take_ceremony("register", token.expose()).await.unwrap(),
        (Some("alice".to_owned()), state)
    );
    not_found(s.take_ceremony("register", token.expose()).await);
    not_found(s.take_ceremony("authenticate", token.expose()).await);

    // A ceremony for nobody yet (a sign-in), and distinct tokens for equal states.
    let a = s
        .begin_ceremony("authenticate", None, "s".to_owned(), ttl)
        .await
        .unwrap();
    let b = s
        .begin_ceremony("authenticate", None, "s".to_owned(), ttl)
        .await
        .unwrap();
    assert_ne!(a.expose(), b.expose());
    assert_eq!(
        s.take_ceremony("authenticate", a.expose()).await.unwrap(),
        (None, "s".to_owned())
    );
    assert_eq!(
        s.take_ceremony("authenticate", b.expose()).await.unwrap(),
        (None, "s".to_owned()),
        "taking one leaves the other"
    );

    // Only for a user that exists.
    assert!(matches!(
        s.begin_ceremony("register", Some("ghost"), "{}".to_owned(), ttl)
            .await
            .unwrap_err(),
        StoreError::NotFound { what: "user", .. }
    ));
}

async fn ceremonies_expire(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    let ttl = Duration::minutes(5);
    let begin = |state: &str| s.begin_ceremony("register", Some("alice"), state.to_owned(), ttl);

    // Good until the last second.
    let early = begin("early").await.unwrap();
    cx.clock.advance(ttl - Duration::seconds(1));
    assert_eq!(
        s.take_ceremony("register", early.expose()).await.unwrap().1,
        "early"
    );

    // Dead at its time, and gone once told so.
    let late = begin("late").await.unwrap();
    cx.clock.advance(ttl);
    assert!(matches!(
        s.take_ceremony("register", late.expose()).await.unwrap_err(),
        StoreError::Expired { .. }
    ));
    assert!(matches!(
        s.take_ceremony("register", late.expose()).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));

    // Beginning a ceremony drops those past their time: the old one is no longer there to be
    // reported expired.
    let stale = begin("stale").await.unwrap();
    cx.clock.advance(ttl + Duration::seconds(1));
    let fresh = begin("fresh").await.unwrap();
    if let Some(pg) = &cx.pg {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkey_ceremonies")
            .fetch_one(pg.pool())
            .await
            .unwrap();
        assert_eq!(left, 1, "only the fresh ceremony is kept");
    }
    assert!(matches!(
        s.take_ceremony("register", stale.expose()).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(
        s.take_ceremony("register", fresh.expose()).await.unwrap().1,
        "fresh"
    );
}

async fn concurrent_takes_succeed_once(cx: Ctx) {
    let s = cx.store.clone();
    company(&*s, "acme", None, None).await;
    user(&*s, "alice", "acme", "admin").await;
    for round in 0..20 {
        let token = s
            .begin_ceremony(
                "authenticate",
                Some("alice"),
                format!("state {round}"),
                Duration::minutes(5),
            )
            .await
            .unwrap();
        let take = |s: Arc<dyn UserStore>, token: Secret| {
            tokio::spawn(async move { s.take_ceremony("authenticate", token.expose()).await })
        };
        let (a, b) = tokio::join!(take(s.clone(), token.clone()), take(s.clone(), token.clone()));
        let outcomes = [a.unwrap(), b.unwrap()];
        let won: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            won,
            vec![&(Some("alice".to_owned()), format!("state {round}"))],
            "round {round}: exactly one take wins: {outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .any(|r| matches!(r, Err(StoreError::NotFound { .. }))),
            "round {round}: the other finds nothing: {outcomes:?}"
        );
    }
}

/// SQLite only: a backup keeps registered passkeys and leaves ceremonies in progress out.
#[tokio::test]
async fn a_backup_keeps_passkeys_but_no_ceremonies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let clock = ManualClock::new(start());
    let open = |path: std::path::PathBuf, clock: ManualClock| async move {
        let s = SqliteStore::open(SqliteOptions::new(path), Arc::new(clock), StoreLimits::default())
            .await
            .unwrap();
        s.migrate().await.unwrap();
        s
    };
    let s = open(db.clone(), clock.clone()).await;
    company(&s, "acme", None, None).await;
    user(&s, "alice", "acme", "admin").await;
    let p = s
        .add_passkey(new_passkey("alice", "cred-1"), &Audit::by("alice"))
        .await
        .unwrap();
    // One ceremony past its time, dropped when the next begins; one live.
    s.begin_ceremony("register", Some("alice"), "old".to_owned(), Duration::minutes(1))
        .await
        .unwrap();
    clock.advance(Duration::minutes(2));
    let live = s
        .begin_ceremony("authenticate", None, "live".to_owned(), Duration::minutes(5))
        .await
        .unwrap();

    let copy = dir.path().join("backup.db");
    let summary = backup(&db, &copy).await.unwrap();
    assert_eq!(
        summary.left_out, 1,
        "the live ceremony only (the expired one was dropped, no sessions): {summary:?}"
    );

    let restored = open(copy, clock.clone()).await;
    assert_eq!(restored.passkeys("alice").await.unwrap(), vec![p.clone()]);
    assert_eq!(restored.passkey_by_credential("cred-1").await.unwrap(), p);
    assert!(matches!(
        restored
            .take_ceremony("authenticate", live.expose())
            .await
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));
    // The original still has it.
    assert_eq!(
        s.take_ceremony("authenticate", live.expose()).await.unwrap(),
        (None, "live".to_owned())
    );
    restored.close().await;
    s.close().await;
}
