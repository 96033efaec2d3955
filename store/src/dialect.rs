//! What a database must say for the store to run on it: the [`Dialect`] trait, and
//! [`SqlStore`], the one store type every backend shares.
//!
//! ```text
//! backend.rs  impl<D: Dialect> UserStore   for SqlStore<D>   ─┐ every query written once,
//! signin.rs   impl<D: Dialect> SignInStore for SqlStore<D>   ─┘ with `$n` placeholders
//! sqlite.rs   impl Dialect for SqliteDialect   (pools, errors, the SQL that differs)
//! postgres.rs impl Dialect for PgDialect       (pool, errors, the SQL that differs, NOTIFY)
//! ```
//!
//! The logic is generic Rust; a difference between the databases is a difference between two
//! `Dialect` impls: a statement whose text differs (a row lock, `GREATEST` or `MAX`, a JSON
//! path), the error mapping, or what happens before a write commits. A new backend is one file
//! that implements [`Dialect`] for its sqlx database.
//!
//! sqlx checks every bound value and every decoded column against the database type, so the
//! generic blocks need sqlx's bounds for the types they bind and read. Rust carries over to a
//! trait's users the bounds on its own associated types (so [`Dialect`] states what it can about
//! `Dialect::DB`: migrations, results, arguments) but not bounds on other types
//! (rust-lang/rust#20671): `i64: Encode<DB>` or `&mut DB::Connection: Executor` cannot live on
//! the trait. Each of the four generic `impl` blocks of `backend.rs` and `signin.rs` states the
//! same list instead, one line per type thanks to [`Param`] and [`Column`].

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, Decode, Encode, IntoArguments, Pool, Transaction, Type};

use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::limits::StoreLimits;
use crate::store::Backend;

/// A database the store runs on: its sqlx driver, its pools, its migrations, how its errors
/// read, the statements whose text differs between databases, and what differs in a write.
///
/// Every other statement is written once (in `backend.rs` and `signin.rs`) with `$n`
/// placeholders, which sqlx binds by number on SQLite too. A new backend is a type holding its
/// pools that implements this trait (and [`Affected`] for its query result), its constructors
/// as `impl SqlStore<ItsDialect>`, and its migrations.
pub trait Dialect: Debug + Clone + Send + Sync + 'static
where
    for<'q> <Self::DB as Database>::Arguments<'q>: IntoArguments<'q, Self::DB>,
{
    /// The sqlx database: its connections run migrations, its results count rows.
    type DB: Database<Connection: Migrate, QueryResult: Affected>;

    /// Which database this is.
    const BACKEND: Backend;

    /// Raises the change feed's horizon (migration 0003_change_horizon) to the highest version
    /// both `$1` (keep_versions) versions behind the current one and older than `$2` (the cutoff).
    const RAISE_HORIZON: &'static str;

    /// The user limit of company `$1`, read so that no concurrent write can change the count
    /// behind it (a row lock where the database needs one).
    const LOCK_COMPANY_LIMIT: &'static str;

    /// The audit query: `$1` actor or `$2` target, `$3` company, `$4` action, `$5` since,
    /// `$6` until, `$7` before id, `$8` limit, `$9` the customer in the details.
    const QUERY_AUDIT: &'static str;

    /// The sign-in attempts row of subject `$1`, read for the read-check-write of an attempt
    /// (locked for the transaction where the database needs it).
    const LOCK_ATTEMPTS: &'static str;

    /// The migrations of this database.
    fn migrator() -> &'static Migrator;

    /// The pool reads use.
    fn reader(&self) -> &Pool<Self::DB>;

    /// The pool writes use.
    fn writer(&self) -> &Pool<Self::DB>;

    /// Maps an error, naming the violated constraint the way PostgreSQL names it.
    fn db_err(err: sqlx::Error) -> StoreError;

    /// Commits a write that moved the change version to `version`.
    fn commit_write(
        tx: Transaction<'static, Self::DB>,
        version: i64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The user store on a database `D`: [`crate::SqliteStore`] and [`crate::PgStore`] are two of it.
#[derive(Debug, Clone)]
pub struct SqlStore<D> {
    pub(crate) db: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: StoreLimits,
}

impl<D: Dialect> SqlStore<D> {
    /// A store on a database's pools.
    pub(crate) fn with(db: D, clock: Arc<dyn Clock>, limits: StoreLimits) -> Self {
        SqlStore { db, clock, limits }
    }
}

/// The sqlx database of a dialect.
pub(crate) type Db<D> = <D as Dialect>::DB;

/// A connection of a dialect's database (what a transaction or a pooled connection derefs to).
pub(crate) type Conn<D> = <Db<D> as Database>::Connection;

/// What a statement did: how many rows it changed (sqlx has this as an inherent method of each
/// database's result).
pub trait Affected {
    /// The rows the statement inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

/// The rows a dialect's database returns.
pub(crate) type Row<D> = <Db<D> as Database>::Row;

/// A type sqlx binds as a parameter of `DB` (any lifetime of the query).
pub trait Param<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> {}

impl<DB: Database, T> Param<DB> for T where T: for<'q> Encode<'q, DB> + Type<DB> {}

/// A type sqlx binds to, and reads from, a column of `DB`.
pub trait Column<DB: Database>: Param<DB> + for<'r> Decode<'r, DB> {}

impl<DB: Database, T> Column<DB> for T where T: Param<DB> + for<'r> Decode<'r, DB> {}
