//! The SQLite backend, the embedded default: one database file in WAL mode with an explicit
//! `synchronous` setting, foreign keys on, and its own migrations (`migrations/sqlite`).
//! [`SqliteDialect`] is the [`Dialect`] the generic store runs on: the two pools, SQLite's
//! constraint messages mapped to PostgreSQL's names, and the few statements whose text differs.
//!
//! All writes go through a pool of exactly one connection, and the first statement of every
//! write transaction bumps the change version, which takes SQLite's write lock before anything
//! is read: read-check-write sequences (the user limit, single-use invitations) cannot interleave,
//! and writers never meet `SQLITE_BUSY` among themselves. Reads use a separate pool and, thanks to
//! WAL, never wait for writers. The file must be a real file (not `:memory:`), since the two
//! pools open it separately.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::clock::Clock;
use crate::dialect::{Affected, Dialect, SqlStore};
use crate::error::{Result, StoreError};
use crate::limits::StoreLimits;
use crate::store::Backend;

/// Reader connections by default.
pub const DEFAULT_READERS: u32 = 4;
/// How long a connection waits for a lock held by another process.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite's `synchronous` setting (explicit: WAL's safe and fast choice is `Normal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Commits survive a crash of the process; a power loss may lose the last ones, never the file.
    #[default]
    Normal,
    /// Every commit is synced to disk: durable through power loss, slower.
    Full,
}

/// How to open a SQLite store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// The `synchronous` setting.
    pub synchronous: Synchronous,
    /// Reader connections.
    pub readers: u32,
    /// Lock wait for other processes.
    pub busy_timeout: Duration,
}

impl SqliteOptions {
    /// The defaults for a file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::default(),
            readers: DEFAULT_READERS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// The user store on a SQLite file.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// SQLite as the store's [`Dialect`]: a pool of exactly one writer connection and a pool of
/// readers on the same file.
#[derive(Debug, Clone)]
pub struct SqliteDialect {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqlStore<SqliteDialect> {
    /// Opens (creating if needed) the database file (does not migrate).
    pub async fn open(options: SqliteOptions, clock: Arc<dyn Clock>, limits: StoreLimits) -> Result<Self> {
        let path = options.path.to_string_lossy().into_owned();
        if path.is_empty() || path.contains(":memory:") || path.contains("mode=memory") {
            return Err(StoreError::invalid(
                "the SQLite store needs a database file, not an in-memory database",
            ));
        }
        create_private(&options.path)?;
        let connect = SqliteConnectOptions::new()
            .filename(&options.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone())
            .await
            .map_err(db_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        Ok(SqlStore::with(SqliteDialect { writer, reader }, clock, limits))
    }

    /// Closes both pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.db.writer.close().await;
        self.db.reader.close().await;
    }
}

impl Dialect for SqliteDialect {
    type DB = Sqlite;

    const BACKEND: Backend = Backend::Sqlite;

    const RAISE_HORIZON: &'static str = "UPDATE store_version SET pruned_through = MAX(pruned_through, \
         COALESCE((SELECT MAX(version) FROM changes WHERE version <= store_version.version - $1 AND at < $2), 0)) \
         WHERE id = 1";

    /// No row lock: the single writer connection already serialises every write.
    const LOCK_COMPANY_LIMIT: &'static str = "SELECT user_limit FROM companies WHERE id = $1";

    const QUERY_AUDIT: &'static str =
        "SELECT id, at, actor, company_id, action, target, outcome, details, version \
         FROM audit_log \
         WHERE ($1 IS NULL OR actor = $1 OR target = $2) \
           AND ($3 IS NULL OR company_id = $3) \
           AND ($4 IS NULL OR action = $4) \
           AND ($5 IS NULL OR at >= $5) \
           AND ($6 IS NULL OR at < $6) \
           AND ($7 IS NULL OR id < $7) \
           AND ($9 IS NULL OR json_extract(details, '$.customer') = $9) \
         ORDER BY id DESC LIMIT $8";

    /// No row lock: the single writer connection already serialises sign-in writes.
    const LOCK_ATTEMPTS: &'static str =
        "SELECT failed_logins, locked_until FROM sign_in_attempts WHERE subject = $1";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn db_err(err: sqlx::Error) -> StoreError {
        db_err(err)
    }

