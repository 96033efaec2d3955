//! The [`UserStore`] trait: every operation the management API, the CLI and the authorizer need,
//! implemented once per backend ([`crate::SqliteStore`], [`crate::PgStore`]) and tested by one
//! conformance suite against both.
//!
//! Every mutating method takes an [`Audit`] and writes its audit row, its change-feed rows and
//! its change in one transaction: it all commits or none of it does. Authorization is not the
//! store's business: the governance layer decides before it calls a write.

use async_trait::async_trait;

use crate::error::Result;
use crate::model::*;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, one file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The user store.
#[async_trait]
pub trait UserStore: crate::signin::SignInStore + Send + Sync + std::fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Applies the pending migrations of this backend.
    async fn migrate(&self) -> Result<()>;

    // ---- change feed ----

    /// The current change version: it grows with every committed write.
    async fn version(&self) -> Result<i64>;

    /// The entities changed by writes after `version`, oldest first, at most `limit`; a cursor
    /// below [`UserStore::changes_horizon`] is answered `Expired` (its rows were pruned: the
    /// reader must drop everything it cached).
    async fn changes_since(&self, version: i64, limit: u32) -> Result<Vec<Change>>;

    // ---- change-feed pruning (branch store-gaps; migration 0003_change_horizon) ----

    /// Deletes the change rows `keep` no longer keeps and moves the horizon past them;
    /// returns how many rows went. Not a write of the feed: the version does not move.
    async fn prune_changes(&self, keep: ChangeRetention) -> Result<u64>;

    /// The highest version whose change rows were pruned (0: none): `changes_since(v)`
    /// answers completely only for `v >= changes_horizon()`.
    async fn changes_horizon(&self) -> Result<i64>;

    // ---- companies ----

    /// Creates a company.
    async fn create_company(&self, new: NewCompany, audit: &Audit) -> Result<Company>;

    /// A company by id.
    async fn get_company(&self, id: &str) -> Result<Company>;

    /// Companies by id, a page at a time.
    async fn list_companies(&self, query: &CompanyQuery) -> Result<Page<Company>>;

    /// Changes a company's name, account type, user limit or attributes.
    async fn update_company(&self, id: &str, patch: CompanyPatch, audit: &Audit) -> Result<Company>;

    /// The facts the engine needs about a company.
    async fn company_facts(&self, id: &str) -> Result<crate::CompanyFacts>;

    // ---- users ----

    /// Creates a user, enforcing its company's user limit atomically; gives it the default
    /// permission group when it names none.
    async fn create_user(&self, new: NewUser, audit: &Audit) -> Result<User>;

    /// A user by id.
    async fn get_user(&self, id: &str) -> Result<User>;

    /// A user by login.
    async fn get_user_by_login(&self, login: &str) -> Result<User>;

    /// Users by id, a page at a time.
    async fn list_users(&self, query: &UserQuery) -> Result<Page<User>>;

    /// The facts the engine needs about a user acting in its own company (`acting_in: None`) or
    /// in one of its accessible companies (a context switch).
    async fn user_facts(&self, id: &str, acting_in: Option<&str>) -> Result<Facts>;

    /// Changes a user's login, email, name, role, flags, add-ons, group or attributes.
    async fn update_user(&self, id: &str, patch: UserPatch, audit: &Audit) -> Result<User>;

    /// Deactivates a user: it keeps its data and audit history but is denied everything.
    async fn deactivate_user(&self, id: &str, audit: &Audit) -> Result<User>;

    /// Reactivates a user, within its company's user limit.
    async fn reactivate_user(&self, id: &str, audit: &Audit) -> Result<User>;

    /// Deletes a user; its audit rows stay. `transfer_to` names the user of the same company that
    /// receives its records (recorded in the audit row and returned; moving the records is the
    /// application's).
    async fn delete_user(&self, id: &str, transfer_to: Option<&str>, audit: &Audit) -> Result<Deletion>;

    /// Moves a user to another company of the same enterprise (within that company's limit).
    async fn move_user(&self, id: &str, company: &str, audit: &Audit) -> Result<User>;

    /// Replaces the companies a user may switch to besides its own.
    async fn set_accessible_companies(
        &self,
        id: &str,
        companies: Vec<AccessibleCompany>,
        audit: &Audit,
    ) -> Result<User>;

    /// Sets (or clears) the PHC string of a user's password; hashing is the caller's.
    async fn set_password_hash(&self, id: &str, phc: Option<String>, audit: &Audit) -> Result<()>;

    /// A user and its password hash, by login, for the login path.
    async fn credentials(&self, login: &str) -> Result<(User, Option<String>)>;

    // ---- permission groups ----

    /// Creates a permission group (if it is the default, the old default stops being one).
    async fn create_group(&self, new: NewGroup, audit: &Audit) -> Result<PermissionGroup>;

    /// A permission group by name.
    async fn get_group(&self, name: &str) -> Result<PermissionGroup>;

    /// All permission groups, by name.
    async fn list_groups(&self) -> Result<Vec<PermissionGroup>>;

    /// Changes a group's description or features.
    async fn update_group(&self, name: &str, patch: GroupPatch, audit: &Audit) -> Result<PermissionGroup>;

    /// Makes a group the single default (`None`: no default).
    async fn set_default_group(&self, name: Option<&str>, audit: &Audit) -> Result<()>;

    /// Deletes a group no user is in.
    async fn delete_group(&self, name: &str, audit: &Audit) -> Result<()>;

    /// Groups written before a group's stored features defined it entirely (they held only
    /// what they added to the policy folder's group of the same name): each is to be
    /// defined once with [`UserStore::define_group`].
    async fn undefined_groups(&self) -> Result<Vec<PermissionGroup>>;

    /// Writes the whole definition of a group [`UserStore::undefined_groups`] listed; `false`
    /// when it was defined already (by another instance, say), and then nothing changes.
    async fn define_group(&self, name: &str, features: Vec<String>, audit: &Audit) -> Result<bool>;

    // ---- visitor grants ----

    /// Records a user's request to read another company's data.
    async fn request_grant(&self, new: NewGrant, audit: &Audit) -> Result<VisitorGrant>;

    /// A grant by id.
    async fn get_grant(&self, id: &str) -> Result<VisitorGrant>;

    /// Approves a requested grant; the audit's actor is recorded as the decider.
    async fn approve_grant(&self, id: &str, audit: &Audit) -> Result<VisitorGrant>;

    /// Refuses a requested grant; the audit's actor is recorded as the decider.
    async fn refuse_grant(&self, id: &str, audit: &Audit) -> Result<VisitorGrant>;

    /// Revokes an approved grant or withdraws a request.
    async fn revoke_grant(&self, id: &str, audit: &Audit) -> Result<VisitorGrant>;

    /// Grants matching a query, newest first.
    async fn list_grants(&self, query: &GrantQuery) -> Result<Vec<VisitorGrant>>;

    /// The grants a user holds now: approved and not expired (by the store's clock).
    async fn active_grants_for_user(&self, user: &str) -> Result<Vec<VisitorGrant>>;

    // ---- invitations ----

    /// Creates an invitation; its token is returned once and stored hashed.
    async fn create_invitation(&self, new: NewInvitation, audit: &Audit) -> Result<IssuedInvitation>;

    /// Accepts an invitation by token: once, before it expires; creates the user (within the
    /// company's user limit) with the pre-assigned role, flags, add-ons, group and attributes.
    /// A taken id, login or email (`Conflict`) revokes the invitation, so its token cannot be
    /// replayed to learn which logins exist; a reached limit leaves it usable.
    async fn accept_invitation(&self, token: &str, acceptance: Acceptance, audit: &Audit) -> Result<User>;

    /// Revokes a pending invitation.
    async fn revoke_invitation(&self, id: &str, audit: &Audit) -> Result<Invitation>;

    /// An invitation by id.
    async fn get_invitation(&self, id: &str) -> Result<Invitation>;

    /// A company's invitations, newest first; only pending ones unless `include_closed`.
    async fn list_invitations(&self, company: &str, include_closed: bool) -> Result<Vec<Invitation>>;

    // ---- API keys ----

    /// Creates an API key for a user; the key is returned once and stored hashed. `session`
    /// is the session it was made with, if any: a password reset revokes the keys of the
    /// sessions it ends.
    async fn create_api_key(
        &self,
        user: &str,
        name: &str,
        session: Option<&str>,
        audit: &Audit,
    ) -> Result<IssuedApiKey>;

    /// The live key a plaintext key belongs to (hashes compared in constant time).
    async fn resolve_api_key(&self, key: &str) -> Result<ApiKey>;

    /// Revokes an API key.
    async fn revoke_api_key(&self, id: &str, audit: &Audit) -> Result<ApiKey>;

    /// A user's API keys, revoked ones included.
    async fn list_api_keys(&self, user: &str) -> Result<Vec<ApiKey>>;

    // ---- audit ----

    /// Appends an entry that records no store write (a login, a denied attempt...).
    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry>;

    /// Audit entries matching the filters, newest first, a page at a time.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry, i64>>;
}
