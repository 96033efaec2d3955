//! Permission groups: CRUD, the single default, and when a group's features define it.

use portcullis_store::*;

use crate::harness::{company, new_user, user, Ctx};

conformance!(single_default_and_new_users, update_and_delete, definitions);

fn group(name: &str, features: &[&str], is_default: bool) -> NewGroup {
    NewGroup {
        name: name.into(),
        description: String::new(),
        features: features.iter().map(|f| f.to_string()).collect(),
        is_default,
    }
}

async fn single_default_and_new_users(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    assert_eq!(user(s, "nobody", "acme", "user").await.group, None);
    s.create_group(group("basic", &["view_orders"], true), &Audit::by("root"))
        .await
        .unwrap();
    s.create_group(
        group("plus", &["view_orders", "view_files"], true),
        &Audit::by("root"),
    )
    .await
    .unwrap();
    let defaults: Vec<String> = s
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.is_default)
        .map(|g| g.name)
        .collect();
    assert_eq!(defaults, ["plus"]);
    assert_eq!(
        user(s, "alice", "acme", "user").await.group.as_deref(),
        Some("plus")
    );
    let mut named = new_user("bob", "acme", "user");
    named.group = Some("basic".into());
    let bob = s.create_user(named, &Audit::system()).await.unwrap();
    assert_eq!(
        s.user_facts(&bob.id, None).await.unwrap().user.group.as_deref(),
        Some("basic")
    );

    s.set_default_group(Some("basic"), &Audit::by("root"))
        .await
        .unwrap();
    assert!(s.get_group("basic").await.unwrap().is_default);
    assert!(!s.get_group("plus").await.unwrap().is_default);
    let err = s
        .set_default_group(Some("ghost"), &Audit::by("root"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "permission group `ghost` not found");
    assert!(
        s.get_group("basic").await.unwrap().is_default,
        "a failed change keeps the old default"
    );
    s.set_default_group(None, &Audit::by("root")).await.unwrap();
    assert_eq!(user(s, "carol", "acme", "user").await.group, None);

    match s
        .create_group(group("plus", &[], false), &Audit::system())
        .await
        .unwrap_err()
    {
        StoreError::Conflict { constraint, .. } => assert_eq!(constraint, "permission_groups_pkey"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn update_and_delete(cx: Ctx) {
    let s = &*cx.store;
    company(s, "acme", None, None).await;
    s.create_group(group("basic", &["a"], false), &Audit::system())
        .await
        .unwrap();
    let patch = GroupPatch {
        features: Some(vec!["a".into(), "b".into(), "a".into()]),
        description: None,
    };
    let g = s.update_group("basic", patch, &Audit::by("root")).await.unwrap();
    assert_eq!(g.features, ["a", "b"]);
    let mut new = new_user("alice", "acme", "user");
    new.group = Some("basic".into());
    s.create_user(new, &Audit::system()).await.unwrap();
    match s.delete_group("basic", &Audit::by("root")).await.unwrap_err() {
        StoreError::Conflict { constraint, message } => {
            assert_eq!(constraint, "users_group_name_fkey");
            assert_eq!(message, "permission group `basic` has 1 users");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let clear = UserPatch {
        group: Some(None),
        ..Default::default()
    };
    s.update_user("alice", clear, &Audit::system()).await.unwrap();
    s.delete_group("basic", &Audit::by("root")).await.unwrap();
    assert!(matches!(
        s.get_group("basic").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A group created with features is defined by them; one created without is not, until its
/// features are set or it is defined once (`define_group`, which a second time changes
/// nothing).
async fn definitions(cx: Ctx) {
    let s = &*cx.store;
    let root = Audit::by("root");
    let listed = |gs: Vec<PermissionGroup>| gs.into_iter().map(|g| g.name).collect::<Vec<_>>();
    let full = s
        .create_group(group("full", &["view_orders"], false), &root)
        .await
        .unwrap();
    assert!(full.defined);
    let bare = s.create_group(group("bare", &[], false), &root).await.unwrap();
    assert!(!bare.defined);
    let later = s.create_group(group("later", &[], false), &root).await.unwrap();
    assert!(!later.defined);
    assert_eq!(listed(s.undefined_groups().await.unwrap()), ["bare", "later"]);

    let before = s.version().await.unwrap();
    let features = vec!["view_orders".to_owned(), "view_files".to_owned()];
    assert!(s.define_group("bare", features.clone(), &root).await.unwrap());
    let bare = s.get_group("bare").await.unwrap();
    assert!(bare.defined);
    assert_eq!(bare.features, features);
    assert!(s.version().await.unwrap() > before, "a definition is a change");
    let version = s.version().await.unwrap();
    assert!(!s.define_group("bare", Vec::new(), &root).await.unwrap());
    assert!(!s.define_group("ghost", Vec::new(), &root).await.unwrap());
    assert_eq!(
        s.get_group("bare").await.unwrap().features,
        features,
        "defined once"
    );
    assert_eq!(
        s.version().await.unwrap(),
        version,
        "nothing written the second time"
    );

    // A description alone leaves a group undefined; its features, even none, define it.
    let patch = |description: Option<&str>, features: Option<Vec<String>>| GroupPatch {
        description: description.map(str::to_owned),
        features,
    };
    let g = s
        .update_group("later", patch(Some("Later"), None), &root)
        .await
        .unwrap();
    assert!(!g.defined);
    let g = s
        .update_group("later", patch(None, Some(Vec::new())), &root)
        .await
        .unwrap();
    assert!(g.defined);
    assert!(s.get_group("later").await.unwrap().defined);
    assert!(s.undefined_groups().await.unwrap().is_empty());
}
