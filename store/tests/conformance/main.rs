//! The store's conformance suite: every test body runs against both backends, a SQLite temp file
//! and a fresh PostgreSQL database (`PORTCULLIS_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; skipped loudly when unreachable).
//!
//! - `companies`: creation, enterprise trees, patches, constraint names.
//! - `users`: CRUD, facts, the user limit under concurrency, atomicity, moves, deletion.
//! - `groups`: permission groups and the single default.
//! - `grants`: the visitor grant lifecycle and expiry.
//! - `invitations`: single use, expiry with a manual clock, revocation.
//! - `api_keys`: hashed keys, resolution, revocation.
//! - `audit`: filters, pagination, rows surviving deletion.
//! - `feed`: the change version and change rows (and NOTIFY on PostgreSQL).
//! - `sign_in`: lockout, sessions, reset tokens, TOTP steps, recovery codes, token links.
//! - `passkeys`: registration, unique credential ids, use, removal by their user, WebAuthn
//!   ceremonies taken once (and expiring), backups without ceremonies.
//! - `open`: the URL picks the backend (SQLite only; backend-independent).

#![expect(clippy::unwrap_used, clippy::panic, reason = "test bodies fail loudly")]

/// Runs each named body (`async fn(Ctx)`) once per backend: `<theme>::sqlite::<name>` and
/// `<theme>::postgres::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run_sqlite(super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run_postgres(super::$name).await
                }
            )*
        }
    };
}

mod harness;

mod api_keys;
mod audit;
mod backup;
mod companies;
mod feed;
mod grants;
mod groups;
mod invitations;
mod open;
mod passkeys;
mod sign_in;
mod users;
