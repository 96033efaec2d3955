//! Sign-in state: the lockout under a manual clock and under concurrency, sessions and their
//! lifetimes, single-use reset tokens, TOTP steps, recovery codes and token links.

use std::sync::Arc;

use portcullis_store::*;
use time::Duration;

use crate::harness::{audit_count, company, user, Ctx};

conformance!(
    lockout_follows_the_clock,
    concurrent_attempts_verify_at_most_the_limit,
    sessions_live_idle_and_absolute_lifetimes,
    reset_tokens_are_single_use_and_expire,
    email_changes_wait_for_their_link,
    totp_steps_and_recovery_codes_are_used_once,
    token_links_resolve_until_revoked,
);

const RULES: Lockout = Lockout {
    max_failures: 5,
    lock_for: Duration::minutes(30),
};

async fn lockout_follows_the_clock(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    for n in 1..=4 {
        let a = s.begin_sign_in("alice", RULES).await.unwrap();
        assert_eq!(
            a,
            Attempt::Proceed {
                failures: n,
                locked: false
            }
        );
    }
    let fifth = s.begin_sign_in("alice", RULES).await.unwrap();
    assert_eq!(
        fifth,
        Attempt::Proceed {
            failures: 5,
            locked: true
        }
    );
    let locked_at = cx.clock.now();
    let until = locked_at + Duration::minutes(30);
    assert_eq!(
        s.begin_sign_in("alice", RULES).await.unwrap(),
        Attempt::Locked { until }
    );
    cx.clock.advance(Duration::minutes(30) - Duration::seconds(1));
    assert_eq!(
        s.begin_sign_in("alice", RULES).await.unwrap(),
        Attempt::Locked { until }
    );
    let state = s.lock_state("alice").await.unwrap();
    assert_eq!(state.locked_until, Some(until));
    cx.clock.advance(Duration::seconds(1));
    assert_eq!(s.lock_state("alice").await.unwrap().locked_until, None);
    assert_eq!(
        s.begin_sign_in("alice", RULES).await.unwrap(),
        Attempt::Proceed {
            failures: 1,
            locked: false
        },
        "a lock that ran out starts a fresh count"
    );
    s.sign_in_succeeded("alice").await.unwrap();
    assert_eq!(s.lock_state("alice").await.unwrap().failures, 0);

    // An admin unlocks at once.
    for _ in 0..5 {
        s.begin_sign_in("alice", RULES).await.unwrap();
    }
    assert!(matches!(
        s.begin_sign_in("alice", RULES).await.unwrap(),
        Attempt::Locked { .. }
    ));
    s.unlock_user("alice", &Audit::by("root")).await.unwrap();
    assert!(matches!(
        s.begin_sign_in("alice", RULES).await.unwrap(),
        Attempt::Proceed { failures: 1, .. }
    ));
    let q = |action: &str| AuditQuery {
        action: Some(action.to_owned()),
        ..AuditQuery::default()
    };
    assert_eq!(audit_count(s, q("auth.lock")).await, 2);
    assert_eq!(audit_count(s, q("auth.unlock")).await, 1);
    assert_eq!(audit_count(s, q("auth.login")).await, 1);
    s.audit_sign_in_failure(Some("alice"), Some("acme"), "wrong password")
        .await
        .unwrap();
    s.audit_sign_in_failure(None, None, "unknown login")
        .await
        .unwrap();
    assert_eq!(audit_count(s, q("auth.login")).await, 3);
    // A login that names no user locks the same way, without an audit row.
    let ghost = unknown_subject("Ghost@Example.com ");
    assert_eq!(ghost, unknown_subject("ghost@example.com"));
    for _ in 0..5 {
        assert!(matches!(
            s.begin_sign_in(&ghost, RULES).await.unwrap(),
            Attempt::Proceed { .. }
        ));
    }
    assert!(matches!(
        s.begin_sign_in(&ghost, RULES).await.unwrap(),
        Attempt::Locked { .. }
    ));
    assert_eq!(audit_count(s, q("auth.lock")).await, 2);
}

