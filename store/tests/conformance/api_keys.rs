//! API keys: stored hashed, resolved in constant time, revocable.

use portcullis_store::*;

use crate::harness::{company, user, Ctx};

conformance!(create_resolve_revoke);

async fn create_resolve_revoke(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    user(s, "alice", "acme", "admin").await;
    let issued = s
        .create_api_key("alice", "ci", None, &Audit::by("alice"))
        .await
        .unwrap();
    let plain = issued.secret.expose().to_owned();
    assert!(plain.starts_with("pck_"));
    assert!(
        !format!("{issued:?}").contains(&plain[10..]),
        "the key's Debug is redacted"
    );
    let key = s.resolve_api_key(&plain).await.unwrap();
    assert_eq!((key.user.as_str(), key.name.as_str()), ("alice", "ci"));

    let mut wrong = plain.clone();
    wrong.pop();
    wrong.push(if plain.ends_with('0') { '1' } else { '0' });
    for bad in [wrong.as_str(), "pck_", "nonsense", &format!("pck_{}_", key.id)] {
        let err = s.resolve_api_key(bad).await.unwrap_err();
        assert_eq!(err.to_string(), "api key `(redacted)` not found");
    }

    let revoked = s.revoke_api_key(&key.id, &Audit::by("alice")).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(s.resolve_api_key(&plain).await.is_err());
    assert!(s.revoke_api_key(&key.id, &Audit::by("alice")).await.is_err());
    assert_eq!(s.list_api_keys("alice").await.unwrap().len(), 1);
    let err = s
        .create_api_key("ghost", "x", None, &Audit::system())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "user `ghost` not found");
}
