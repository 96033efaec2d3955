//! The store logic, written once: `impl<D: Dialect> UserStore for SqlStore<D>`, with the
//! statements both databases run as written (`$n` placeholders, which sqlx binds by number on
//! SQLite too) in [`sql`], and the input checks every backend applies.
//!
//! A backend is a [`Dialect`] (`sqlite.rs`, `postgres.rs`): its pools, its error mapping, what
//! happens before a write commits, and the few statements whose text differs between the
//! databases (`D::LOCK_COMPANY_LIMIT`, `D::RAISE_HORIZON`, `D::QUERY_AUDIT`). There is no
//! `if sqlite` anywhere: a difference between the databases is a difference between two
//! `Dialect` impls.
//!
//! Every write starts with [`SqlStore::begin_write`], whose first statement bumps the change
//! version (taking SQLite's write lock, or queueing behind the row lock of PostgreSQL's version
//! row), records the entities it changed and its audit row, and ends with
//! [`Dialect::commit_write`] (which notifies listeners on PostgreSQL).

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::{Encode, Executor, Transaction, Type};

use crate::backend as v;
use crate::clock::to_millis;
use crate::dialect::{Affected, Column, Conn, Db, Dialect, Param, Row, SqlStore};
use crate::error::{Result, StoreError};
use crate::limits::StoreLimits;
use crate::model::*;
use crate::rows::*;
use crate::secret::{hash_token, random_token, same_hash, Secret};
use crate::store::{Backend, UserStore};

/// A trimmed, non-empty name within the length limit.
pub(crate) fn name(limits: &StoreLimits, what: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(StoreError::invalid(format!("{what} must not be empty")));
    }
    if v.len() > limits.max_name_bytes || v.chars().any(char::is_control) {
        return Err(StoreError::invalid(format!(
            "{what} `{}` is longer than {} bytes or has control characters",
            v.chars().take(40).collect::<String>(),
            limits.max_name_bytes
        )));
    }
    Ok(v.to_owned())
}

/// A display name: may be empty, within the length limit.
pub(crate) fn label(limits: &StoreLimits, what: &str, value: &str) -> Result<String> {
    if value.trim().is_empty() {
        Ok(String::new())
    } else {
        name(limits, what, value)
    }
}

/// An email, lowercased.
pub(crate) fn email(limits: &StoreLimits, value: &str) -> Result<String> {
    let v = name(limits, "email", value)?.to_lowercase();
    match v.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !v.contains(' ') => Ok(v),
        _ => Err(StoreError::invalid(format!("`{v}` is not an email address"))),
    }
}

