//! The PostgreSQL backend: a connection pool on a `postgres://…` URL, its own migrations
//! (`migrations/postgres`) and SQL, and `NOTIFY` on [`CHANGE_CHANNEL`] inside every write
//! transaction so other server instances invalidate their caches when it commits.
//!
//! Writers are ordered by the row lock of the single `store_version` row, taken by the first
//! statement of every write: versions commit in order, so a listener that reads
//! `changes_since(last_seen)` after a notification never misses a change, and the user-limit
//! check (which also locks the company row `FOR UPDATE`) cannot be raced.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::clock::Clock;
use crate::limits::StoreLimits;

/// The channel every committed write notifies, with the new change version as payload.
pub const CHANGE_CHANNEL: &str = "portcullis_changes";

/// Connections in the pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

type Conn = PgConnection;
type Store = PgStore;
const BACKEND: Backend = Backend::Postgres;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The user store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    limits: StoreLimits,
}

impl PgStore {
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
        PgStore { pool, clock, limits }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A listener already subscribed to [`CHANGE_CHANNEL`]: each notification's payload is the
    /// change version just committed; follow it with [`UserStore::changes_since`].
    pub async fn listen(&self) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(db_err)?;
        listener.listen(CHANGE_CHANNEL).await.map_err(db_err)?;
        Ok(listener)
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a write: bumps the change version first, which queues this writer behind any other.
    async fn begin_write(&self) -> Result<(Transaction<'static, Postgres>, i64)> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let version: i64 = sqlx::query_scalar(sql::BUMP_VERSION)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok((tx, version))
    }

