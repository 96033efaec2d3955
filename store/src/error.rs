//! The store's one error type, and the mapping of database constraint violations to it.
//!
//! Backends hand their `sqlx::Error`s to [`StoreError::from_db`] together with the constraint
//! name they could extract (PostgreSQL reports it; SQLite's message is translated by the SQLite
//! backend), so both backends report the same [`StoreError::Conflict`] for the same violation.

use miette::Diagnostic;
use thiserror::Error;

/// A store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything a store operation can fail with.
#[derive(Debug, Error, Diagnostic)]
pub enum StoreError {
    /// The record does not exist (or is not visible, e.g. a revoked API key).
    #[error("{what} `{id}` not found")]
    #[diagnostic(code(portcullis::store::not_found))]
    NotFound {
        /// The kind of record (`user`, `company`...).
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// The write would break a uniqueness or integrity rule, named by its constraint.
    #[error("{message}")]
    #[diagnostic(code(portcullis::store::conflict))]
    Conflict {
        /// The database constraint that refused the write, e.g. `users_login_key`.
        constraint: String,
        /// What that means, for people.
        message: String,
    },
    /// The company has as many active users as its limit allows.
    #[error("company `{company}` has reached its limit of {limit} users")]
    #[diagnostic(code(portcullis::store::limit_reached))]
    LimitReached {
        /// The company.
        company: String,
        /// Its user limit.
        limit: i64,
    },
    /// The invitation, grant or key is past its expiry.
    #[error("{what} has expired")]
    #[diagnostic(code(portcullis::store::expired))]
    Expired {
        /// What expired.
        what: &'static str,
    },
    /// The input breaks a rule of the model (a bad state transition, an empty login...).
    #[error("{0}")]
    #[diagnostic(code(portcullis::store::invalid))]
    Invalid(String),
    /// The database failed (connection, I/O, migration...).
    #[error("database error: {0}")]
    #[diagnostic(code(portcullis::store::backend))]
    Backend(String),
}

impl StoreError {
    /// A stable machine-readable code, for the HTTP error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::LimitReached { .. } => "limit_reached",
            StoreError::Expired { .. } => "expired",
            StoreError::Invalid(_) => "invalid",
            StoreError::Backend(_) => "backend",
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound { what, id: id.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid(message.into())
    }

    /// Maps a database error, given the name of the violated constraint if the backend found one.
    pub(crate) fn from_db(err: sqlx::Error, constraint: Option<String>) -> Self {
        if let sqlx::Error::RowNotFound = err {
            return StoreError::Backend("row not found".to_owned());
        }
        if let sqlx::Error::Database(db) = &err {
            use sqlx::error::ErrorKind;
            match (db.kind(), constraint) {
                (ErrorKind::UniqueViolation | ErrorKind::CheckViolation, Some(name)) => {
                    let message = conflict_message(&name);
                    return StoreError::Conflict {
                        constraint: name,
                        message,
                    };
                }
                (ErrorKind::ForeignKeyViolation, name) => {
                    let constraint = name.unwrap_or_else(|| "foreign_key".to_owned());
                    let message = conflict_message(&constraint);
                    return StoreError::Conflict { constraint, message };
                }
                (ErrorKind::UniqueViolation, None) => {
                    return StoreError::Conflict {
                        constraint: "unique".to_owned(),
                        message: "a record with the same key already exists".to_owned(),
                    }
                }
                _ => {}
            }
        }
        StoreError::Backend(err.to_string())
    }
}

/// The message of each named constraint: one table for both backends.
fn conflict_message(constraint: &str) -> String {
    let known = match constraint {
        "companies_pkey" => "a company with this id already exists",
        "companies_user_limit_check" => "the user limit cannot be negative",
        "companies_parent_check" => "a company cannot be its own parent",
        "users_pkey" => "a user with this id already exists",
        "users_login_key" => "a user with this login already exists",
        "users_email_key" => "a user with this email already exists",
        "users_group_name_fkey" => "the permission group is assigned to users",
        "permission_groups_pkey" => "a permission group with this name already exists",
        "permission_groups_one_default" => "another permission group is already the default",
        "invitations_token_hash_key" => "invitation token collision",
        "visitor_grants_company_check" => "a visitor grant must be for another company",
        "companies_parent_id_fkey" => "the company has child companies",
        "users_company_id_fkey" => "the company has users",
        _ => return format!("the change conflicts with `{constraint}`"),
    };
    known.to_owned()
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Backend(format!("migration failed: {err}"))
    }
}
