//! Visitor grants: request, approve, refuse, revoke, expiry, and the active list.

use portcullis_store::*;
use time::Duration;

use crate::harness::{audit_actions, company, user, Ctx};

conformance!(lifecycle, expiry_and_refusal, rules);

fn loc(id: &str) -> EntityRef {
    EntityRef {
        ty: "Portal::Location".into(),
        id: id.into(),
    }
}

async fn setup(s: &dyn UserStore) {
    company(s, "shipper", None, None).await;
    company(s, "partner", None, None).await;
    user(s, "owner", "shipper", "owner").await;
    user(s, "vic", "partner", "regular").await;
}

async fn lifecycle(cx: Ctx) {
    let s = &*cx.store;
    setup(s).await;
    let new = NewGrant {
        user: "vic".into(),
        company: "shipper".into(),
        locations: vec![loc("oslo"), loc("bergen")],
        actors: vec![EntityRef {
            ty: "Portal::Actor".into(),
            id: "a1".into(),
        }],
        expires_at: None,
    };
    let g = s.request_grant(new, &Audit::by("vic")).await.unwrap();
    assert_eq!(
        (g.status, g.from_company.as_str(), g.company.as_str()),
        (GrantStatus::Requested, "partner", "shipper")
    );
    assert!(s.active_grants_for_user("vic").await.unwrap().is_empty());

    cx.clock.advance(Duration::minutes(5));
    let g = s.approve_grant(&g.id, &Audit::by("owner")).await.unwrap();
    assert_eq!(g.status, GrantStatus::Approved);
    assert_eq!(g.decided_by.as_deref(), Some("owner"));
    assert_eq!(g.decided_at, Some(crate::harness::start() + Duration::minutes(5)));
    let active = s.active_grants_for_user("vic").await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].locations, [loc("oslo"), loc("bergen")]);
    assert_eq!(active[0].actors[0].id, "a1");

    let err = s.refuse_grant(&g.id, &Audit::by("owner")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "visitor grant `{}` is `approved` and cannot become `refused`",
            g.id
        )
    );

    let g = s.revoke_grant(&g.id, &Audit::by("owner")).await.unwrap();
    assert_eq!(
        (g.status, g.revoked_by.as_deref()),
        (GrantStatus::Revoked, Some("owner"))
    );
    assert!(s.active_grants_for_user("vic").await.unwrap().is_empty());
    assert!(s.revoke_grant(&g.id, &Audit::by("owner")).await.is_err());

    let listed = s
        .list_grants(&GrantQuery {
            company: Some("shipper".into()),
            status: Some(GrantStatus::Revoked),
            user: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let q = AuditQuery {
        company: Some("shipper".into()),
        ..Default::default()
    };
    let actions = audit_actions(s, q).await;
    assert!(
        actions.starts_with(&["grant.revoke".to_owned(), "grant.approve".to_owned()]),
        "{actions:?}"
    );
}

async fn expiry_and_refusal(cx: Ctx) {
    let s = &*cx.store;
    setup(s).await;
    let soon = crate::harness::start() + Duration::hours(1);
    let req = |expires_at| NewGrant {
        user: "vic".into(),
        company: "shipper".into(),
        expires_at,
        ..Default::default()
    };
    let g = s.request_grant(req(Some(soon)), &Audit::by("vic")).await.unwrap();
    s.approve_grant(&g.id, &Audit::by("owner")).await.unwrap();
    assert_eq!(s.active_grants_for_user("vic").await.unwrap().len(), 1);
    cx.clock.advance(Duration::hours(2));
    assert!(
        s.active_grants_for_user("vic").await.unwrap().is_empty(),
        "expired grants are inactive"
    );

    let late = s
        .request_grant(req(Some(soon + Duration::hours(2))), &Audit::by("vic"))
        .await
        .unwrap();
    cx.clock.advance(Duration::hours(3));
    let err = s.approve_grant(&late.id, &Audit::by("owner")).await.unwrap_err();
    assert_eq!(err.to_string(), "visitor grant has expired");

    let r = s.request_grant(req(None), &Audit::by("vic")).await.unwrap();
    let r = s.refuse_grant(&r.id, &Audit::by("owner")).await.unwrap();
    assert_eq!(r.status, GrantStatus::Refused);
    assert!(s.approve_grant(&r.id, &Audit::by("owner")).await.is_err());
    let mine = s
        .list_grants(&GrantQuery {
            user: Some("vic".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 3);
}

async fn rules(cx: Ctx) {
    let s = &*cx.store;
    setup(s).await;
    let own = NewGrant {
        user: "owner".into(),
        company: "shipper".into(),
        ..Default::default()
    };
    let err = s.request_grant(own, &Audit::by("owner")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "user `owner` already belongs to company `shipper`"
    );
    let past = NewGrant {
        user: "vic".into(),
        company: "shipper".into(),
        expires_at: Some(crate::harness::start() - Duration::seconds(1)),
        ..Default::default()
    };
    assert_eq!(
        s.request_grant(past, &Audit::by("vic")).await.unwrap_err().code(),
        "invalid"
    );
    let ok = NewGrant {
        user: "vic".into(),
        company: "shipper".into(),
        ..Default::default()
    };
    let g = s.request_grant(ok, &Audit::by("vic")).await.unwrap();
    let err = s.approve_grant(&g.id, &Audit::system()).await.unwrap_err();
    assert_eq!(err.to_string(), "a visitor grant decision needs an actor");
    assert!(matches!(
        s.approve_grant("ghost", &Audit::by("owner")).await,
        Err(StoreError::NotFound { .. })
    ));
    // Deleting the visitor removes its grants.
    s.delete_user("vic", None, &Audit::by("root")).await.unwrap();
    assert!(matches!(
        s.get_grant(&g.id).await,
        Err(StoreError::NotFound { .. })
    ));
}