async fn concurrent_attempts_verify_at_most_the_limit(cx: Ctx) {
    let s = cx.store.clone();
    company(&*s, "acme", None, None).await;
    user(&*s, "alice", "acme", "admin").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s: Arc<dyn UserStore> = s.clone();
            tokio::spawn(async move { s.begin_sign_in("alice", RULES).await.unwrap() })
        })
        .collect();
    let mut proceed = 0;
    let mut locked = 0;
    for t in tasks {
        match t.await.unwrap() {
            Attempt::Proceed { .. } => proceed += 1,
            Attempt::Locked { .. } => locked += 1,
        }
    }
    assert_eq!((proceed, locked), (5, 45));
}

fn new_session(user: &str) -> NewSession {
    NewSession {
        user: user.to_owned(),
        device: "laptop".to_owned(),
        mfa: false,
        switched_to: None,
        lifetime: Duration::hours(12),
    }
}

async fn sessions_live_idle_and_absolute_lifetimes(cx: Ctx) {
    let s = &*cx.store;
    let idle = Duration::minutes(30);
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "bob", "acme", "user").await;
    let a = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    let token = a.token.expose().to_owned();
    assert!(token.starts_with("pcs_") && token.len() > 64);
    assert!(
        !format!("{a:?}").contains(&token[4..]),
        "the token's Debug is redacted"
    );
    assert_eq!(s.resolve_session(&token, idle).await.unwrap().id, a.session.id);
    for bad in ["pcs_00", "nonsense", "", &token[..token.len() - 1]] {
        assert!(matches!(
            s.resolve_session(bad, idle).await.unwrap_err(),
            StoreError::NotFound { .. }
        ));
    }

    // Idle: used at 29:59 keeps it alive; 30 minutes without use ends it.
    cx.clock.advance(idle - Duration::seconds(1));
    assert!(s.resolve_session(&token, idle).await.is_ok());
    cx.clock.advance(idle - Duration::seconds(1));
    assert!(s.resolve_session(&token, idle).await.is_ok());
    cx.clock.advance(idle);
    assert!(s.resolve_session(&token, idle).await.is_err());

    // Absolute: activity does not extend it past its lifetime.
    let b = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    let t = b.token.expose().to_owned();
    for _ in 0..24 {
        cx.clock.advance(Duration::minutes(29));
        assert!(s.resolve_session(&t, idle).await.is_ok());
    }
    cx.clock.advance(Duration::minutes(29));
    assert!(s.resolve_session(&t, idle).await.is_err(), "past 12 hours");

    // Revoke one, revoke all but the current, deactivation ends them.
    let c1 = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    let c2 = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    let c3 = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(s.list_sessions("alice", idle).await.unwrap().len(), 3);
    let revoked = s
        .revoke_session(&c1.session.id, &Audit::by("alice"))
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(s.resolve_session(c1.token.expose(), idle).await.is_err());
    let n = s
        .revoke_sessions("alice", Some(&c2.session.id), &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(
        n, 3,
        "every unrevoked session but the kept one: c3 and the two dead ones"
    );
    assert!(s.resolve_session(c3.token.expose(), idle).await.is_err());
    let kept = s.resolve_session(c2.token.expose(), idle).await.unwrap();
    let switched = s
        .update_session(&kept.id, true, Some("customer-1".to_owned()))
        .await
        .unwrap();
    assert!(switched.mfa);
    assert_eq!(switched.switched_to.as_deref(), Some("customer-1"));
    let listed = s.list_sessions("alice", idle).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        [kept.id.as_str()]
    );
    s.deactivate_user("alice", &Audit::by("root")).await.unwrap();
    assert!(s.resolve_session(c2.token.expose(), idle).await.is_err());
    s.reactivate_user("alice", &Audit::by("root")).await.unwrap();

    // Deleting a user deletes its sessions.
    let d = s
        .create_session(new_session("bob"), &Audit::by("bob"))
        .await
        .unwrap();
    s.delete_user("bob", None, &Audit::by("root")).await.unwrap();
    assert!(s.resolve_session(d.token.expose(), idle).await.is_err());
    assert!(s.get_session(&d.session.id).await.is_err());
}