/// A list of names (flags, add-ons, features), without duplicates, in the given order.
pub(crate) fn names(limits: &StoreLimits, what: &str, values: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let v = name(limits, what, v)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

/// An attribute document within the size limit.
pub(crate) fn attrs(limits: &StoreLimits, value: &Attrs) -> Result<()> {
    let size = serde_json::to_string(value)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_attrs_bytes {
        return Err(StoreError::invalid(format!(
            "attributes are {size} bytes, more than the limit of {}",
            limits.max_attrs_bytes
        )));
    }
    Ok(())
}

/// The audit details of a write: the method's own, then the caller's.
pub(crate) fn details(own: Value, caller: &Attrs) -> Attrs {
    let mut out = match own {
        Value::Object(m) => m,
        _ => Attrs::new(),
    };
    for (k, v) in caller {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

/// A fresh random id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The API key prefix.
pub(crate) const API_KEY_PREFIX: &str = "pck_";

/// Splits `pck_<id>_<secret>` into id and secret.
pub(crate) fn split_api_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.rsplit_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// The statements both databases run as written; the ones whose text differs are [`Dialect`]'s.
pub(crate) mod sql {
    pub const BUMP_VERSION: &str =
        "UPDATE store_version SET version = version + 1 WHERE id = 1 RETURNING version";
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

    pub const GET_COMPANY: &str = "SELECT id, name, account_type, parent_id, user_limit, attrs, created_at \
         FROM companies WHERE id = $1";
    pub const INSERT_COMPANY: &str =
        "INSERT INTO companies (id, name, account_type, parent_id, user_limit, attrs, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const LIST_COMPANIES: &str =
        "SELECT id, name, account_type, parent_id, user_limit, attrs, created_at \
         FROM companies \
         WHERE (CAST($1 AS TEXT) IS NULL OR parent_id = $1) AND (CAST($2 AS TEXT) IS NULL OR id > $2) \
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
         WHERE (CAST($1 AS TEXT) IS NULL OR company_id = $1) AND ($2 OR active) AND (CAST($3 AS TEXT) IS NULL OR id > $3) \
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
         WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND (CAST($2 AS TEXT) IS NULL OR company_id = $2) \
           AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
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

// The `where` list, the same in the four generic blocks: sqlx's bounds for what they bind and
// read (see `crate::dialect` for why it cannot live on `Dialect`).
impl<D> SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut Conn<D>: Executor<'c, Database = Db<D>>,
    for<'r> &'r str: sqlx::ColumnIndex<Row<D>>,
    usize: sqlx::ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, Db<D>> + Type<Db<D>>,
    for<'q> Option<&'q str>: Encode<'q, Db<D>>,
    i64: Column<Db<D>>,
    bool: Column<Db<D>>,
    String: Column<Db<D>>,
    Json<Attrs>: Column<Db<D>>,
    Json<Vec<String>>: Column<Db<D>>,
    Json<Vec<EntityRef>>: Column<Db<D>>,
    Option<i64>: Param<Db<D>>,
    Option<String>: Param<Db<D>>,
    for<'a> Json<&'a Attrs>: Param<Db<D>>,
    for<'a> Json<&'a Vec<String>>: Param<Db<D>>,
    for<'a> Json<&'a Vec<EntityRef>>: Param<Db<D>>,
{
    /// Starts a write: bumping the change version first takes the database's write lock
    /// (SQLite) or queues this writer behind any other (PostgreSQL's row lock).
    pub(crate) async fn begin_write(&self) -> Result<(Transaction<'static, Db<D>>, i64)> {
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        let version: i64 = sqlx::query_scalar(sql::BUMP_VERSION)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Ok((tx, version))
    }

    /// Records one changed entity under the write's version.
    async fn changed(conn: &mut Conn<D>, version: i64, now: i64, kind: &str, id: &str) -> Result<()> {
        sqlx::query(sql::INSERT_CHANGE)
            .bind(version)
            .bind(kind)
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(())
    }

    /// Writes the audit row of a write.
    #[expect(clippy::too_many_arguments, reason = "one audit row has that many columns")]
    async fn audited(
        conn: &mut Conn<D>,
        version: Option<i64>,
        now: i64,
        audit: &Audit,
        action: &str,
        target: Option<String>,
        company: Option<&str>,
        own: serde_json::Value,
    ) -> Result<AuditRow> {
        let company = audit.company.as_deref().or(company);
        sqlx::query_as::<_, AuditRow>(sql::INSERT_AUDIT)
            .bind(now)
            .bind(audit.actor.as_deref())
            .bind(company)
            .bind(action)
            .bind(target)
            .bind(Outcome::Success.as_str())
            .bind(Json(v::details(own, &audit.details)))
            .bind(version)
            .fetch_one(&mut *conn)
            .await
            .map_err(D::db_err)
    }

    async fn company_row(conn: &mut Conn<D>, id: &str) -> Result<CompanyRow> {
        sqlx::query_as::<_, CompanyRow>(sql::GET_COMPANY)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("company", id))
    }

    /// A company's facts, with the roles its active users hold.
    async fn company_facts_of(conn: &mut Conn<D>, id: &str) -> Result<crate::CompanyFacts> {
        let mut facts = Self::company_row(&mut *conn, id).await?.facts();
        let roles: Vec<String> = sqlx::query_scalar(sql::ACTIVE_ROLES)
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(D::db_err)?;
        facts.active_roles = Some(roles);
        Ok(facts)
    }

    /// Fails with `LimitReached` when `company` cannot take one more active user: its own
    /// limit and the limit of each company above it, each counting the active users of its
    /// whole tree, so a sub-company does not escape its enterprise's limit. `except` is a
    /// user already counted (one moving inside the enterprise).
    async fn check_limit(conn: &mut Conn<D>, company: &str, except: Option<&str>) -> Result<()> {
        let mut next = Some(company.to_owned());
        let mut seen: Vec<String> = Vec::new();
        while let Some(id) = next.take() {
            if seen.contains(&id) || seen.len() >= crate::limits::MAX_ENTERPRISE_DEPTH {
                break;
            }
            let limit: Option<Option<i64>> = sqlx::query_scalar(D::LOCK_COMPANY_LIMIT)
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(D::db_err)?;
            let Some(limit) = limit else {
                return Err(StoreError::not_found("company", &id));
            };
            if let Some(limit) = limit {
                let count: i64 = sqlx::query_scalar(sql::COUNT_ACTIVE_USERS)
                    .bind(&id)
                    .bind(except.unwrap_or(""))
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(D::db_err)?;
                if count >= limit {
                    return Err(StoreError::LimitReached { company: id, limit });
                }
            }
            next = Self::company_row(conn, &id).await?.parent_id;
            seen.push(id);
        }
        Ok(())
    }

    async fn accessible(conn: &mut Conn<D>, user: &str) -> Result<Vec<AccessibleCompany>> {
        let rows = sqlx::query_as::<_, AccessRow>(sql::LIST_ACCESS)
            .bind(user)
            .fetch_all(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(AccessRow::into_access).collect())
    }

    async fn find_user(conn: &mut Conn<D>, query: &'static str, key: &str) -> Result<User> {
        let row = sqlx::query_as::<_, UserRow>(query)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("user", key))?;
        let access = Self::accessible(conn, &row.id).await?;
        Ok(row.into_user(access))
    }

    async fn user(conn: &mut Conn<D>, id: &str) -> Result<User> {
        Self::find_user(conn, sql::GET_USER, id).await
    }

    async fn group_exists(conn: &mut Conn<D>, name: &str) -> Result<()> {
        sqlx::query_as::<_, GroupRow>(sql::GET_GROUP)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(D::db_err)?
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found("permission group", name))
    }

    /// Records a change of what group `name` holds, and audits it as `group.update`.
    async fn group_updated(
        conn: &mut Conn<D>,
        version: i64,
        now: i64,
        audit: &Audit,
        name: &str,
        own: serde_json::Value,
    ) -> Result<()> {
        Self::changed(&mut *conn, version, now, "group", name).await?;
        let target = Some(format!("group:{name}"));
        Self::audited(
            &mut *conn,
            Some(version),
            now,
            audit,
            actions::GROUP_UPDATE,
            target,
            None,
            own,
        )
        .await?;
        Ok(())
    }

    /// The group a new user gets: the one named, or the default.
    async fn group_for_new_user(conn: &mut Conn<D>, named: Option<String>) -> Result<Option<String>> {
        match named {
            Some(g) => {
                Self::group_exists(conn, &g).await?;
                Ok(Some(g))
            }
            None => sqlx::query_scalar(sql::DEFAULT_GROUP)
                .fetch_optional(&mut *conn)
                .await
                .map_err(D::db_err),
        }
    }

    /// The root of a company's enterprise (following parents, at most 64 levels).
    async fn enterprise_root(conn: &mut Conn<D>, company: &str) -> Result<String> {
        let mut id = company.to_owned();
        for _ in 0..64 {
            match Self::company_row(conn, &id).await?.parent_id {
                Some(parent) => id = parent,
                None => return Ok(id),
            }
        }
        Err(StoreError::invalid(format!(
            "company `{company}` has a parent cycle"
        )))
    }

    /// The permission groups a `SELECT` of group rows returns.
    async fn groups(&self, query: &str) -> Result<Vec<PermissionGroup>> {
        let rows = sqlx::query_as::<_, GroupRow>(query)
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(GroupRow::into_group).collect())
    }

    fn validate_new_user(&self, new: NewUser) -> Result<NewUser> {
        let l = &self.limits;
        v::attrs(l, &new.attrs)?;
        Ok(NewUser {
            id: new
                .id
                .as_deref()
                .map(|id| v::name(l, "user id", id))
                .transpose()?,
            company: v::name(l, "company", &new.company)?,
            login: v::name(l, "login", &new.login)?,
            email: new.email.as_deref().map(|e| v::email(l, e)).transpose()?,
            name: v::label(l, "name", &new.name)?,
            role: v::name(l, "role", &new.role)?,
            flags: v::names(l, "flag", &new.flags)?,
            addons: v::names(l, "add-on", &new.addons)?,
            group: new.group.as_deref().map(|g| v::name(l, "group", g)).transpose()?,
            attrs: new.attrs,
        })
    }

    /// Inserts a validated user inside a write (limit, group, row, change); no audit.
    async fn insert_user(&self, conn: &mut Conn<D>, version: i64, now: i64, new: NewUser) -> Result<User> {
        Self::check_limit(conn, &new.company, None).await?;
        let group = Self::group_for_new_user(conn, new.group).await?;
        let id = new.id.unwrap_or_else(new_id);
        sqlx::query(sql::INSERT_USER)
            .bind(&id)
            .bind(&new.company)
            .bind(&new.login)
            .bind(&new.email)
            .bind(&new.name)
            .bind(&new.role)
            .bind(Json(&new.flags))
            .bind(Json(&new.addons))
            .bind(&group)
            .bind(Json(&new.attrs))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Self::changed(conn, version, now, "user", &id).await?;
        Self::user(conn, &id).await
    }

    async fn set_active(&self, id: &str, active: bool, audit: &Audit) -> Result<User> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let before = Self::user(&mut tx, id).await?;
        if active && !before.active {
            Self::check_limit(&mut tx, &before.company, None).await?;
        }
        sqlx::query(sql::SET_ACTIVE)
            .bind(id)
            .bind(active)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "user", id).await?;
        let action = if active {
            actions::USER_REACTIVATE
        } else {
            actions::USER_DEACTIVATE
        };
        let own = json!({ "was_active": before.active });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            action,
            Some(format!("user:{id}")),
            Some(&before.company),
            own,
        )
        .await?;
        let after = Self::user(&mut tx, id).await?;
        D::commit_write(tx, version).await?;
        Ok(after)
    }

    async fn decide_grant(
        &self,
        id: &str,
        from: &[GrantStatus],
        to: GrantStatus,
        action: &str,
        audit: &Audit,
    ) -> Result<VisitorGrant> {
        let Some(actor) = audit.actor.as_deref() else {
            return Err(StoreError::invalid("a visitor grant decision needs an actor"));
        };
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let grant = sqlx::query_as::<_, GrantRow>(sql::GET_GRANT)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("visitor grant", id))?
            .into_grant();
        if !from.contains(&grant.status) {
            return Err(StoreError::invalid(format!(
                "visitor grant `{id}` is `{}` and cannot become `{}`",
                grant.status.as_str(),
                to.as_str()
            )));
        }
        if to == GrantStatus::Approved && grant.expires_at.is_some_and(|e| to_millis(e) <= now) {
            return Err(StoreError::Expired {
                what: "visitor grant",
            });
        }
        let query = if to == GrantStatus::Revoked {
            sql::REVOKE_GRANT
        } else {
            sql::DECIDE_GRANT
        };
        sqlx::query(query)
            .bind(id)
            .bind(to.as_str())
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "grant", id).await?;
        Self::changed(&mut tx, version, now, "user", &grant.user).await?;
        let own = json!({ "user": grant.user, "from": grant.status.as_str(), "to": to.as_str() });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            action,
            Some(format!("grant:{id}")),
            Some(&grant.company),
            own,
        )
        .await?;
        let after = sqlx::query_as::<_, GrantRow>(sql::GET_GRANT)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_grant();
        D::commit_write(tx, version).await?;
        Ok(after)
    }
}

