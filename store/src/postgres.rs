//! The PostgreSQL backend: a connection pool on a `postgres://…` URL, its own migrations
//! (`migrations/postgres`), and `NOTIFY` on [`CHANGE_CHANNEL`] inside every write transaction
//! so other server instances invalidate their caches when it commits. [`PgDialect`] is the
//! [`Dialect`] the generic store runs on: the pool, the constraint names PostgreSQL reports,
//! the NOTIFY before a write commits, and the row locks of the statements whose text differs.
//!
//! Writers are ordered by the row lock of the single `store_version` row, taken by the first
//! statement of every write: versions commit in order, so a listener that reads
//! `changes_since(last_seen)` after a notification never misses a change, and the user-limit
//! check (which also locks the company row `FOR UPDATE`) cannot be raced.

use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Postgres, Transaction};

use crate::clock::Clock;
use crate::dialect::{Affected, Dialect, SqlStore};
use crate::error::{Result, StoreError};
use crate::limits::StoreLimits;
use crate::store::Backend;

/// The channel every committed write notifies, with the new change version as payload.
pub const CHANGE_CHANNEL: &str = "portcullis_changes";

/// Connections in the pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The user store on PostgreSQL.
pub type PgStore = SqlStore<PgDialect>;

/// PostgreSQL as the store's [`Dialect`]: one pool for reads and writes.
#[derive(Debug, Clone)]
pub struct PgDialect {
    pool: PgPool,
}

impl SqlStore<PgDialect> {
    /// Connects to a `postgres://…` URL (does not migrate).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, limits: StoreLimits) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(db_err)?;
        Ok(PgStore::from_pool(pool, clock, limits))
    }

    /// A store on an existing pool.
    pub fn from_pool(pool: PgPool, clock: Arc<dyn Clock>, limits: StoreLimits) -> Self {
        SqlStore::with(PgDialect { pool }, clock, limits)
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// A listener already subscribed to [`CHANGE_CHANNEL`]: each notification's payload is the
    /// change version just committed; follow it with [`crate::UserStore::changes_since`].
    pub async fn listen(&self) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.db.pool).await.map_err(db_err)?;
        listener.listen(CHANGE_CHANNEL).await.map_err(db_err)?;
        Ok(listener)
    }
}

impl Dialect for PgDialect {
    type DB = Postgres;

    const BACKEND: Backend = Backend::Postgres;

    const RAISE_HORIZON: &'static str = "UPDATE store_version SET pruned_through = GREATEST(pruned_through, \
         COALESCE((SELECT MAX(version) FROM changes WHERE version <= store_version.version - $1 AND at < $2), 0)) \
         WHERE id = 1";

    /// The company row stays locked until the write commits: two writers cannot both count
    /// the same last free place.
    const LOCK_COMPANY_LIMIT: &'static str = "SELECT user_limit FROM companies WHERE id = $1 FOR UPDATE";

    const QUERY_AUDIT: &'static str =
        "SELECT id, at, actor, company_id, action, target, outcome, details, version \
         FROM audit_log \
         WHERE ($1::text IS NULL OR actor = $1 OR target = $2::text) \
           AND ($3::text IS NULL OR company_id = $3) \
           AND ($4::text IS NULL OR action = $4) \
           AND ($5::bigint IS NULL OR at >= $5) \
           AND ($6::bigint IS NULL OR at < $6) \
           AND ($7::bigint IS NULL OR id < $7) \
           AND ($9::text IS NULL OR details->>'customer' = $9) \
         ORDER BY id DESC LIMIT $8";

    /// The row stays locked until the attempt commits: concurrent guesses are counted one
    /// after the other.
    const LOCK_ATTEMPTS: &'static str =
        "SELECT failed_logins, locked_until FROM sign_in_attempts WHERE subject = $1 FOR UPDATE";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn db_err(err: sqlx::Error) -> StoreError {
        db_err(err)
    }

    /// Notifies listeners (delivered only if the transaction commits) and commits.
    async fn commit_write(mut tx: Transaction<'static, Postgres>, version: i64) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(version.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}

impl Affected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}

/// Maps an error, with the constraint name PostgreSQL reports.
fn db_err(err: sqlx::Error) -> StoreError {
    let constraint = err
        .as_database_error()
        .and_then(|d| d.constraint())
        .map(str::to_owned);
    StoreError::from_db(err, constraint)
}
