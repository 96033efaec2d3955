//! Fresh stores for each test body: a SQLite file in a temp dir, or a uniquely named PostgreSQL
//! database created for the test and dropped after it (even when the body fails).

use std::future::Future;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_store::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};
use time::OffsetDateTime;

/// What a test body gets.
pub struct Ctx {
    pub store: Arc<dyn UserStore>,
    pub clock: ManualClock,
    /// The PostgreSQL store itself, for `listen` (None on SQLite).
    pub pg: Option<PgStore>,
}

/// 2026-01-01T00:00:00Z, where every manual clock starts.
pub fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

pub async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let options = SqliteOptions::new(dir.path().join("store.db"));
    let store = SqliteStore::open(options, Arc::new(clock.clone()), StoreLimits::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    body(Ctx {
        store: Arc::new(store.clone()),
        clock,
        pg: None,
    })
    .await;
    store.close().await;
}

fn postgres_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Set once a connection failed, so the other tests skip at once.
static UNREACHABLE: AtomicBool = AtomicBool::new(false);

pub async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = postgres_url();
    let admin = if UNREACHABLE.load(Ordering::Relaxed) {
        None
    } else {
        tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url))
            .await
            .ok()
            .and_then(Result::ok)
    };
    let Some(mut admin) = admin else {
        UNREACHABLE.store(true, Ordering::Relaxed);
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let line = format!("SKIPPED: PostgreSQL not reachable at {url} (set PORTCULLIS_TEST_POSTGRES_URL)\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    };
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
    let name = format!(
        "portcullis_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap().database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .unwrap();
    let clock = ManualClock::new(start());
    let store = PgStore::from_pool(pool.clone(), Arc::new(clock.clone()), StoreLimits::default());
    store.migrate().await.unwrap();
    let cx = Ctx {
        store: Arc::new(store.clone()),
        clock,
        pg: Some(store),
    };
    // Run the body as its own task so that a failing assertion still drops the database.
    let outcome = tokio::spawn(body(cx)).await;
    pool.close().await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A company with an optional parent and user limit.
pub async fn company(s: &dyn UserStore, id: &str, parent: Option<&str>, limit: Option<u32>) -> Company {
    let new = NewCompany {
        id: id.to_owned(),
        name: id.to_uppercase(),
        account_type: "customer".to_owned(),
        parent: parent.map(str::to_owned),
        user_limit: limit,
        attrs: Default::default(),
    };
    s.create_company(new, &Audit::system()).await.unwrap()
}

/// A new user of a company with a role.
pub fn new_user(id: &str, company: &str, role: &str) -> NewUser {
    NewUser {
        id: Some(id.to_owned()),
        company: company.to_owned(),
        login: format!("{id}@{company}.example"),
        email: Some(format!("{id}@{company}.example")),
        name: id.to_owned(),
        role: role.to_owned(),
        ..NewUser::default()
    }
}

/// Creates a user.
pub async fn user(s: &dyn UserStore, id: &str, company: &str, role: &str) -> User {
    s.create_user(new_user(id, company, role), &Audit::by("root"))
        .await
        .unwrap()
}

/// The number of audit rows matching a query (up to a page of 500).
pub async fn audit_count(s: &dyn UserStore, q: AuditQuery) -> usize {
    audit_actions(s, q).await.len()
}

/// The actions of the audit rows matching a query, newest first (up to a page of 500).
pub async fn audit_actions(s: &dyn UserStore, q: AuditQuery) -> Vec<String> {
    let q = AuditQuery {
        limit: Some(q.limit.unwrap_or(500)),
        ..q
    };
    let page = s.query_audit(&q).await.unwrap();
    page.items.into_iter().map(|e| e.action).collect()
}
