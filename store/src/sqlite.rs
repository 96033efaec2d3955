//! The SQLite backend, the embedded default: one database file in WAL mode with an explicit
//! `synchronous` setting, foreign keys on, its own migrations (`migrations/sqlite`) and SQL.
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

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::clock::Clock;
use crate::limits::StoreLimits;

/// Reader connections by default.
pub const DEFAULT_READERS: u32 = 4;
/// How long a connection waits for a lock held by another process.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Conn = SqliteConnection;
type Store = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

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
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    clock: Arc<dyn Clock>,
    limits: StoreLimits,
}

impl SqliteStore {
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
        Ok(SqliteStore {
            writer,
            reader,
            clock,
            limits,
        })
    }

    /// Closes both pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Starts a write: bumping the change version first takes the write lock.
    async fn begin_write(&self) -> Result<(Transaction<'static, Sqlite>, i64)> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let version: i64 = sqlx::query_scalar(sql::BUMP_VERSION)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok((tx, version))
    }

    async fn commit_write(&self, tx: Transaction<'static, Sqlite>, _version: i64) -> Result<()> {
        tx.commit().await.map_err(db_err)
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

crate::backend::impl_user_store!();
crate::signin::impl_sign_in!(crate::signin::sql::GET_ATTEMPTS);

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

/// The SQLite statements.
mod sql {
    pub const BUMP_VERSION: &str =
        "UPDATE store_version SET version = version + 1 WHERE id = 1 RETURNING version";
    // Change-feed pruning (migration 0003_change_horizon): the horizon is the highest version
    // both `keep_versions` behind the current one and older than the cutoff; rows at or
    // below it go.
    pub const RAISE_HORIZON: &str = "UPDATE store_version SET pruned_through = MAX(pruned_through, \
         COALESCE((SELECT MAX(version) FROM changes WHERE version <= store_version.version - ?1 AND at < ?2), 0)) \
         WHERE id = 1";
    pub const PRUNE_CHANGES: &str =
        "DELETE FROM changes WHERE version <= (SELECT pruned_through FROM store_version WHERE id = 1)";
    pub const GET_HORIZON: &str = "SELECT pruned_through FROM store_version WHERE id = 1";
    pub const GET_VERSION: &str = "SELECT version FROM store_version WHERE id = 1";
    pub const INSERT_CHANGE: &str =
        "INSERT INTO changes (version, kind, entity_id, at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT DO NOTHING";
    pub const CHANGES_SINCE: &str = "SELECT version, kind, entity_id FROM changes WHERE version > ?1 \
         ORDER BY version, kind, entity_id LIMIT ?2";

    pub const INSERT_AUDIT: &str =
        "INSERT INTO audit_log (at, actor, company_id, action, target, outcome, details, version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         RETURNING id, at, actor, company_id, action, target, outcome, details, version";
    pub const QUERY_AUDIT: &str =
        "SELECT id, at, actor, company_id, action, target, outcome, details, version \
         FROM audit_log \
         WHERE (?1 IS NULL OR actor = ?1 OR target = ?2) \
           AND (?3 IS NULL OR company_id = ?3) \
           AND (?4 IS NULL OR action = ?4) \
           AND (?5 IS NULL OR at >= ?5) \
           AND (?6 IS NULL OR at < ?6) \
           AND (?7 IS NULL OR id < ?7) \
           AND (?9 IS NULL OR json_extract(details, '$.customer') = ?9) \
         ORDER BY id DESC LIMIT ?8";

    pub const GET_COMPANY: &str = "SELECT id, name, account_type, parent_id, user_limit, attrs, created_at \
         FROM companies WHERE id = ?1";
    pub const LOCK_COMPANY_LIMIT: &str = "SELECT user_limit FROM companies WHERE id = ?1";
    pub const INSERT_COMPANY: &str =
        "INSERT INTO companies (id, name, account_type, parent_id, user_limit, attrs, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    pub const LIST_COMPANIES: &str =
        "SELECT id, name, account_type, parent_id, user_limit, attrs, created_at \
         FROM companies \
         WHERE (?1 IS NULL OR parent_id = ?1) AND (?2 IS NULL OR id > ?2) \
         ORDER BY id LIMIT ?3";
    pub const UPDATE_COMPANY: &str =
        "UPDATE companies SET name = ?2, account_type = ?3, user_limit = ?4, attrs = ?5 \
         WHERE id = ?1";

    /// Active users of a company and every company below it, but one (`?2`, '' for none).
    pub const COUNT_ACTIVE_USERS: &str = "WITH RECURSIVE tree(id) AS (SELECT CAST(?1 AS TEXT) UNION \
         SELECT c.id FROM companies c JOIN tree t ON c.parent_id = t.id) \
         SELECT COUNT(*) FROM users WHERE active AND id <> ?2 AND company_id IN (SELECT id FROM tree)";
    pub const ACTIVE_ROLES: &str =
        "SELECT DISTINCT role FROM users WHERE company_id = ?1 AND active ORDER BY role";
    pub const GET_USER: &str =
        "SELECT id, company_id, login, email, name, role, active, flags, addons, group_name, \
         attrs, password_hash IS NOT NULL AS has_password, created_at, updated_at FROM users WHERE id = ?1";
    pub const GET_USER_BY_LOGIN: &str =
        "SELECT id, company_id, login, email, name, role, active, flags, addons, \
         group_name, attrs, password_hash IS NOT NULL AS has_password, created_at, updated_at \
         FROM users WHERE login = ?1";
    pub const LIST_USERS: &str =
        "SELECT id, company_id, login, email, name, role, active, flags, addons, group_name, \
         attrs, password_hash IS NOT NULL AS has_password, created_at, updated_at FROM users \
         WHERE (?1 IS NULL OR company_id = ?1) AND (?2 OR active) AND (?3 IS NULL OR id > ?3) \
         ORDER BY id LIMIT ?4";
    pub const INSERT_USER: &str = "INSERT INTO users (id, company_id, login, email, name, role, flags, \
         addons, group_name, attrs, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)";
    pub const UPDATE_USER: &str =
        "UPDATE users SET login = ?2, email = ?3, name = ?4, role = ?5, flags = ?6, \
         addons = ?7, group_name = ?8, attrs = ?9, updated_at = ?10 WHERE id = ?1";
    pub const SET_ACTIVE: &str = "UPDATE users SET active = ?2, updated_at = ?3 WHERE id = ?1";
    pub const MOVE_USER: &str = "UPDATE users SET company_id = ?2, updated_at = ?3 WHERE id = ?1";
    pub const TOUCH_USER: &str = "UPDATE users SET updated_at = ?2 WHERE id = ?1";
    pub const DELETE_USER: &str = "DELETE FROM users WHERE id = ?1";
    pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1";
    pub const GET_PASSWORD: &str = "SELECT password_hash FROM users WHERE id = ?1";
    pub const USER_COMPANY: &str = "SELECT company_id FROM users WHERE id = ?1";

    pub const LIST_ACCESS: &str = "SELECT user_id, company_id, role FROM user_companies WHERE user_id = ?1 \
         ORDER BY company_id";
    pub const LIST_ACCESS_RANGE: &str = "SELECT user_id, company_id, role FROM user_companies \
         WHERE user_id >= ?1 AND user_id <= ?2 ORDER BY user_id, company_id";
    pub const INSERT_ACCESS: &str =
        "INSERT INTO user_companies (user_id, company_id, role) VALUES (?1, ?2, ?3)";
    pub const DELETE_ACCESS_ALL: &str = "DELETE FROM user_companies WHERE user_id = ?1";
    pub const DELETE_ACCESS_ONE: &str = "DELETE FROM user_companies WHERE user_id = ?1 AND company_id = ?2";

    pub const GET_GROUP: &str = "SELECT name, description, features, is_default, created_at, defined \
         FROM permission_groups WHERE name = ?1";
    pub const LIST_GROUPS: &str = "SELECT name, description, features, is_default, created_at, defined \
         FROM permission_groups ORDER BY name";
    pub const DEFAULT_GROUP: &str = "SELECT name FROM permission_groups WHERE is_default";
    pub const INSERT_GROUP: &str =
        "INSERT INTO permission_groups (name, description, features, is_default, created_at, defined) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    pub const UPDATE_GROUP: &str =
        "UPDATE permission_groups SET description = ?2, features = ?3, defined = (defined OR ?4) \
         WHERE name = ?1";
    pub const CLEAR_DEFAULT_GROUP: &str = "UPDATE permission_groups SET is_default = FALSE WHERE is_default";
    pub const SET_DEFAULT_GROUP: &str = "UPDATE permission_groups SET is_default = TRUE WHERE name = ?1";
    pub const COUNT_GROUP_USERS: &str = "SELECT COUNT(*) FROM users WHERE group_name = ?1";
    pub const DELETE_GROUP: &str = "DELETE FROM permission_groups WHERE name = ?1";
    pub const UNDEFINED_GROUPS: &str = "SELECT name, description, features, is_default, created_at, defined \
         FROM permission_groups WHERE NOT defined ORDER BY name";
    pub const DEFINE_GROUP: &str =
        "UPDATE permission_groups SET features = ?2, defined = TRUE WHERE name = ?1 AND NOT defined";

    pub const GET_GRANT: &str = "SELECT id, user_id, from_company, company_id, locations, actors, status, \
         requested_at, decided_by, decided_at, revoked_by, revoked_at, expires_at \
         FROM visitor_grants WHERE id = ?1";
    pub const INSERT_GRANT: &str =
        "INSERT INTO visitor_grants (id, user_id, from_company, company_id, locations, \
         actors, status, requested_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'requested', ?7, ?8)";
    pub const DECIDE_GRANT: &str = "UPDATE visitor_grants SET status = ?2, decided_by = ?3, decided_at = ?4 \
         WHERE id = ?1";
    pub const REVOKE_GRANT: &str = "UPDATE visitor_grants SET status = ?2, revoked_by = ?3, revoked_at = ?4 \
         WHERE id = ?1";
    pub const LIST_GRANTS: &str = "SELECT id, user_id, from_company, company_id, locations, actors, status, \
         requested_at, decided_by, decided_at, revoked_by, revoked_at, expires_at FROM visitor_grants \
         WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR company_id = ?2) \
           AND (?3 IS NULL OR status = ?3) \
         ORDER BY requested_at DESC, id";
    pub const ACTIVE_GRANTS: &str =
        "SELECT id, user_id, from_company, company_id, locations, actors, status, \
         requested_at, decided_by, decided_at, revoked_by, revoked_at, expires_at FROM visitor_grants \
         WHERE user_id = ?1 AND status = 'approved' AND (expires_at IS NULL OR expires_at > ?2) \
         ORDER BY requested_at DESC, id";

    pub const GET_INVITATION: &str =
        "SELECT id, company_id, email, role, flags, addons, group_name, attrs, status, \
         invited_by, created_at, expires_at, accepted_at, user_id FROM invitations WHERE id = ?1";
    pub const GET_INVITATION_BY_TOKEN: &str =
        "SELECT id, company_id, email, role, flags, addons, group_name, \
         attrs, status, invited_by, created_at, expires_at, accepted_at, user_id \
         FROM invitations WHERE token_hash = ?1";
    pub const INSERT_INVITATION: &str =
        "INSERT INTO invitations (id, company_id, email, role, flags, addons, \
         group_name, attrs, token_hash, status, invited_by, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11, ?12)";
    pub const ACCEPT_INVITATION: &str =
        "UPDATE invitations SET status = 'accepted', accepted_at = ?2, user_id = ?3 \
         WHERE id = ?1 AND status = 'pending'";
    pub const REVOKE_INVITATION: &str =
        "UPDATE invitations SET status = 'revoked' WHERE id = ?1 AND status = 'pending'";
    pub const LIST_INVITATIONS: &str =
        "SELECT id, company_id, email, role, flags, addons, group_name, attrs, status, \
         invited_by, created_at, expires_at, accepted_at, user_id FROM invitations \
         WHERE company_id = ?1 AND (?2 OR status = 'pending') ORDER BY created_at DESC, id";

    pub const INSERT_API_KEY: &str =
        "INSERT INTO api_keys (id, user_id, name, key_hash, created_at, session_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    pub const GET_API_KEY: &str =
        "SELECT id, user_id, name, key_hash, created_at, revoked_at, session_id FROM api_keys WHERE id = ?1";
    pub const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1";
    pub const LIST_API_KEYS: &str =
        "SELECT id, user_id, name, key_hash, created_at, revoked_at, session_id FROM api_keys \
         WHERE user_id = ?1 ORDER BY created_at, id";
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
