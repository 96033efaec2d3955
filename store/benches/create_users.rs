//! User-creation throughput on SQLite (issue 4: at least 1,000 creations per second, no password).
//!
//! Each iteration creates one user in its own write transaction (limit check, default group
//! lookup, insert, change row, audit row, commit) on a fresh store in a temp dir, with the
//! default `synchronous = NORMAL`. Run: `cargo bench -p portcullis-store --bench create_users`.

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion, Throughput};
use portcullis_store::*;

fn create_users(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async {
        let options = SqliteOptions::new(dir.path().join("bench.db"));
        let store = SqliteStore::open(options, Arc::new(SystemClock), StoreLimits::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let new = NewCompany {
            id: "acme".into(),
            account_type: "customer".into(),
            ..Default::default()
        };
        store.create_company(new, &Audit::system()).await.unwrap();
        store
    });
    let mut next = 0u64;
    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("create_user", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    next += 1;
                    let new = NewUser {
                        id: Some(format!("u{next}")),
                        company: "acme".into(),
                        login: format!("u{next}@acme.example"),
                        email: Some(format!("u{next}@acme.example")),
                        role: "user".into(),
                        ..Default::default()
                    };
                    store.create_user(new, &Audit::by("admin")).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

mod groups {
    use super::create_users;

    criterion::criterion_group!(benches, create_users);
}

criterion_main!(groups::benches);