async fn reset_tokens_are_single_use_and_expire(cx: Ctx) {
    let s = &*cx.store;
    let idle = Duration::minutes(30);
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    let hour = Duration::hours(1);
    let live = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    for _ in 0..5 {
        s.begin_sign_in("alice", RULES).await.unwrap();
    }

    let key = s
        .create_api_key(
            "alice",
            "made in a session",
            Some(&live.session.id),
            &Audit::by("alice"),
        )
        .await
        .unwrap();
    let other = s
        .create_api_key("alice", "made by an admin", None, &Audit::by("root"))
        .await
        .unwrap();
    assert_eq!(key.key.session.as_deref(), Some(live.session.id.as_str()));

    // Valid at 59:59, once; one live token per user at a time.
    let t1 = s
        .create_reset_token("alice", hour, &Audit::system())
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.create_reset_token("alice", hour, &Audit::system())
            .await
            .unwrap()
            .is_none(),
        "a second request while a link is live issues nothing"
    );
    cx.clock.advance(hour - Duration::seconds(1));
    let u = s
        .reset_password(t1.expose(), "$argon2id$new".to_owned(), &Audit::system())
        .await
        .unwrap();
    assert!(u.has_password);
    assert_eq!(
        s.credentials(&u.login).await.unwrap().1.as_deref(),
        Some("$argon2id$new")
    );
    assert_eq!(
        s.lock_state("alice").await.unwrap().locked_until,
        None,
        "a reset unlocks"
    );
    assert!(
        s.resolve_session(live.token.expose(), idle).await.is_err(),
        "a reset ends sessions"
    );
    assert!(
        s.resolve_api_key(key.secret.expose()).await.is_err(),
        "a reset revokes the keys its sessions made"
    );
    assert!(
        s.resolve_api_key(other.secret.expose()).await.is_ok(),
        "keys made without a session stay"
    );
    assert!(matches!(
        s.reset_password(t1.expose(), "$argon2id$again".to_owned(), &Audit::system())
            .await
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));

    // Dead at 60:00.
    let t2 = s
        .create_reset_token("alice", hour, &Audit::system())
        .await
        .unwrap()
        .unwrap();
    cx.clock.advance(hour);
    assert!(matches!(
        s.reset_password(t2.expose(), "$argon2id$late".to_owned(), &Audit::system())
            .await
            .unwrap_err(),
        StoreError::Expired { .. }
    ));
    assert_eq!(
        s.credentials(&u.login).await.unwrap().1.as_deref(),
        Some("$argon2id$new")
    );
    assert!(s
        .reset_password("pcr_nonsense", "$x".to_owned(), &Audit::system())
        .await
        .is_err());

    // Changing the password keeps only the current session.
    let a = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    let b = s
        .create_session(new_session("alice"), &Audit::by("alice"))
        .await
        .unwrap();
    s.change_password(
        "alice",
        "$argon2id$changed".to_owned(),
        Some(&a.session.id),
        &Audit::by("alice"),
    )
    .await
    .unwrap();
    assert!(s.resolve_session(a.token.expose(), idle).await.is_ok());
    assert!(s.resolve_session(b.token.expose(), idle).await.is_err());
}