    async fn commit_write(tx: Transaction<'static, Sqlite>, _version: i64) -> Result<()> {
        tx.commit().await.map_err(db_err)
    }
}

impl Affected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

/// Maps an error, naming the constraint from SQLite's message the way PostgreSQL names it.
fn db_err(err: sqlx::Error) -> StoreError {
    let constraint = err.as_database_error().and_then(|d| constraint_name(d.message()));
    StoreError::from_db(err, constraint)
}

/// `UNIQUE constraint failed: users.login` → `users_login_key`; `CHECK constraint failed: x` → `x`.
fn constraint_name(message: &str) -> Option<String> {
    if let Some(name) = message.strip_prefix("CHECK constraint failed: ") {
        return Some(name.trim().to_owned());
    }
    let cols = message.strip_prefix("UNIQUE constraint failed: ")?;
    let name = match cols.trim() {
        "companies.id" => "companies_pkey".to_owned(),
        "users.id" => "users_pkey".to_owned(),
        "permission_groups.name" => "permission_groups_pkey".to_owned(),
        "permission_groups.is_default" => "permission_groups_one_default".to_owned(),
        other => {
            let mut parts = other.split(", ");
            let first = parts.next()?;
            let (table, col) = first.split_once('.')?;
            let mut name = format!("{table}_{col}");
            for p in parts {
                name.push('_');
                name.push_str(p.split_once('.').map_or(p, |(_, c)| c));
            }
            name.push_str("_key");
            name
        }
    };
    Some(name)
}

/// Creates a new database file readable by its owner only (it holds password hashes and
/// sealed secrets); SQLite gives its `-wal` and `-shm` files the same mode. An existing file
/// keeps its mode.
fn create_private(path: &std::path::Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!(
            "cannot create the database file `{}`: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::constraint_name;

    #[cfg(unix)]
    #[test]
    fn new_database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        super::create_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // An existing file is left as it is.
        super::create_private(&path).unwrap();
    }

    #[test]
    fn sqlite_messages_map_to_postgres_names() {
        let n = |m: &str| constraint_name(m);
        assert_eq!(
            n("UNIQUE constraint failed: users.login").as_deref(),
            Some("users_login_key")
        );
        assert_eq!(
            n("UNIQUE constraint failed: companies.id").as_deref(),
            Some("companies_pkey")
        );
        assert_eq!(
            n("UNIQUE constraint failed: a.b, a.c").as_deref(),
            Some("a_b_c_key")
        );
        assert_eq!(
            n("CHECK constraint failed: companies_user_limit_check").as_deref(),
            Some("companies_user_limit_check")
        );
        assert_eq!(n("FOREIGN KEY constraint failed"), None);
    }
}

/// What [`backup`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    /// Companies in the copy.
    pub companies: i64,
    /// Users in the copy.
    pub users: i64,
    /// Visitor grants in the copy.
    pub grants: i64,
    /// Audit trail entries in the copy.
    pub audit: i64,
    /// Sign-in sessions, password-reset links, e-mail change links and passkey ceremonies in
    /// progress left out of the copy.
    pub left_out: i64,
}

/// Copies the SQLite store at `from` to the new file `to`, consistent and online: `VACUUM INTO`
/// reads one snapshot of the database while servers go on reading and writing it (WAL), and
/// writes a compact copy. `to` must not exist; it is created readable by its owner only (it
/// holds password hashes). Sign-in sessions, password-reset links, e-mail change links and
/// passkey ceremonies in progress are left out of the copy: a restored store signs no one in,
/// resets no password, changes no address and finishes no ceremony with an old link or token.
/// Registered passkeys stay, like passwords. TOTP secrets stay sealed in the copy; the sealing
/// key (`<database>.key`) is never part of it.
pub async fn backup(from: &std::path::Path, to: &std::path::Path) -> Result<BackupSummary> {
    use sqlx::ConnectOptions;
    if !from.is_file() {
        return Err(StoreError::invalid(format!(
            "`{}` is not a SQLite store file",
            from.display()
        )));
    }
    if to.exists() {
        return Err(StoreError::invalid(format!(
            "`{}` exists already; a backup never overwrites a file",
            to.display()
        )));
    }
    create_private(to)?;
    let copy = async {
        let mut source = SqliteConnectOptions::new()
            .filename(from)
            .busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .connect()
            .await
            .map_err(db_err)?;
        sqlx::query("VACUUM INTO ?1")
            .bind(to.to_string_lossy().into_owned())
            .execute(&mut source)
            .await
            .map_err(db_err)?;
        drop(source);
        let mut copy = SqliteConnectOptions::new()
            .filename(to)
            .journal_mode(SqliteJournalMode::Delete)
            .connect()
            .await
            .map_err(db_err)?;
        let mut left_out = 0;
        for table in [
            "sessions",
            "password_resets",
            "email_changes",
            "passkey_ceremonies",
        ] {
            let done = sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut copy)
                .await
                .map_err(db_err)?;
            left_out += i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
        }
        let summary = BackupSummary {
            companies: count_rows(&mut copy, "companies").await?,
            users: count_rows(&mut copy, "users").await?,
            grants: count_rows(&mut copy, "visitor_grants").await?,
            audit: count_rows(&mut copy, "audit_log").await?,
            left_out,
        };
        Ok(summary)
    };
    let result: Result<BackupSummary> = copy.await;
    if result.is_err() {
        // A failed backup leaves no half-written file behind.
        let _ = std::fs::remove_file(to);
    }
    result
}

async fn count_rows(c: &mut SqliteConnection, table: &str) -> Result<i64> {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(c)
        .await
        .map_err(db_err)
}