    /// Notifies listeners (delivered only if the transaction commits) and commits.
    async fn commit_write(&self, mut tx: Transaction<'static, Postgres>, version: i64) -> Result<()> {
        sqlx::query(sql::NOTIFY)
            .bind(CHANGE_CHANNEL)
            .bind(version.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
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

crate::backend::impl_user_store!();
crate::signin::impl_sign_in!(crate::signin::sql::GET_ATTEMPTS_FOR_UPDATE);

/// The PostgreSQL statements.
mod sql {
    pub const BUMP_VERSION: &str =
        "UPDATE store_version SET version = version + 1 WHERE id = 1 RETURNING version";
    pub const NOTIFY: &str = "SELECT pg_notify($1, $2)";
    // Change-feed pruning (migration 0003_change_horizon): the horizon is the highest version
    // both `keep_versions` behind the current one and older than the cutoff; rows at or
    // below it go.
    pub const RAISE_HORIZON: &str = "UPDATE store_version SET pruned_through = GREATEST(pruned_through, \
         COALESCE((SELECT MAX(version) FROM changes WHERE version <= store_version.version - $1 AND at < $2), 0)) \
         WHERE id = 1";
    pub const PRUNE_CHANGES: &str =
        "DELETE FROM changes WHERE version <= (SELECT pruned_through FROM store_version WHERE id = 1)";
    pub const GET_HORIZON: &str = "SELECT pruned_through FROM store_version WHERE id = 1";
    pub const GET_VERSION: &str = "SELECT version FROM store_version WHERE id = 1";
    pub const INSERT_CHANGE: &str =
        "INSERT INTO changes (version, kind, entity_id, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING";
    pub const CHANGES_SINCE: &str = "SELECT version, kind, entity_id FROM changes WHERE version > $1 \
         ORDER BY version, kind, entity_id LIMIT $2";

    pub const INSERT_AUDIT: &str =
        "INSERT INTO audit_log (at, actor, company_id, action, target, outcome, details, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING id, at, actor, company_id, action, target, outcome, details, version";
    pub const QUERY_AUDIT: &str =
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

    pub const GET_COMPANY: &str = "SELECT id, name, account_type, parent_id, user_limit, attrs, created_at \
         FROM companies WHERE id = $1";
    pub const LOCK_COMPANY_LIMIT: &str = "SELECT user_limit FROM companies WHERE id = $1 FOR UPDATE";
    pub const INSERT_COMPANY: &str =
        "INSERT INTO companies (id, name, account_type, parent_id, user_limit, attrs, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const LIST_COMPANIES: &str =
        "SELECT id, name, account_type, parent_id, user_limit, attrs, created_at \
         FROM companies \
         WHERE ($1::text IS NULL OR parent_id = $1) AND ($2::text IS NULL OR id > $2) \
         ORDER BY id LIMIT $3";
    pub const UPDATE_COMPANY: &str =
        "UPDATE companies SET name = $2, account_type = $3, user_limit = $4, attrs = $5 \
         WHERE id = $1";

    /// Active users of a company and every company below it, but one (`$2`, '' for none).
    pub const COUNT_ACTIVE_USERS: &str = "WITH RECURSIVE tree(id) AS (SELECT CAST($1 AS TEXT) UNION \
         SELECT c.id FROM companies c JOIN tree t ON c.parent_id = t.id) \
         SELECT COUNT(*) FROM users WHERE active AND id <> $2 AND company_id IN (SELECT id FROM tree)";
    pub const ACTIVE_ROLES: &str =
        "SELECT DISTINCT role FROM users WHERE company_id = $1 AND active ORDER BY role";
    pub const GET_USER: &str =
        "SELECT id, company_id, login, email, name, role, active, flags, addons, group_name, \
         attrs, password_hash IS NOT NULL AS has_password, created_at, updated_at FROM users WHERE id = $1";
    pub const GET_USER_BY_LOGIN: &str =
        "SELECT id, company_id, login, email, name, role, active, flags, addons, \
         group_name, attrs, password_hash IS NOT NULL AS has_password, created_at, updated_at \
         FROM users WHERE login = $1";
    pub const LIST_USERS: &str =
        "SELECT id, company_id, login, email, name, role, active, flags, addons, group_name, \
         attrs, password_hash IS NOT NULL AS has_password, created_at, updated_at FROM users \
         WHERE ($1::text IS NULL OR company_id = $1) AND ($2 OR active) AND ($3::text IS NULL OR id > $3) \
         ORDER BY id LIMIT $4";
    pub const INSERT_USER: &str = "INSERT INTO users (id, company_id, login, email, name, role, flags, \
         addons, group_name, attrs, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";
    pub const UPDATE_USER: &str =
        "UPDATE users SET login = $2, email = $3, name = $4, role = $5, flags = $6, \
         addons = $7, group_name = $8, attrs = $9, updated_at = $10 WHERE id = $1";
    pub const SET_ACTIVE: &str = "UPDATE users SET active = $2, updated_at = $3 WHERE id = $1";
    pub const MOVE_USER: &str = "UPDATE users SET company_id = $2, updated_at = $3 WHERE id = $1";
    pub const TOUCH_USER: &str = "UPDATE users SET updated_at = $2 WHERE id = $1";
    pub const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
    pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
    pub const GET_PASSWORD: &str = "SELECT password_hash FROM users WHERE id = $1";
    pub const USER_COMPANY: &str = "SELECT company_id FROM users WHERE id = $1";

    pub const LIST_ACCESS: &str = "SELECT user_id, company_id, role FROM user_companies WHERE user_id = $1 \
         ORDER BY company_id";
    pub const LIST_ACCESS_RANGE: &str = "SELECT user_id, company_id, role FROM user_companies \
         WHERE user_id >= $1 AND user_id <= $2 ORDER BY user_id, company_id";
    pub const INSERT_ACCESS: &str =
        "INSERT INTO user_companies (user_id, company_id, role) VALUES ($1, $2, $3)";
    pub const DELETE_ACCESS_ALL: &str = "DELETE FROM user_companies WHERE user_id = $1";
    pub const DELETE_ACCESS_ONE: &str = "DELETE FROM user_companies WHERE user_id = $1 AND company_id = $2";

    pub const GET_GROUP: &str = "SELECT name, description, features, is_default, created_at, defined \
         FROM permission_groups WHERE name = $1";
    pub const LIST_GROUPS: &str = "SELECT name, description, features, is_default, created_at, defined \
         FROM permission_groups ORDER BY name";
    pub const DEFAULT_GROUP: &str = "SELECT name FROM permission_groups WHERE is_default";
    pub const INSERT_GROUP: &str =
        "INSERT INTO permission_groups (name, description, features, is_default, created_at, defined) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    pub const UPDATE_GROUP: &str =
        "UPDATE permission_groups SET description = $2, features = $3, defined = (defined OR $4) \
         WHERE name = $1";
    pub const CLEAR_DEFAULT_GROUP: &str = "UPDATE permission_groups SET is_default = FALSE WHERE is_default";
    pub const SET_DEFAULT_GROUP: &str = "UPDATE permission_groups SET is_default = TRUE WHERE name = $1";
    pub const COUNT_GROUP_USERS: &str = "SELECT COUNT(*) FROM users WHERE group_name = $1";
    pub const DELETE_GROUP: &str = "DELETE FROM permission_groups WHERE name = $1";
    pub const UNDEFINED_GROUPS: &str = "SELECT name, description, features, is_default, created_at, defined \
         FROM permission_groups WHERE NOT defined ORDER BY name";
    pub const DEFINE_GROUP: &str =
        "UPDATE permission_groups SET features = $2, defined = TRUE WHERE name = $1 AND NOT defined";

    pub const GET_GRANT: &str = "SELECT id, user_id, from_company, company_id, locations, actors, status, \
         requested_at, decided_by, decided_at, revoked_by, revoked_at, expires_at \
         FROM visitor_grants WHERE id = $1";
    pub const INSERT_GRANT: &str =
        "INSERT INTO visitor_grants (id, user_id, from_company, company_id, locations, \
         actors, status, requested_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8)";
    pub const DECIDE_GRANT: &str = "UPDATE visitor_grants SET status = $2, decided_by = $3, decided_at = $4 \
         WHERE id = $1";
    pub const REVOKE_GRANT: &str = "UPDATE visitor_grants SET status = $2, revoked_by = $3, revoked_at = $4 \
         WHERE id = $1";
    pub const LIST_GRANTS: &str = "SELECT id, user_id, from_company, company_id, locations, actors, status, \
         requested_at, decided_by, decided_at, revoked_by, revoked_at, expires_at FROM visitor_grants \
         WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR company_id = $2) \
           AND ($3::text IS NULL OR status = $3) \
         ORDER BY requested_at DESC, id";
    pub const ACTIVE_GRANTS: &str =
        "SELECT id, user_id, from_company, company_id, locations, actors, status, \
         requested_at, decided_by, decided_at, revoked_by, revoked_at, expires_at FROM visitor_grants \
         WHERE user_id = $1 AND status = 'approved' AND (expires_at IS NULL OR expires_at > $2) \
         ORDER BY requested_at DESC, id";

    pub const GET_INVITATION: &str =
        "SELECT id, company_id, email, role, flags, addons, group_name, attrs, status, \
         invited_by, created_at, expires_at, accepted_at, user_id FROM invitations WHERE id = $1";
    pub const GET_INVITATION_BY_TOKEN: &str =
        "SELECT id, company_id, email, role, flags, addons, group_name, \
         attrs, status, invited_by, created_at, expires_at, accepted_at, user_id \
         FROM invitations WHERE token_hash = $1";
    pub const INSERT_INVITATION: &str =
        "INSERT INTO invitations (id, company_id, email, role, flags, addons, \
         group_name, attrs, token_hash, status, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12)";
    pub const ACCEPT_INVITATION: &str =
        "UPDATE invitations SET status = 'accepted', accepted_at = $2, user_id = $3 \
         WHERE id = $1 AND status = 'pending'";
    pub const REVOKE_INVITATION: &str =
        "UPDATE invitations SET status = 'revoked' WHERE id = $1 AND status = 'pending'";
    pub const LIST_INVITATIONS: &str =
        "SELECT id, company_id, email, role, flags, addons, group_name, attrs, status, \
         invited_by, created_at, expires_at, accepted_at, user_id FROM invitations \
         WHERE company_id = $1 AND ($2 OR status = 'pending') ORDER BY created_at DESC, id";

    pub const INSERT_API_KEY: &str =
        "INSERT INTO api_keys (id, user_id, name, key_hash, created_at, session_id) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    pub const GET_API_KEY: &str =
        "SELECT id, user_id, name, key_hash, created_at, revoked_at, session_id FROM api_keys WHERE id = $1";
    pub const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1";
    pub const LIST_API_KEYS: &str =
        "SELECT id, user_id, name, key_hash, created_at, revoked_at, session_id FROM api_keys \
         WHERE user_id = $1 ORDER BY created_at, id";
}
