//! Crash safety: the real `portcullis serve` streams management writes and is killed with
//! SIGKILL at a random moment, then restarted on the same database, many times.
//!
//! After every kill, before the restart, the database itself is read (one snapshot) and held
//! against a model of what the clients saw:
//! - every write acknowledged (201 or 200 received) is there;
//! - the one write in flight per client at the kill is either fully there or fully absent
//!   (a created user with its audit row and change, an edit with its new name and its audit row);
//! - nothing half-written: each user has its `user.create` audit row and a change, each user's
//!   `user.update` audit rows are exactly the edits applied, every change has its audit row,
//!   no change is ahead of the store version;
//! - SQLite: `PRAGMA integrity_check` is `ok` and no foreign key is broken.
//!
//! `PORTCULLIS_CRASH_CYCLES` (default 50) sets the cycles per backend and
//! `PORTCULLIS_CRASH_SEED` replays the kill delays of a run (each run prints its seed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::common::{Fixture, Http, DEADLINE};
use crate::manage::{drop_postgres, fresh_postgres, sqlite_url};
use crate::procs::{bootstrap_owner, env_u64, ms, percentile, Proc, Rng};

/// Concurrent writing clients.
const WRITERS: usize = 3;
/// Kill delays after the server is up, in ms: from before the first write to well into the stream.
const KILL_AFTER_MS: (u64, u64) = (5, 500);

/// One management write of a client.
#[derive(Debug, Clone)]
enum Write {
    /// `POST /v1/users` with this id (name `created`).
    Create(String),
    /// `PATCH /v1/users/{id}` with this name.
    Rename(String, String),
}

/// What one client saw in one cycle.
#[derive(Debug, Default)]
struct Seen {
    acked: Vec<Write>,
    in_flight: Option<Write>,
}

/// A user as the clients know it.
#[derive(Debug)]
struct Expect {
    name: String,
    renames: i64,
}

impl Expect {
    /// A user as `Write::Create` makes it.
    fn created() -> Self {
        Self {
            name: "created".to_owned(),
            renames: 0,
        }
    }

    /// After a `Write::Rename`.
    fn rename(&mut self, name: String) {
        self.name = name;
        self.renames += 1;
    }
}

/// What one snapshot of the database holds.
#[derive(Debug)]
struct Facts {
    users: BTreeMap<String, String>,
    created: BTreeSet<String>,
    renames: HashMap<String, i64>,
    changed_users: BTreeSet<String>,
    unaudited_changes: i64,
    unchanged_writes: i64,
    changes_ahead: i64,
}

/// Reads [`Facts`] on any sqlx connection (the SQL is the same on both backends).
macro_rules! facts {
    ($conn:expr) => {{
        let users: Vec<(String, String)> = sqlx::query_as("SELECT id, name FROM users")
            .fetch_all(&mut *$conn)
            .await
            .unwrap();
        let created: Vec<(Option<String>,)> = sqlx::query_as(
            "SELECT target FROM audit_log WHERE action = 'user.create' AND outcome = 'success'",
        )
        .fetch_all(&mut *$conn)
        .await
        .unwrap();
        let renames: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT target, COUNT(*) FROM audit_log \
             WHERE action = 'user.update' AND outcome = 'success' GROUP BY target",
        )
        .fetch_all(&mut *$conn)
        .await
        .unwrap();
        let changed: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT entity_id FROM changes WHERE kind = 'user'")
                .fetch_all(&mut *$conn)
                .await
                .unwrap();
        let unaudited_changes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM changes c \
             WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.version = c.version)",
        )
        .fetch_one(&mut *$conn)
        .await
        .unwrap();
        let unchanged_writes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log a \
             WHERE a.action IN ('user.create', 'user.update') AND a.outcome = 'success' \
             AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.version = a.version \
                             AND c.kind = 'user' AND 'user:' || c.entity_id = a.target)",
        )
        .fetch_one(&mut *$conn)
        .await
        .unwrap();
        let changes_ahead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM changes WHERE version > (SELECT version FROM store_version)",
        )
        .fetch_one(&mut *$conn)
        .await
        .unwrap();
        Facts {
            users: users.into_iter().collect(),
            created: created.into_iter().filter_map(|(t,)| t).collect(),
            renames: renames
                .into_iter()
                .filter_map(|(t, n)| t.map(|t| (t, n)))
                .collect(),
            changed_users: changed.into_iter().map(|(id,)| id).collect(),
            unaudited_changes,
            unchanged_writes,
            changes_ahead,
        }
    }};
}

