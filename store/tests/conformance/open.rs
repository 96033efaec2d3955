//! `open(url)`: the URL picks the backend.

use std::sync::Arc;

use portcullis_store::*;

#[tokio::test]
async fn the_url_picks_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let store = open(&url, Arc::new(SystemClock), StoreLimits::default())
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.version().await.unwrap(), 0);

    let err = open("sqlite::memory:", Arc::new(SystemClock), StoreLimits::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the SQLite store needs a database file, not an in-memory database"
    );
}
