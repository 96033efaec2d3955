//! The Portcullis user store: companies, users, permission groups, visitor grants, invitations,
//! API keys and the audit trail, behind one async trait with two backends.
//!
//! Input comes from the management API and the CLI (`portcullis migrate`, `portcullis users`);
//! output goes to the engine as plain [`UserFacts`] and [`CompanyFacts`] (never Cedar entities),
//! to caches through the change feed ([`UserStore::version`], [`UserStore::changes_since`], and
//! `LISTEN` on [`postgres::CHANGE_CHANNEL`] with PostgreSQL), and to auditors through
//! [`UserStore::query_audit`].
//!
//! ```text
//! open(url) ──> SqliteStore (file, WAL)  ──┐
//!           └─> PgStore (postgres://…)   ──┴─> Arc<dyn UserStore> ──> facts / writes + audit
//! ```
//!
//! Every write runs in one transaction that bumps the change version, records which entities
//! changed, writes its audit row and (PostgreSQL) notifies listeners, so a failed write leaves
//! no trace at all.

mod backend;
pub mod clock;
pub mod dialect;
pub mod error;
pub mod limits;
pub mod model;
pub mod postgres;
mod rows;
pub mod secret;
pub mod signin;
pub mod sqlite;
mod store;

use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dialect::{Dialect, SqlStore};
pub use error::{Result, StoreError};
pub use limits::StoreLimits;
pub use model::*;
pub use portcullis_engine::facts::{CompanyFacts, UserFacts};
pub use postgres::{PgDialect, PgStore};
pub use secret::Secret;
pub use signin::{
    unknown_subject, Attempt, CompanyLink, IssuedSession, LockState, Lockout, NewPasskey, NewSession,
    Session, SignInStore, StoredPasskey, Totp,
};
pub use sqlite::{backup, BackupSummary, SqliteDialect, SqliteOptions, SqliteStore, Synchronous};
pub use store::{Backend, UserStore};

/// Opens the store a URL names: `postgres://…` or `postgresql://…` for PostgreSQL, anything else
/// (`sqlite://path`, `sqlite:path` or a plain file path) for SQLite. Does not migrate.
pub async fn open(url: &str, clock: Arc<dyn Clock>, limits: StoreLimits) -> Result<Arc<dyn UserStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, clock, limits).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let options = SqliteOptions::new(path);
        Ok(Arc::new(SqliteStore::open(options, clock, limits).await?))
    }
}