/// The database behind the server under test.
enum Db {
    Sqlite(String),
    Postgres(String),
}

impl Db {
    fn url(&self) -> &str {
        match self {
            Db::Sqlite(u) | Db::Postgres(u) => u,
        }
    }

    /// One consistent snapshot of the database, once no connection of the killed server is
    /// left; SQLite also checks its file.
    async fn facts(&self) -> Facts {
        match self {
            Db::Sqlite(path) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut c = SqliteConnection::connect_with(&opts).await.unwrap();
                let integrity: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                assert_eq!(integrity, vec![("ok".to_owned(),)], "integrity_check");
                let broken = sqlx::query("PRAGMA foreign_key_check")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                assert!(broken.is_empty(), "{} broken foreign keys", broken.len());
                let mut tx = c.begin().await.unwrap();
                let f = facts!(tx);
                tx.commit().await.unwrap();
                c.close().await.unwrap();
                f
            }
            Db::Postgres(url) => {
                let mut c = PgConnection::connect(url).await.unwrap();
                // A commit the dead server had sent may still be applied by its backend:
                // wait until every other session on this database has gone.
                let deadline = Instant::now() + DEADLINE;
                loop {
                    let others: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                    if others == 0 {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the killed server's sessions never ended"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let mut tx = c.begin().await.unwrap();
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let f = facts!(tx);
                tx.commit().await.unwrap();
                c.close().await.unwrap();
                f
            }
        }
    }
}

/// Streams writes until the server stops answering; every answer must be a success.
async fn writer(http: Http, tag: String) -> Seen {
    let mut seen = Seen::default();
    let mut mine: Vec<String> = Vec::new();
    for seq in 0u64.. {
        let w = if seq % 2 == 1 && !mine.is_empty() {
            let id = mine[(seq / 2) as usize % mine.len()].clone();
            Write::Rename(id, format!("n-{tag}-{seq}"))
        } else {
            Write::Create(format!("u-{tag}-{seq}"))
        };
        let r = match &w {
            Write::Create(id) => {
                let body = json!({ "id": id, "login": id, "name": "created", "role": "regular",
                                   "attrs": { "scope_all": true } });
                http.try_send("POST", "/v1/users", serde_json::to_vec(&body).unwrap())
                    .await
            }
            Write::Rename(id, name) => {
                let body = json!({ "name": name });
                http.try_send(
                    "PATCH",
                    &format!("/v1/users/{id}"),
                    serde_json::to_vec(&body).unwrap(),
                )
                .await
            }
        };
        match r {
            Ok((status, body)) => {
                assert!(status == 200 || status == 201, "{w:?} answered {status}: {body}");
                if let Write::Create(id) = &w {
                    mine.push(id.clone());
                }
                seen.acked.push(w);
            }
            Err(_) => {
                seen.in_flight = Some(w);
                break;
            }
        }
    }
    seen
}

/// Applies what the clients saw to the model, settles the in-flight writes from the facts,
/// then holds the facts against the model. Returns the acknowledged writes checked.
fn check(model: &mut BTreeMap<String, Expect>, acked: &mut u64, seen: Vec<Seen>, f: &Facts, owner: &str) {
    let mut in_flight = Vec::new();
    for s in seen {
        for w in s.acked {
            *acked += 1;
            match w {
                Write::Create(id) => {
                    model.insert(id, Expect::created());
                }
                Write::Rename(id, name) => model.get_mut(&id).unwrap().rename(name),
            }
        }
        in_flight.extend(s.in_flight);
    }
    // An in-flight write is settled by what the database holds: all of it or none of it.
    for w in in_flight {
        match w {
            Write::Create(id) => {
                if f.users.contains_key(&id) {
                    model.insert(id, Expect::created());
                }
            }
            Write::Rename(id, name) => {
                if f.users.get(&id) == Some(&name) {
                    model.get_mut(&id).unwrap().rename(name);
                }
            }
        }
    }
    for (id, e) in model.iter() {
        assert_eq!(
            f.users.get(id),
            Some(&e.name),
            "user `{id}`: an acknowledged write is missing"
        );
        assert_eq!(
            f.renames.get(&format!("user:{id}")).copied().unwrap_or(0),
            e.renames,
            "user `{id}`: its edits and their audit rows disagree"
        );
    }
    let known: BTreeSet<String> = model
        .keys()
        .cloned()
        .chain(std::iter::once(owner.to_owned()))
        .collect();
    let stored: BTreeSet<String> = f.users.keys().cloned().collect();
    assert_eq!(stored, known, "users no client wrote");
    let audited: BTreeSet<String> = stored.iter().map(|id| format!("user:{id}")).collect();
    assert_eq!(f.created, audited, "users and their user.create audit rows");
    assert!(
        stored.is_subset(&f.changed_users),
        "users missing from the change feed: {:?}",
        stored.difference(&f.changed_users).collect::<Vec<_>>()
    );
    assert_eq!(f.unaudited_changes, 0, "changes without an audit row");
    assert_eq!(f.unchanged_writes, 0, "audited writes without a change");
    assert_eq!(f.changes_ahead, 0, "changes ahead of the store version");
}

async fn crash_cycles(backend: &str, db: Db, fx: &Fixture) {
    let cycles = env_u64("PORTCULLIS_CRASH_CYCLES", 50);
    let mut rng = Rng::from_env("PORTCULLIS_CRASH_SEED");
    let owner = "own1";
    let key = bootstrap_owner(db.url(), "acme", owner);
    let mut model: BTreeMap<String, Expect> = BTreeMap::new();
    let (mut acked, mut checked, mut in_flight_seen) = (0u64, 0u64, 0u64);
    let mut restarts = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let (proc, took) = Proc::serve(&fx.policies(), Some(db.url()), &["--no-watch"]);
        restarts.push(took);
        let http = Http::at(proc.url.clone()).with_key(&key);
        // The restarted server serves what the last cycle left: one earlier user, read back.
        if let Some((id, e)) = model.iter().nth(cycle as usize % model.len().max(1)) {
            let (s, b) = http.get(&format!("/v1/users/{id}")).await;
            assert_eq!((s, b["name"].as_str()), (200, Some(e.name.as_str())), "{b}");
        }
        let clients: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(http.clone(), format!("{cycle}-{w}"))))
            .collect();
        tokio::time::sleep(Duration::from_millis(
            rng.between(KILL_AFTER_MS.0, KILL_AFTER_MS.1),
        ))
        .await;
        proc.kill();
        let mut seen = Vec::new();
        for c in clients {
            let s = tokio::time::timeout(DEADLINE, c).await.unwrap().unwrap();
            in_flight_seen += u64::from(s.in_flight.is_some());
            seen.push(s);
        }
        let f = db.facts().await;
        check(&mut model, &mut acked, seen, &f, owner);
        checked += acked;
    }
    restarts.sort();
    let line = format!(
        "crash[{backend}]: {cycles} SIGKILL cycles in {:.1} s, {acked} acknowledged writes \
         ({} users), {checked} acknowledged-write checks, {in_flight_seen} writes in flight at a kill, \
         restart median {} max {}\n",
        started.elapsed().as_secs_f64(),
        model.len(),
        ms(percentile(&restarts, 50.0)),
        ms(percentile(&restarts, 100.0)),
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert!(acked > 0, "no write was ever acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_acknowledged_sqlite() {
    let fx = Fixture::new();
    let db = Db::Sqlite(sqlite_url(&fx));
    crash_cycles("sqlite", db, &fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_acknowledged_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let fx = Fixture::new();
    crash_cycles("postgres", Db::Postgres(url.clone()), &fx).await;
    drop_postgres(&url).await;
}
