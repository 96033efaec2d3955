//! Invitations: single use, expiry with a manual clock, revocation, the user limit at acceptance,
//! a taken login closing the invitation.

use portcullis_store::*;
use time::Duration;

use crate::harness::{company, user, Ctx};

conformance!(
    single_use,
    expiry,
    revocation_and_unknown_tokens,
    limit_at_acceptance,
    a_conflict_closes_the_invitation
);

fn invite(company: &str, email: &str) -> NewInvitation {
    NewInvitation {
        company: company.into(),
        email: email.into(),
        role: "planner".into(),
        flags: vec!["isolated".into()],
        ..Default::default()
    }
}

async fn single_use(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    let issued = s
        .create_invitation(invite("acme", "New@Acme.Example"), &Audit::by("admin"))
        .await
        .unwrap();
    let inv = &issued.invitation;
    assert_eq!(issued.token.expose().len(), 64, "256 random bits, hex");
    assert_eq!(
        (inv.status, inv.email.as_str()),
        (InvitationStatus::Pending, "new@acme.example")
    );
    assert_eq!(inv.expires_at, crate::harness::start() + Duration::days(14));
    assert_eq!(inv.invited_by.as_deref(), Some("admin"));
    let listed = s.list_invitations("acme", false).await.unwrap();
    assert_eq!(listed.len(), 1);

    let acceptance = Acceptance {
        user_id: Some("newbie".into()),
        login: None,
        name: "New Bie".into(),
    };
    let u = s
        .accept_invitation(issued.token.expose(), acceptance.clone(), &Audit::system())
        .await
        .unwrap();
    assert_eq!(
        (u.id.as_str(), u.login.as_str(), u.role.as_str()),
        ("newbie", "new@acme.example", "planner")
    );
    assert_eq!(u.flags, ["isolated"]);

    let again = s
        .accept_invitation(issued.token.expose(), acceptance, &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!("invitation `{}` is `accepted` and cannot be accepted", inv.id)
    );
    assert!(s.list_invitations("acme", false).await.unwrap().is_empty());
    let closed = s.list_invitations("acme", true).await.unwrap();
    assert_eq!(
        (closed[0].status, closed[0].user.as_deref()),
        (InvitationStatus::Accepted, Some("newbie"))
    );
    let q = AuditQuery {
        action: Some(actions::INVITATION_ACCEPT.into()),
        ..Default::default()
    };
    let row = &s.query_audit(&q).await.unwrap().items[0];
    assert_eq!(
        row.actor.as_deref(),
        Some("newbie"),
        "the new user accepted its own invitation"
    );
}

async fn expiry(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    let mut short = invite("acme", "late@acme.example");
    short.ttl = Some(Duration::days(7));
    let issued = s.create_invitation(short, &Audit::by("admin")).await.unwrap();
    cx.clock.advance(Duration::days(7) - Duration::seconds(1));
    assert_eq!(
        s.get_invitation(&issued.invitation.id).await.unwrap().status,
        InvitationStatus::Pending
    );
    cx.clock.advance(Duration::seconds(1));
    assert_eq!(
        s.get_invitation(&issued.invitation.id).await.unwrap().status,
        InvitationStatus::Expired
    );
    let err = s
        .accept_invitation(issued.token.expose(), Acceptance::default(), &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invitation has expired");
    assert!(matches!(
        s.get_user_by_login("late@acme.example").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        s.list_invitations("acme", false).await.unwrap()[0].status,
        InvitationStatus::Expired
    );
}

async fn revocation_and_unknown_tokens(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    let issued = s
        .create_invitation(invite("acme", "x@acme.example"), &Audit::by("admin"))
        .await
        .unwrap();
    let id = issued.invitation.id.clone();
    let revoked = s.revoke_invitation(&id, &Audit::by("admin")).await.unwrap();
    assert_eq!(revoked.status, InvitationStatus::Revoked);
    let err = s
        .accept_invitation(issued.token.expose(), Acceptance::default(), &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(s.revoke_invitation(&id, &Audit::by("admin")).await.is_err());
    let err = s
        .accept_invitation("not-a-token", Acceptance::default(), &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invitation `(token)` not found");
    let err = s
        .create_invitation(invite("ghost", "x@y.example"), &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "company `ghost` not found");
    let err = s
        .create_invitation(invite("acme", "not-an-email"), &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "`not-an-email` is not an email address");
}

async fn limit_at_acceptance(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, Some(1)).await;
    let issued = s
        .create_invitation(invite("acme", "x@acme.example"), &Audit::by("admin"))
        .await
        .unwrap();
    user(s, "first", "acme", "admin").await;
    let err = s
        .accept_invitation(issued.token.expose(), Acceptance::default(), &Audit::system())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err:?}");
    let inv = s.get_invitation(&issued.invitation.id).await.unwrap();
    assert_eq!(
        inv.status,
        InvitationStatus::Pending,
        "a failed acceptance leaves the invitation usable"
    );
}

async fn a_conflict_closes_the_invitation(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "taken", "acme", "admin").await;
    let issued = s
        .create_invitation(invite("acme", "x@acme.example"), &Audit::by("admin"))
        .await
        .unwrap();
    let taken = Acceptance {
        user_id: Some("taken".into()),
        ..Acceptance::default()
    };
    let err = s
        .accept_invitation(issued.token.expose(), taken, &Audit::system())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let inv = s.get_invitation(&issued.invitation.id).await.unwrap();
    assert_eq!(
        inv.status,
        InvitationStatus::Revoked,
        "a taken id closes the invitation: the token asks nothing twice"
    );
    let err = s
        .accept_invitation(issued.token.expose(), Acceptance::default(), &Audit::system())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}