/// The user store on any [`Dialect`] (with the same `where` list).
#[async_trait]
impl<D> UserStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut Conn<D>: Executor<'c, Database = Db<D>>,
    for<'r> &'r str: sqlx::ColumnIndex<Row<D>>,
    usize: sqlx::ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, Db<D>> + Type<Db<D>>,
    for<'q> Option<&'q str>: Encode<'q, Db<D>>,
    i64: Column<Db<D>>,
    bool: Column<Db<D>>,
    String: Column<Db<D>>,
    Json<Attrs>: Column<Db<D>>,
    Json<Vec<String>>: Column<Db<D>>,
    Json<Vec<EntityRef>>: Column<Db<D>>,
    Option<i64>: Param<Db<D>>,
    Option<String>: Param<Db<D>>,
    for<'a> Json<&'a Attrs>: Param<Db<D>>,
    for<'a> Json<&'a Vec<String>>: Param<Db<D>>,
    for<'a> Json<&'a Vec<EntityRef>>: Param<Db<D>>,
{
    fn backend(&self) -> Backend {
        D::BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        D::migrator().run(self.db.writer()).await?;
        Ok(())
    }

    async fn version(&self) -> Result<i64> {
        sqlx::query_scalar(sql::GET_VERSION)
            .fetch_one(self.db.reader())
            .await
            .map_err(D::db_err)
    }

    async fn changes_since(&self, version: i64, limit: u32) -> Result<Vec<Change>> {
        let horizon = self.changes_horizon().await?;
        if version < horizon {
            // Its rows were pruned: the reader must drop everything it cached.
            return Err(StoreError::Expired {
                what: "the change feed cursor",
            });
        }
        let rows = sqlx::query_as::<_, ChangeRow>(sql::CHANGES_SINCE)
            .bind(version)
            .bind(self.limits.page(Some(limit)))
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(ChangeRow::into_change).collect())
    }

    async fn prune_changes(&self, keep: ChangeRetention) -> Result<u64> {
        let now = to_millis(self.clock.now());
        let max_age = i64::try_from(keep.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(max_age);
        let mut tx = self.db.writer().begin().await.map_err(D::db_err)?;
        // The horizon first: the UPDATE takes the write lock before anything is read.
        sqlx::query(D::RAISE_HORIZON)
            .bind(keep.keep_versions.max(0))
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let gone = sqlx::query(sql::PRUNE_CHANGES)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?
            .rows_affected();
        tx.commit().await.map_err(D::db_err)?;
        Ok(gone)
    }

    async fn changes_horizon(&self) -> Result<i64> {
        sqlx::query_scalar(sql::GET_HORIZON)
            .fetch_one(self.db.reader())
            .await
            .map_err(D::db_err)
    }

    // ---- companies ----

    async fn create_company(&self, new: NewCompany, audit: &Audit) -> Result<Company> {
        let l = &self.limits;
        let id = v::name(l, "company id", &new.id)?;
        let name = v::label(l, "company name", &new.name)?;
        let account_type = v::name(l, "account type", &new.account_type)?;
        v::attrs(l, &new.attrs)?;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        if let Some(parent) = &new.parent {
            Self::company_row(&mut tx, parent).await?;
        }
        sqlx::query(sql::INSERT_COMPANY)
            .bind(&id)
            .bind(&name)
            .bind(&account_type)
            .bind(&new.parent)
            .bind(new.user_limit.map(i64::from))
            .bind(Json(&new.attrs))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "company", &id).await?;
        let own = json!({ "account_type": account_type, "parent": new.parent });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::COMPANY_CREATE,
            Some(format!("company:{id}")),
            Some(&id),
            own,
        )
        .await?;
        let company = Self::company_row(&mut tx, &id).await?.into_company();
        D::commit_write(tx, version).await?;
        Ok(company)
    }

    async fn get_company(&self, id: &str) -> Result<Company> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Ok(Self::company_row(&mut conn, id).await?.into_company())
    }

    async fn list_companies(&self, query: &CompanyQuery) -> Result<Page<Company>> {
        let limit = self.limits.page(query.limit);
        let rows = sqlx::query_as::<_, CompanyRow>(sql::LIST_COMPANIES)
            .bind(&query.parent)
            .bind(&query.after)
            .bind(limit + 1)
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        let mut items: Vec<Company> = rows.into_iter().map(CompanyRow::into_company).collect();
        let next = page_cut(&mut items, limit)
            .then(|| items.last().map(|c| c.id.clone()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn update_company(&self, id: &str, patch: CompanyPatch, audit: &Audit) -> Result<Company> {
        let l = &self.limits;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let mut row = Self::company_row(&mut tx, id).await?;
        let mut fields = Vec::new();
        if let Some(name) = &patch.name {
            row.name = v::label(l, "company name", name)?;
            fields.push("name");
        }
        if let Some(t) = &patch.account_type {
            row.account_type = v::name(l, "account type", t)?;
            fields.push("account_type");
        }
        if let Some(limit) = patch.user_limit {
            row.user_limit = limit.map(i64::from);
            fields.push("user_limit");
        }
        if let Some(a) = patch.attrs {
            v::attrs(l, &a)?;
            row.attrs = Json(a);
            fields.push("attrs");
        }
        sqlx::query(sql::UPDATE_COMPANY)
            .bind(id)
            .bind(&row.name)
            .bind(&row.account_type)
            .bind(row.user_limit)
            .bind(&row.attrs)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "company", id).await?;
        let own = json!({ "changed": fields });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::COMPANY_UPDATE,
            Some(format!("company:{id}")),
            Some(id),
            own,
        )
        .await?;
        let company = Self::company_row(&mut tx, id).await?.into_company();
        D::commit_write(tx, version).await?;
        Ok(company)
    }

    async fn company_facts(&self, id: &str) -> Result<crate::CompanyFacts> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Self::company_facts_of(&mut conn, id).await
    }

    // ---- users ----

    async fn create_user(&self, new: NewUser, audit: &Audit) -> Result<User> {
        let new = self.validate_new_user(new)?;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let created = self.insert_user(&mut tx, version, now, new).await?;
        let own = json!({ "login": created.login, "role": created.role });
        let target = Some(format!("user:{}", created.id));
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::USER_CREATE,
            target,
            Some(&created.company),
            own,
        )
        .await?;
        D::commit_write(tx, version).await?;
        Ok(created)
    }

    async fn get_user(&self, id: &str) -> Result<User> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Self::user(&mut conn, id).await
    }

    async fn get_user_by_login(&self, login: &str) -> Result<User> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        Self::find_user(&mut conn, sql::GET_USER_BY_LOGIN, login.trim()).await
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Page<User>> {
        let limit = self.limits.page(query.limit);
        let rows = sqlx::query_as::<_, UserRow>(sql::LIST_USERS)
            .bind(&query.company)
            .bind(query.include_inactive)
            .bind(&query.after)
            .bind(limit + 1)
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        let mut access: HashMap<String, Vec<AccessibleCompany>> = HashMap::new();
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let acc = sqlx::query_as::<_, AccessRow>(sql::LIST_ACCESS_RANGE)
                .bind(&first.id)
                .bind(&last.id)
                .fetch_all(self.db.reader())
                .await
                .map_err(D::db_err)?;
            for a in acc {
                access.entry(a.user_id.clone()).or_default().push(a.into_access());
            }
        }
        let mut items: Vec<User> = rows
            .into_iter()
            .map(|r| {
                let a = access.remove(&r.id).unwrap_or_default();
                r.into_user(a)
            })
            .collect();
        let next = page_cut(&mut items, limit)
            .then(|| items.last().map(|u| u.id.clone()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn user_facts(&self, id: &str, acting_in: Option<&str>) -> Result<Facts> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        let u = Self::user(&mut conn, id).await?;
        let (company, role) = match acting_in {
            None => (u.company.clone(), u.role.clone()),
            Some(c) if c == u.company => (u.company.clone(), u.role.clone()),
            Some(c) => match u.accessible.iter().find(|a| a.company == c) {
                Some(a) => (c.to_owned(), a.role.clone().unwrap_or_else(|| u.role.clone())),
                None => {
                    return Err(StoreError::invalid(format!(
                        "user `{id}` cannot act in company `{c}`"
                    )))
                }
            },
        };
        let facts = Self::company_facts_of(&mut conn, &company).await?;
        Ok(Facts {
            user_id: u.id.clone(),
            user: user_facts(&u, &company, &role),
            company: facts,
        })
    }

    async fn update_user(&self, id: &str, patch: UserPatch, audit: &Audit) -> Result<User> {
        let l = &self.limits;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let mut u = Self::user(&mut tx, id).await?;
        let mut fields = Vec::new();
        if let Some(login) = &patch.login {
            u.login = v::name(l, "login", login)?;
            fields.push("login");
        }
        if let Some(email) = &patch.email {
            u.email = email.as_deref().map(|e| v::email(l, e)).transpose()?;
            fields.push("email");
        }
        if let Some(name) = &patch.name {
            u.name = v::label(l, "name", name)?;
            fields.push("name");
        }
        if let Some(role) = &patch.role {
            u.role = v::name(l, "role", role)?;
            fields.push("role");
        }
        if let Some(flags) = &patch.flags {
            u.flags = v::names(l, "flag", flags)?;
            fields.push("flags");
        }
        if let Some(addons) = &patch.addons {
            u.addons = v::names(l, "add-on", addons)?;
            fields.push("addons");
        }
        if let Some(group) = &patch.group {
            u.group = group.as_deref().map(|g| v::name(l, "group", g)).transpose()?;
            if let Some(g) = &u.group {
                Self::group_exists(&mut tx, g).await?;
            }
            fields.push("group");
        }
        if let Some(a) = patch.attrs {
            v::attrs(l, &a)?;
            u.attrs = a;
            fields.push("attrs");
        }
        sqlx::query(sql::UPDATE_USER)
            .bind(id)
            .bind(&u.login)
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.role)
            .bind(Json(&u.flags))
            .bind(Json(&u.addons))
            .bind(&u.group)
            .bind(Json(&u.attrs))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "user", id).await?;
        let own = json!({ "changed": fields });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::USER_UPDATE,
            Some(format!("user:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        let after = Self::user(&mut tx, id).await?;
        D::commit_write(tx, version).await?;
        Ok(after)
    }

    async fn deactivate_user(&self, id: &str, audit: &Audit) -> Result<User> {
        self.set_active(id, false, audit).await
    }

    async fn reactivate_user(&self, id: &str, audit: &Audit) -> Result<User> {
        self.set_active(id, true, audit).await
    }

    async fn delete_user(&self, id: &str, transfer_to: Option<&str>, audit: &Audit) -> Result<Deletion> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let u = Self::user(&mut tx, id).await?;
        if let Some(to) = transfer_to {
            if to == id {
                return Err(StoreError::invalid(
                    "a user cannot transfer its records to itself",
                ));
            }
            let receiver = Self::user(&mut tx, to).await?;
            if receiver.company != u.company {
                return Err(StoreError::invalid(format!(
                    "user `{to}` is not in company `{}` and cannot receive its records",
                    u.company
                )));
            }
        }
        sqlx::query(sql::DELETE_USER)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "user", id).await?;
        let own = json!({ "login": u.login, "role": u.role, "transfer_to": transfer_to });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::USER_DELETE,
            Some(format!("user:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        D::commit_write(tx, version).await?;
        Ok(Deletion {
            user: u,
            transfer_to: transfer_to.map(str::to_owned),
        })
    }

    async fn move_user(&self, id: &str, company: &str, audit: &Audit) -> Result<User> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let u = Self::user(&mut tx, id).await?;
        if u.company == company {
            return Err(StoreError::invalid(format!(
                "user `{id}` is already in company `{company}`"
            )));
        }
        let (from_root, to_root) = (
            Self::enterprise_root(&mut tx, &u.company).await?,
            Self::enterprise_root(&mut tx, company).await?,
        );
        if from_root != to_root {
            return Err(StoreError::invalid(format!(
                "companies `{}` and `{company}` are not in the same enterprise account",
                u.company
            )));
        }
        if u.active {
            Self::check_limit(&mut tx, company, Some(id)).await?;
        }
        sqlx::query(sql::MOVE_USER)
            .bind(id)
            .bind(company)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        sqlx::query(sql::DELETE_ACCESS_ONE)
            .bind(id)
            .bind(company)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "user", id).await?;
        let own = json!({ "from": u.company, "to": company });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::USER_MOVE,
            Some(format!("user:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        let after = Self::user(&mut tx, id).await?;
        D::commit_write(tx, version).await?;
        Ok(after)
    }

    async fn set_accessible_companies(
        &self,
        id: &str,
        companies: Vec<AccessibleCompany>,
        audit: &Audit,
    ) -> Result<User> {
        let l = &self.limits;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let u = Self::user(&mut tx, id).await?;
        let mut wanted: Vec<AccessibleCompany> = Vec::new();
        for a in companies {
            let company = v::name(l, "company", &a.company)?;
            let role = a.role.as_deref().map(|r| v::name(l, "role", r)).transpose()?;
            if company == u.company || wanted.iter().any(|w| w.company == company) {
                continue;
            }
            Self::company_row(&mut tx, &company).await?;
            wanted.push(AccessibleCompany { company, role });
        }
        sqlx::query(sql::DELETE_ACCESS_ALL)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        for a in &wanted {
            sqlx::query(sql::INSERT_ACCESS)
                .bind(id)
                .bind(&a.company)
                .bind(&a.role)
                .execute(&mut *tx)
                .await
                .map_err(D::db_err)?;
        }
        sqlx::query(sql::TOUCH_USER)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "user", id).await?;
        let ids: Vec<&str> = wanted.iter().map(|a| a.company.as_str()).collect();
        let own = json!({ "companies": ids });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::USER_SET_ACCESSIBLE,
            Some(format!("user:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        let after = Self::user(&mut tx, id).await?;
        D::commit_write(tx, version).await?;
        Ok(after)
    }

    async fn set_password_hash(&self, id: &str, phc: Option<String>, audit: &Audit) -> Result<()> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let u = Self::user(&mut tx, id).await?;
        sqlx::query(sql::SET_PASSWORD)
            .bind(id)
            .bind(&phc)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "user", id).await?;
        let own = json!({ "cleared": phc.is_none() });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::USER_SET_PASSWORD,
            Some(format!("user:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        D::commit_write(tx, version).await
    }

    async fn credentials(&self, login: &str) -> Result<(User, Option<String>)> {
        let mut conn = self.db.reader().acquire().await.map_err(D::db_err)?;
        let u = Self::find_user(&mut conn, sql::GET_USER_BY_LOGIN, login.trim()).await?;
        let hash: Option<String> = sqlx::query_scalar(sql::GET_PASSWORD)
            .bind(&u.id)
            .fetch_one(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok((u, hash))
    }

    // ---- permission groups ----

    async fn create_group(&self, new: NewGroup, audit: &Audit) -> Result<PermissionGroup> {
        let l = &self.limits;
        let name = v::name(l, "group name", &new.name)?;
        let description = v::label(l, "description", &new.description)?;
        let features = v::names(l, "feature", &new.features)?;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        if new.is_default {
            sqlx::query(sql::CLEAR_DEFAULT_GROUP)
                .execute(&mut *tx)
                .await
                .map_err(D::db_err)?;
        }
        sqlx::query(sql::INSERT_GROUP)
            .bind(&name)
            .bind(&description)
            .bind(Json(&features))
            .bind(new.is_default)
            .bind(now)
            .bind(!features.is_empty())
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "group", &name).await?;
        let own = json!({ "features": features, "is_default": new.is_default });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::GROUP_CREATE,
            Some(format!("group:{name}")),
            None,
            own,
        )
        .await?;
        let group = sqlx::query_as::<_, GroupRow>(sql::GET_GROUP)
            .bind(&name)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_group();
        D::commit_write(tx, version).await?;
        Ok(group)
    }

    async fn get_group(&self, name: &str) -> Result<PermissionGroup> {
        sqlx::query_as::<_, GroupRow>(sql::GET_GROUP)
            .bind(name)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .map(GroupRow::into_group)
            .ok_or_else(|| StoreError::not_found("permission group", name))
    }

    async fn list_groups(&self) -> Result<Vec<PermissionGroup>> {
        self.groups(sql::LIST_GROUPS).await
    }

    async fn undefined_groups(&self) -> Result<Vec<PermissionGroup>> {
        self.groups(sql::UNDEFINED_GROUPS).await
    }

    async fn define_group(&self, name: &str, features: Vec<String>, audit: &Audit) -> Result<bool> {
        let features = v::names(&self.limits, "feature", &features)?;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let done = sqlx::query(sql::DEFINE_GROUP)
            .bind(name)
            .bind(Json(&features))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if done.rows_affected() == 0 {
            // Defined already, or gone: nothing to write.
            return Ok(false);
        }
        let own = json!({ "features": features, "defined": true });
        Self::group_updated(&mut tx, version, now, audit, name, own).await?;
        D::commit_write(tx, version).await?;
        Ok(true)
    }

    async fn update_group(&self, name: &str, patch: GroupPatch, audit: &Audit) -> Result<PermissionGroup> {
        let l = &self.limits;
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let mut g = sqlx::query_as::<_, GroupRow>(sql::GET_GROUP)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("permission group", name))?;
        if let Some(d) = &patch.description {
            g.description = v::label(l, "description", d)?;
        }
        if let Some(f) = &patch.features {
            g.features = Json(v::names(l, "feature", f)?);
            g.defined = true;
        }
        sqlx::query(sql::UPDATE_GROUP)
            .bind(name)
            .bind(&g.description)
            .bind(&g.features)
            .bind(g.defined)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        let own = json!({ "features": g.features.0 });
        Self::group_updated(&mut tx, version, now, audit, name, own).await?;
        D::commit_write(tx, version).await?;
        Ok(g.into_group())
    }

    async fn set_default_group(&self, name: Option<&str>, audit: &Audit) -> Result<()> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        sqlx::query(sql::CLEAR_DEFAULT_GROUP)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if let Some(name) = name {
            let done = sqlx::query(sql::SET_DEFAULT_GROUP)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(D::db_err)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::not_found("permission group", name));
            }
        }
        Self::changed(&mut tx, version, now, "group", name.unwrap_or("*")).await?;
        let target = name.map(|n| format!("group:{n}"));
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::GROUP_SET_DEFAULT,
            target,
            None,
            json!({}),
        )
        .await?;
        D::commit_write(tx, version).await
    }

    async fn delete_group(&self, name: &str, audit: &Audit) -> Result<()> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        Self::group_exists(&mut tx, name).await?;
        let members: i64 = sqlx::query_scalar(sql::COUNT_GROUP_USERS)
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if members > 0 {
            return Err(StoreError::Conflict {
                constraint: "users_group_name_fkey".to_owned(),
                message: format!("permission group `{name}` has {members} users"),
            });
        }
        sqlx::query(sql::DELETE_GROUP)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "group", name).await?;
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::GROUP_DELETE,
            Some(format!("group:{name}")),
            None,
            json!({}),
        )
        .await?;
        D::commit_write(tx, version).await
    }

    // ---- visitor grants ----

    async fn request_grant(&self, new: NewGrant, audit: &Audit) -> Result<VisitorGrant> {
        let now_t = self.clock.now();
        let now = to_millis(now_t);
        if new.expires_at.is_some_and(|e| e <= now_t) {
            return Err(StoreError::invalid("a visitor grant cannot expire in the past"));
        }
        for e in new.locations.iter().chain(&new.actors) {
            v::name(&self.limits, "entity type", &e.ty)?;
            v::name(&self.limits, "entity id", &e.id)?;
        }
        let (mut tx, version) = self.begin_write().await?;
        let u = Self::user(&mut tx, &new.user).await?;
        Self::company_row(&mut tx, &new.company).await?;
        if u.company == new.company {
            return Err(StoreError::invalid(format!(
                "user `{}` already belongs to company `{}`",
                u.id, new.company
            )));
        }
        let id = new_id();
        sqlx::query(sql::INSERT_GRANT)
            .bind(&id)
            .bind(&u.id)
            .bind(&u.company)
            .bind(&new.company)
            .bind(Json(&new.locations))
            .bind(Json(&new.actors))
            .bind(now)
            .bind(new.expires_at.map(to_millis))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "grant", &id).await?;
        let own = json!({ "user": u.id, "company": new.company });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::GRANT_REQUEST,
            Some(format!("grant:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        let grant = sqlx::query_as::<_, GrantRow>(sql::GET_GRANT)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_grant();
        D::commit_write(tx, version).await?;
        Ok(grant)
    }

    async fn get_grant(&self, id: &str) -> Result<VisitorGrant> {
        sqlx::query_as::<_, GrantRow>(sql::GET_GRANT)
            .bind(id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .map(GrantRow::into_grant)
            .ok_or_else(|| StoreError::not_found("visitor grant", id))
    }

    async fn approve_grant(&self, id: &str, audit: &Audit) -> Result<VisitorGrant> {
        let from = [GrantStatus::Requested];
        self.decide_grant(id, &from, GrantStatus::Approved, actions::GRANT_APPROVE, audit)
            .await
    }

    async fn refuse_grant(&self, id: &str, audit: &Audit) -> Result<VisitorGrant> {
        let from = [GrantStatus::Requested];
        self.decide_grant(id, &from, GrantStatus::Refused, actions::GRANT_REFUSE, audit)
            .await
    }

    async fn revoke_grant(&self, id: &str, audit: &Audit) -> Result<VisitorGrant> {
        let from = [GrantStatus::Requested, GrantStatus::Approved];
        self.decide_grant(id, &from, GrantStatus::Revoked, actions::GRANT_REVOKE, audit)
            .await
    }

    async fn list_grants(&self, query: &GrantQuery) -> Result<Vec<VisitorGrant>> {
        let rows = sqlx::query_as::<_, GrantRow>(sql::LIST_GRANTS)
            .bind(&query.user)
            .bind(&query.company)
            .bind(query.status.map(GrantStatus::as_str))
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(GrantRow::into_grant).collect())
    }

    async fn active_grants_for_user(&self, user: &str) -> Result<Vec<VisitorGrant>> {
        let rows = sqlx::query_as::<_, GrantRow>(sql::ACTIVE_GRANTS)
            .bind(user)
            .bind(to_millis(self.clock.now()))
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(GrantRow::into_grant).collect())
    }

    // ---- invitations ----

    async fn create_invitation(&self, new: NewInvitation, audit: &Audit) -> Result<IssuedInvitation> {
        let l = &self.limits;
        let company = v::name(l, "company", &new.company)?;
        let email = v::email(l, &new.email)?;
        let role = v::name(l, "role", &new.role)?;
        let flags = v::names(l, "flag", &new.flags)?;
        let addons = v::names(l, "add-on", &new.addons)?;
        let group = new.group.as_deref().map(|g| v::name(l, "group", g)).transpose()?;
        v::attrs(l, &new.attrs)?;
        let ttl = new.ttl.unwrap_or(l.invitation_ttl);
        if !ttl.is_positive() {
            return Err(StoreError::invalid("an invitation must live for a positive time"));
        }
        let now_t = self.clock.now();
        let now = to_millis(now_t);
        let token = random_token()?;
        let id = new_id();
        let (mut tx, version) = self.begin_write().await?;
        Self::company_row(&mut tx, &company).await?;
        if let Some(g) = &group {
            Self::group_exists(&mut tx, g).await?;
        }
        sqlx::query(sql::INSERT_INVITATION)
            .bind(&id)
            .bind(&company)
            .bind(&email)
            .bind(&role)
            .bind(Json(&flags))
            .bind(Json(&addons))
            .bind(&group)
            .bind(Json(&new.attrs))
            .bind(hash_token(&token))
            .bind(audit.actor.as_deref())
            .bind(now)
            .bind(to_millis(now_t + ttl))
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "invitation", &id).await?;
        let own = json!({ "email": email, "role": role });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::INVITATION_CREATE,
            Some(format!("invitation:{id}")),
            Some(&company),
            own,
        )
        .await?;
        let invitation = sqlx::query_as::<_, InvitationRow>(sql::GET_INVITATION)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_invitation(now);
        D::commit_write(tx, version).await?;
        Ok(IssuedInvitation {
            invitation,
            token: Secret::new(token),
        })
    }

    async fn accept_invitation(&self, token: &str, acceptance: Acceptance, audit: &Audit) -> Result<User> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let inv = sqlx::query_as::<_, InvitationRow>(sql::GET_INVITATION_BY_TOKEN)
            .bind(hash_token(token.trim()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("invitation", "(token)"))?;
        match inv.status.as_str() {
            "pending" if inv.expires_at <= now => return Err(StoreError::Expired { what: "invitation" }),
            "pending" => {}
            other => {
                return Err(StoreError::invalid(format!(
                    "invitation `{}` is `{other}` and cannot be accepted",
                    inv.id
                )))
            }
        }
        let new = self.validate_new_user(NewUser {
            id: acceptance.user_id,
            company: inv.company_id.clone(),
            login: acceptance.login.unwrap_or_else(|| inv.email.clone()),
            email: Some(inv.email.clone()),
            name: acceptance.name,
            role: inv.role.clone(),
            flags: inv.flags.0.clone(),
            addons: inv.addons.0.clone(),
            group: inv.group_name.clone(),
            attrs: inv.attrs.0.clone(),
        })?;
        let created = match self.insert_user(&mut tx, version, now, new).await {
            Ok(u) => u,
            Err(e @ StoreError::Conflict { .. }) => {
                // A taken id, login or email closes the invitation: its token cannot
                // be replayed to ask which logins exist.
                drop(tx);
                let closing = audit.clone().with("reason", "acceptance conflict");
                self.revoke_invitation(&inv.id, &closing).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let done = sqlx::query(sql::ACCEPT_INVITATION)
            .bind(&inv.id)
            .bind(now)
            .bind(&created.id)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::invalid(format!(
                "invitation `{}` was already used",
                inv.id
            )));
        }
        Self::changed(&mut tx, version, now, "invitation", &inv.id).await?;
        let mut audit = audit.clone();
        audit.actor = audit.actor.or_else(|| Some(created.id.clone()));
        let own = json!({ "invitation": inv.id, "login": created.login, "role": created.role });
        let target = Some(format!("user:{}", created.id));
        Self::audited(
            &mut tx,
            Some(version),
            now,
            &audit,
            actions::INVITATION_ACCEPT,
            target,
            Some(&created.company),
            own,
        )
        .await?;
        D::commit_write(tx, version).await?;
        Ok(created)
    }

    async fn revoke_invitation(&self, id: &str, audit: &Audit) -> Result<Invitation> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let inv = sqlx::query_as::<_, InvitationRow>(sql::GET_INVITATION)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("invitation", id))?;
        if inv.status != "pending" {
            return Err(StoreError::invalid(format!(
                "invitation `{id}` is `{}` and cannot be revoked",
                inv.status
            )));
        }
        sqlx::query(sql::REVOKE_INVITATION)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "invitation", id).await?;
        let own = json!({ "email": inv.email });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::INVITATION_REVOKE,
            Some(format!("invitation:{id}")),
            Some(&inv.company_id),
            own,
        )
        .await?;
        let after = sqlx::query_as::<_, InvitationRow>(sql::GET_INVITATION)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_invitation(now);
        D::commit_write(tx, version).await?;
        Ok(after)
    }

    async fn get_invitation(&self, id: &str) -> Result<Invitation> {
        let now = to_millis(self.clock.now());
        sqlx::query_as::<_, InvitationRow>(sql::GET_INVITATION)
            .bind(id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?
            .map(|r| r.into_invitation(now))
            .ok_or_else(|| StoreError::not_found("invitation", id))
    }

    async fn list_invitations(&self, company: &str, include_closed: bool) -> Result<Vec<Invitation>> {
        let now = to_millis(self.clock.now());
        let rows = sqlx::query_as::<_, InvitationRow>(sql::LIST_INVITATIONS)
            .bind(company)
            .bind(include_closed)
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(|r| r.into_invitation(now)).collect())
    }

    // ---- API keys ----

    async fn create_api_key(
        &self,
        user_id: &str,
        name: &str,
        session: Option<&str>,
        audit: &Audit,
    ) -> Result<IssuedApiKey> {
        let name = v::label(&self.limits, "key name", name)?;
        let now = to_millis(self.clock.now());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let secret = random_token()?;
        let (mut tx, version) = self.begin_write().await?;
        let u = Self::user(&mut tx, user_id).await?;
        sqlx::query(sql::INSERT_API_KEY)
            .bind(&id)
            .bind(user_id)
            .bind(&name)
            .bind(hash_token(&secret))
            .bind(now)
            .bind(session)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "api_key", &id).await?;
        let own = json!({ "user": user_id, "name": name });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::API_KEY_CREATE,
            Some(format!("api_key:{id}")),
            Some(&u.company),
            own,
        )
        .await?;
        let key = sqlx::query_as::<_, ApiKeyRow>(sql::GET_API_KEY)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_key();
        D::commit_write(tx, version).await?;
        let plain = format!("{}{id}_{secret}", v::API_KEY_PREFIX);
        Ok(IssuedApiKey {
            key,
            secret: Secret::new(plain),
        })
    }

    async fn resolve_api_key(&self, key: &str) -> Result<ApiKey> {
        let unknown = || StoreError::not_found("api key", "(redacted)");
        let (id, secret) = v::split_api_key(key.trim()).ok_or_else(unknown)?;
        let row = sqlx::query_as::<_, ApiKeyRow>(sql::GET_API_KEY)
            .bind(id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(D::db_err)?;
        // Hash even when the id is unknown, so both failures take the same time.
        let given = hash_token(secret);
        let stored = row.as_ref().map_or("", |r| r.key_hash.as_str());
        match row {
            Some(r) if same_hash(stored, &given) && r.revoked_at.is_none() => Ok(r.into_key()),
            _ => Err(unknown()),
        }
    }

    async fn revoke_api_key(&self, id: &str, audit: &Audit) -> Result<ApiKey> {
        let now = to_millis(self.clock.now());
        let (mut tx, version) = self.begin_write().await?;
        let key = sqlx::query_as::<_, ApiKeyRow>(sql::GET_API_KEY)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?
            .ok_or_else(|| StoreError::not_found("api key", id))?;
        if key.revoked_at.is_some() {
            return Err(StoreError::invalid(format!("api key `{id}` is already revoked")));
        }
        let company: Option<String> = sqlx::query_scalar(sql::USER_COMPANY)
            .bind(&key.user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(D::db_err)?;
        sqlx::query(sql::REVOKE_API_KEY)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
        Self::changed(&mut tx, version, now, "api_key", id).await?;
        let own = json!({ "user": key.user_id });
        Self::audited(
            &mut tx,
            Some(version),
            now,
            audit,
            actions::API_KEY_REVOKE,
            Some(format!("api_key:{id}")),
            company.as_deref(),
            own,
        )
        .await?;
        let after = sqlx::query_as::<_, ApiKeyRow>(sql::GET_API_KEY)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(D::db_err)?
            .into_key();
        D::commit_write(tx, version).await?;
        Ok(after)
    }

    async fn list_api_keys(&self, user: &str) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(sql::LIST_API_KEYS)
            .bind(user)
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        Ok(rows.into_iter().map(ApiKeyRow::into_key).collect())
    }

    // ---- audit ----

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let l = &self.limits;
        let action = v::name(l, "action", &entry.action)?;
        v::attrs(l, &entry.details)?;
        let now = to_millis(self.clock.now());
        let mut conn = self.db.writer().acquire().await.map_err(D::db_err)?;
        let row = sqlx::query_as::<_, AuditRow>(sql::INSERT_AUDIT)
            .bind(now)
            .bind(&entry.actor)
            .bind(&entry.company)
            .bind(&action)
            .bind(&entry.target)
            .bind(entry.outcome.as_str())
            .bind(Json(&entry.details))
            .bind(None::<i64>)
            .fetch_one(&mut *conn)
            .await
            .map_err(D::db_err)?;
        Ok(row.into_entry())
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry, i64>> {
        let limit = self.limits.page(query.limit);
        let rows = sqlx::query_as::<_, AuditRow>(D::QUERY_AUDIT)
            .bind(&query.user)
            .bind(query.user.as_ref().map(|u| format!("user:{u}")))
            .bind(&query.company)
            .bind(&query.action)
            .bind(query.since.map(to_millis))
            .bind(query.until.map(to_millis))
            .bind(query.before)
            .bind(limit + 1)
            .bind(&query.customer)
            .fetch_all(self.db.reader())
            .await
            .map_err(D::db_err)?;
        let mut items: Vec<AuditEntry> = rows.into_iter().map(AuditRow::into_entry).collect();
        let next = page_cut(&mut items, limit)
            .then(|| items.last().map(|e| e.id))
            .flatten();
        Ok(Page { items, next })
    }
}

/// Drops the extra row fetched to detect a next page; true when there was one.
fn page_cut<T>(items: &mut Vec<T>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        true
    } else {
        false
    }
}