async fn totp_steps_and_recovery_codes_are_used_once(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    assert_eq!(s.totp("alice").await.unwrap(), Totp::default());
    assert!(
        !s.use_totp_step("alice", 100).await.unwrap(),
        "no secret, no step"
    );
    s.set_totp(
        "alice",
        Some("sealed-secret".to_owned()),
        false,
        &Audit::by("alice"),
    )
    .await
    .unwrap();
    s.set_totp(
        "alice",
        Some("sealed-secret".to_owned()),
        true,
        &Audit::by("alice"),
    )
    .await
    .unwrap();
    let t = s.totp("alice").await.unwrap();
    assert_eq!((t.sealed.as_deref(), t.enabled), (Some("sealed-secret"), true));
    assert!(s.use_totp_step("alice", 100).await.unwrap());
    assert!(
        !s.use_totp_step("alice", 100).await.unwrap(),
        "the same step twice"
    );
    assert!(
        !s.use_totp_step("alice", 99).await.unwrap(),
        "an earlier step after a later one"
    );
    assert!(s.use_totp_step("alice", 101).await.unwrap());

    let codes: Vec<Secret> = (0..10)
        .map(|i| Secret::new(format!("abcd-efgh-{i:04}")))
        .collect();
    s.set_recovery_codes("alice", &codes, &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(s.recovery_codes_left("alice").await.unwrap(), 10);
    assert!(s.use_recovery_code("alice", "ABCD EFGH 0003").await.unwrap());
    assert!(
        !s.use_recovery_code("alice", "abcd-efgh-0003").await.unwrap(),
        "once"
    );
    assert!(!s.use_recovery_code("alice", "abcd-efgh-9999").await.unwrap());
    assert_eq!(s.recovery_codes_left("alice").await.unwrap(), 9);

    s.set_totp("alice", None, false, &Audit::by("alice"))
        .await
        .unwrap();
    assert_eq!(s.totp("alice").await.unwrap().sealed, None);
    assert_eq!(
        s.recovery_codes_left("alice").await.unwrap(),
        0,
        "disabling drops the codes"
    );
}

async fn token_links_resolve_until_revoked(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    let (link, token) = s.create_company_link("acme", &Audit::by("root")).await.unwrap();
    assert!(token.expose().starts_with("pcl_"));
    assert_eq!(
        s.resolve_company_link(token.expose()).await.unwrap().company,
        "acme"
    );
    assert!(s.resolve_company_link("pcl_0000").await.is_err());
    s.revoke_company_link(&link.id, &Audit::by("root")).await.unwrap();
    assert!(s.resolve_company_link(token.expose()).await.is_err());
    assert!(s.revoke_company_link(&link.id, &Audit::by("root")).await.is_err());
    assert!(s.create_company_link("ghost", &Audit::by("root")).await.is_err());
}

async fn email_changes_wait_for_their_link(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    user(s, "bob", "acme", "admin").await;
    let hour = Duration::hours(1);
    let old = "alice@acme.example";

    // Asked for: nothing changes yet; a second request replaces the first link.
    let first = s
        .request_email_change("alice", "ali@new.example", hour, &Audit::by("root"))
        .await
        .unwrap();
    assert_eq!(s.get_user("alice").await.unwrap().email.as_deref(), Some(old));
    let second = s
        .request_email_change("alice", "alice@new.example", hour, &Audit::by("root"))
        .await
        .unwrap();
    assert!(matches!(
        s.confirm_email_change(first.expose(), &Audit::system()).await,
        Err(StoreError::NotFound { .. })
    ));
    // An address another user has is refused at once, and still at confirmation.
    assert!(matches!(
        s.request_email_change("alice", "bob@acme.example", hour, &Audit::by("root"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        s.request_email_change("alice", "not an address", hour, &Audit::by("root"))
            .await,
        Err(StoreError::Invalid(_))
    ));

    // Confirmed once, before it expires: the address, and the login that was the address.
    cx.clock.advance(hour - Duration::seconds(1));
    let u = s
        .confirm_email_change(second.expose(), &Audit::system())
        .await
        .unwrap();
    assert_eq!(
        (u.email.as_deref(), u.login.as_str()),
        (Some("alice@new.example"), "alice@new.example")
    );
    assert!(matches!(
        s.confirm_email_change(second.expose(), &Audit::system()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        audit_count(
            s,
            AuditQuery {
                action: Some("auth.email_change".to_owned()),
                ..AuditQuery::default()
            }
        )
        .await,
        1
    );

    // Expired: refused, and the address stays.
    let late = s
        .request_email_change("bob", "robert@acme.example", hour, &Audit::by("root"))
        .await
        .unwrap();
    cx.clock.advance(hour);
    assert!(matches!(
        s.confirm_email_change(late.expose(), &Audit::system()).await,
        Err(StoreError::Expired { .. })
    ));
    // Taken between the request and the confirmation: refused, nothing written.
    let race = s
        .request_email_change("bob", "carol@acme.example", hour, &Audit::by("root"))
        .await
        .unwrap();
    user(s, "carol", "acme", "admin").await;
    assert!(matches!(
        s.confirm_email_change(race.expose(), &Audit::system()).await,
        Err(StoreError::Conflict { .. })
    ));
    let bob = s.get_user("bob").await.unwrap();
    assert_eq!(bob.email.as_deref(), Some("bob@acme.example"));
    // A token of another kind is no e-mail change token.
    assert!(matches!(
        s.confirm_email_change("pcr_whatever", &Audit::system()).await,
        Err(StoreError::NotFound { .. })
    ));
}
