//! Governed writes: the store is private to this module; reads go through [`Reader`], and
//! every write method of [`Gate`] takes an [`Authorized`] proof, whose only constructor is
//! [`Gate::decide`], and only for an Allow of the engine. A write that skips the decision
//! does not compile.
//!
//! A denied call answers 403 with the JSON error envelope and is audited with outcome
//! `denied`; an allowed write is audited by the store in its own transaction, and clears the
//! facts cache.

use std::str::FromStr;
use std::sync::Arc;

use axum::http::StatusCode;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use portcullis_engine::{EntityRef, Snapshot};
use portcullis_store::{
    AccessibleCompany, ApiKey, Audit, AuditEntry, AuditQuery, Company, Deletion, Facts, GrantQuery,
    Invitation, IssuedInvitation, NewAuditEntry, NewGrant, NewInvitation, NewUser, Outcome, Page,
    SignInStore, StoreError, User, UserPatch, UserQuery, UserStore, VisitorGrant,
};
use serde_json::{json, Map, Value};

use super::{store_error, Caller, FactsCache};
use crate::decision::{Grounds, Resolved};
use crate::http::error::ApiError;
use crate::state::Served;

/// An operation the policies govern. The folder's `[management.operations]` names the action
/// that decides it; an operation the folder does not map is refused.
pub trait Governed {
    /// The operation of the management API, e.g. `user.create`.
    const OPERATION: &'static str;
}

/// Proof that the engine allowed `op` for `caller`: only [`Gate::decide`] makes one, so a
/// write without a decision does not compile. Every field is given below, so what refuses
/// the forgery is their privacy (E0451), not a missing field:
///
/// ```compile_fail,E0451
/// use portcullis_server::manage::governance::{Authorized, Deactivate};
/// let forged = Authorized {
///     op: Deactivate { id: "alice".to_owned() },
///     target: "user:alice".to_owned(),
///     caller: String::new(),
///     company: String::new(),
///     decision_id: String::new(),
///     action: "user.deactivate".to_owned(),
/// };
/// ```
#[derive(Debug)]
pub struct Authorized<T> {
    op: T,
    target: String,
    caller: String,
    company: String,
    decision_id: String,
    /// The folder's action that decided it.
    action: String,
}

impl<T> Authorized<T> {
    /// The allowed operation.
    pub fn op(&self) -> &T {
        &self.op
    }

    fn audit(&self) -> Audit {
        Audit::by(self.caller.clone())
            .in_company(self.company.clone())
            .with("decision_id", self.decision_id.clone())
    }
}

macro_rules! governed {
    ($($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? } => $action:literal;)*) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone)]
            pub struct $name { $($(#[$fm])* #[doc = concat!("The `", stringify!($f), "` of the operation.")] pub $f: $t),* }
            impl Governed for $name {
                const OPERATION: &'static str = $action;
            }
        )*
    };
}

governed! {
    /// Create a user.
    CreateUser { new: NewUser } => "user.create";
    /// Invite someone.
    InviteUser { new: NewInvitation } => "user.invite";
    /// Revoke an invitation (decided as the invitation it revokes).
    RevokeInvitation { id: String } => "user.revoke_invitation";
    /// Change a user's role, flags, add-ons, group or attributes (one decision per kind of
    /// change, each with its own operation).
    SetRole { id: String, patch: UserPatch } => "user.set_role";
    /// Change a user's login, email or name.
    UpdateUser { id: String, patch: UserPatch } => "user.update";
    /// Replace the companies a user may switch to.
    SetCompanies { id: String, companies: Vec<AccessibleCompany> } => "user.set_companies";
    /// Move a user to another company (and, as `user.remove`, its removal where it is).
    MoveUser { id: String, company: String } => "user.move";
    /// Deactivate a user.
    Deactivate { id: String } => "user.deactivate";
    /// Reactivate a user.
    Reactivate { id: String } => "user.reactivate";
    /// Delete a user.
    DeleteUser { id: String, transfer_to: Option<String> } => "user.delete";
    /// Read a user.
    ReadUser { id: String } => "user.read";
    /// Read an invitation (decided as a read of the user it would make).
    ReadInvitation { id: String } => "user.read";
    /// Read a company.
    ReadCompany { id: String } => "company.read";
    /// Read the permission groups (decided on the caller's company).
    ReadGroup { name: String } => "group.read";
    /// Read a visitor grant (decided on the data owner's company).
    ReadGrant { id: String } => "grant.read";
    /// Request a visitor grant.
    RequestGrant { new: NewGrant } => "grant.request";
    /// Approve a grant.
    ApproveGrant { id: String } => "grant.approve";
    /// Refuse a grant.
    RefuseGrant { id: String } => "grant.refuse";
    /// Revoke a grant.
    RevokeGrant { id: String } => "grant.revoke";
    /// Read the audit trail.
    ReadAudit { query: AuditQuery } => "audit.export";
    /// Issue an API key for a user; `session` is the caller's session, if it signed in (a
    /// password reset revokes the key with it).
    CreateApiKey { user: String, name: String, session: Option<String> } => "user.api_keys";
    /// Revoke one of a user's API keys.
    RevokeApiKey { user: String, id: String } => "user.api_keys";
    /// List a user's API keys.
    ListApiKeys { user: String } => "user.read";
    /// Unlock a user locked out by failed sign-ins.
    UnlockUser { id: String } => "user.unlock";
    /// End every session of a user.
    RevokeUserSessions { id: String } => "user.sessions";
    /// List a user's sessions.
    ListUserSessions { id: String } => "user.read";
    /// Make a customer profile the session's active customer (the customs portal's forwarders).
    SwitchCustomer { session: String, customer: String } => "customer.switch";
    /// Create or revoke a customer's token link.
    ManageCompanyLink { company: String } => "link.create";

    // ---- companies and permission groups (`companies.rs`) ----
    /// Create a company (a sub-company of the caller's enterprise).
    CreateCompany { new: portcullis_store::NewCompany } => "company.create";
    /// Change a company's name, account type, user limit or attributes.
    UpdateCompany { id: String, patch: portcullis_store::CompanyPatch } => "company.update";
    /// Create a permission group.
    CreateGroup { new: portcullis_store::NewGroup } => "group.manage";
    /// Change a permission group's description or features.
    UpdateGroup { name: String, patch: portcullis_store::GroupPatch } => "group.manage";
    /// Delete a permission group no user is in.
    DeleteGroup { name: String } => "group.manage";
    /// Make a group the default of new users (`None`: no default).
    SetDefaultGroup { name: Option<String> } => "group.manage";
}

/// The resource of a governed decision: its uid and the entities it brings.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Entity type (bare or qualified).
    pub ty: String,
    /// Entity id.
    pub id: String,
    /// Cedar JSON entities: the resource and its ancestors.
    pub entities: Vec<Value>,
    /// The audit target, e.g. `user:alice`.
    pub target: String,
}

/// The store, reachable only through this gate.
#[derive(Debug)]
pub struct Gate {
    store: Arc<dyn UserStore>,
}

/// Read access to the store.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    store: &'a dyn UserStore,
}

impl Reader<'_> {
    /// See [`UserStore::get_user`].
    pub async fn get_user(&self, id: &str) -> Result<User, StoreError> {
        self.store.get_user(id).await
    }
    /// See [`UserStore::get_group`].
    pub async fn get_group(&self, name: &str) -> Result<portcullis_store::PermissionGroup, StoreError> {
        self.store.get_group(name).await
    }
    /// See [`UserStore::list_groups`].
    pub async fn list_groups(&self) -> Result<Vec<portcullis_store::PermissionGroup>, StoreError> {
        self.store.list_groups().await
    }
    /// See [`UserStore::list_companies`].
    pub async fn list_companies(
        &self,
        q: &portcullis_store::CompanyQuery,
    ) -> Result<Page<Company>, StoreError> {
        self.store.list_companies(q).await
    }
    /// See [`UserStore::get_company`].
    pub async fn get_company(&self, id: &str) -> Result<Company, StoreError> {
        self.store.get_company(id).await
    }
    /// See [`UserStore::company_facts`].
    pub async fn company_facts(&self, id: &str) -> Result<portcullis_store::CompanyFacts, StoreError> {
        self.store.company_facts(id).await
    }
    /// See [`UserStore::user_facts`].
    pub async fn user_facts(&self, id: &str) -> Result<Facts, StoreError> {
        self.store.user_facts(id, None).await
    }
    /// See [`UserStore::list_users`].
    pub async fn list_users(&self, q: &UserQuery) -> Result<Page<User>, StoreError> {
        self.store.list_users(q).await
    }
    /// See [`UserStore::get_grant`].
    pub async fn get_grant(&self, id: &str) -> Result<VisitorGrant, StoreError> {
        self.store.get_grant(id).await
    }
    /// See [`UserStore::list_grants`].
    pub async fn list_grants(&self, q: &GrantQuery) -> Result<Vec<VisitorGrant>, StoreError> {
        self.store.list_grants(q).await
    }
    /// See [`UserStore::active_grants_for_user`].
    pub async fn active_grants_for_user(&self, id: &str) -> Result<Vec<VisitorGrant>, StoreError> {
        self.store.active_grants_for_user(id).await
    }
    /// See [`UserStore::get_invitation`].
    pub async fn get_invitation(&self, id: &str) -> Result<Invitation, StoreError> {
        self.store.get_invitation(id).await
    }
    /// See [`UserStore::list_invitations`].
    pub async fn list_invitations(&self, company: &str, closed: bool) -> Result<Vec<Invitation>, StoreError> {
        self.store.list_invitations(company, closed).await
    }
    /// See [`UserStore::resolve_api_key`].
    pub async fn resolve_api_key(&self, key: &str) -> Result<ApiKey, StoreError> {
        self.store.resolve_api_key(key).await
    }
    /// See [`UserStore::version`].
    pub async fn version(&self) -> Result<i64, StoreError> {
        self.store.version().await
    }
    /// See [`UserStore::credentials`].
    pub async fn credentials(&self, login: &str) -> Result<(User, Option<String>), StoreError> {
        self.store.credentials(login).await
    }
    /// See [`UserStore::get_user_by_login`].
    pub async fn get_user_by_login(&self, login: &str) -> Result<User, StoreError> {
        self.store.get_user_by_login(login).await
    }
}

impl Authorized<UpdateUser> {
    /// The same proof for less: the allowed change without its e-mail address, which waits
    /// for its link ([`Gate::request_email_change`]).
    #[must_use]
    pub fn without_email(mut self) -> Self {
        self.op.patch.email = None;
        self
    }

    /// Whether it changes nothing (left with the e-mail address only, say).
    pub fn changes_nothing(&self) -> bool {
        self.op.patch == portcullis_store::UserPatch::default()
    }
}

/// What sign-in may touch: reads, and the sign-in half of the store (lockout, sessions,
/// reset links, two-factor). Those writes are authenticated by the credentials, session or
/// token they carry rather than decided by the policies, and change no fact a decision reads;
/// no management write is reachable from here.
#[derive(Clone, Copy)]
pub struct SignInAccess<'a> {
    /// Reads.
    pub read: Reader<'a>,
    /// The sign-in store.
    pub store: &'a dyn SignInStore,
}

impl std::fmt::Debug for SignInAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInAccess")
    }
}

fn entity_uid(s: &Snapshot, ty: &str, id: &str) -> Result<EntityUid, ApiError> {
    let qualified = if ty.contains("::") || s.namespace().is_empty() {
        ty.to_owned()
    } else {
        format!("{}::{ty}", s.namespace())
    };
    let t = EntityTypeName::from_str(&qualified)
        .map_err(|e| ApiError::internal(format!("entity type `{qualified}`: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// One decision of the management API for a stored caller `me`, on `resource` as the call
/// makes it: the caller's stored entities with the resource's, the slice of every held entity
/// the policies can reach from them, the context values its action declares, and the session's
/// second factor where the folder's `sign_in.mfa_context` is declared. Writes and reads decide
/// through it alike.
pub fn decide_for(
    served: &Served,
    me: &super::entities::Stored,
    mfa: bool,
    action: EntityUid,
    resource: &Resource,
    mut context: Map<String, Value>,
) -> Result<portcullis_engine::Decision, ApiError> {
    let s = &served.snapshot;
    let grounds = Grounds::caller(served, me, resource.entities.clone())
        .map_err(|e| ApiError::internal(format!("stored entities do not fit the schema: {e}")))?;
    let uids = Resolved {
        principal: entity_uid(s, &s.user_type(), &me.id)?,
        resource: entity_uid(s, &resource.ty, &resource.id)?,
        action,
    };
    context.retain(|k, _| s.context_declares(&uids.action, k));
    if let Some(name) = crate::auth::mfa_context(s, &uids.action) {
        context.insert(name, json!(mfa));
    }
    let answer = crate::decision::decide(served, &grounds, uids, context, None, false)?;
    Ok(answer.into_decision())
}

fn denied(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

impl Gate {
    /// Guards a store.
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        Self { store }
    }

    /// Prunes the change feed by the default retention: housekeeping of the feed, not a
    /// governed write (no user data changes).
    pub async fn prune_changes(&self) -> Result<u64, StoreError> {
        self.store
            .prune_changes(portcullis_store::ChangeRetention::default())
            .await
    }

    /// Reads.
    pub fn read(&self) -> Reader<'_> {
        Reader { store: &*self.store }
    }

    /// Writes the audit row of a decision the folder marks as audited (`[audit] decisions`):
    /// a row of the trail, no fact a decision reads.
    pub async fn record_decision(&self, entry: NewAuditEntry) -> Result<(), StoreError> {
        self.store.append_audit(entry).await.map(drop)
    }

    /// Sign-in's access to the store.
    pub fn sign_in(&self) -> SignInAccess<'_> {
        SignInAccess {
            read: self.read(),
            store: &*self.store,
        }
    }

    /// Decides `op` for `caller` on `resource` with `context`, as the folder's action of
    /// `T::OPERATION`: an Allow gives the proof; a Deny is audited (`denied`) and answered 403.
    pub async fn decide<T: Governed>(
        &self,
        served: &Served,
        cache: &FactsCache,
        caller: &Caller,
        op: T,
        resource: Resource,
        context: Map<String, Value>,
    ) -> Result<Authorized<T>, ApiError> {
        self.decide_as(served, cache, caller, T::OPERATION, op, resource, context)
            .await
    }

    /// [`Gate::decide`] as `operation` (one kind of change of a larger call, e.g.
    /// `user.set_attr.<name>`). `context` offers every value the server computed; the
    /// decision gets those the action's context type declares.
    #[expect(clippy::too_many_arguments, reason = "one decision's inputs, each distinct")]
    pub async fn decide_as<T: Governed>(
        &self,
        served: &Served,
        cache: &FactsCache,
        caller: &Caller,
        operation: &str,
        op: T,
        resource: Resource,
        context: Map<String, Value>,
    ) -> Result<Authorized<T>, ApiError> {
        let s = &served.snapshot;
        let mapped = s
            .model()
            .and_then(|m| m.operation(operation))
            .map(str::to_owned)
            .ok_or_else(|| {
                denied(format!(
                    "operation `{operation}` is not enabled by this policy folder: \
                     map it to an action in `[management.operations]` of roles.toml"
                ))
            })?;
        let me = cache
            .get(self.read(), &caller.id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the caller no longer exists",
                )
            })?;
        let action = served
            .resolver
            .action(s, &EntityRef::Text(mapped.clone()))
            // A folder without the action permits nothing through it: deny, as for any request.
            .map_err(|e| denied(format!("`{mapped}` is not an action of this policy folder: {e}")))?;
        let decision = decide_for(served, &me, caller.mfa(), action, &resource, context)?;
        let decision_id = crate::decision::decision_id();
        if decision.allowed() {
            return Ok(Authorized {
                op,
                target: resource.target.clone(),
                caller: caller.id.clone(),
                company: caller.company.clone(),
                decision_id,
                action: mapped,
            });
        }
        let reasons: Vec<String> = decision.reasons.iter().map(|r| r.id.clone()).collect();
        let mut details = Map::new();
        details.insert("decision_id".to_owned(), json!(decision_id));
        details.insert("reasons".to_owned(), json!(reasons));
        details.insert("policy_version".to_owned(), json!(&*decision.version));
        let entry = NewAuditEntry {
            actor: Some(caller.id.clone()),
            company: Some(caller.company.clone()),
            action: mapped.clone(),
            target: Some(resource.target.clone()),
            outcome: Outcome::Denied,
            details,
        };
        if let Err(e) = self.store.append_audit(entry).await {
            tracing::error!(error = %e, "cannot audit a denied call");
        }
        let why = if reasons.is_empty() {
            "no policy permits it".to_owned()
        } else {
            format!("forbidden by {}", reasons.join(", "))
        };
        Err(denied(format!(
            "`{mapped}` on `{}` is denied: {why}",
            resource.target
        )))
    }

    /// Ends a write: clears the cache, and audits a write the store refused (limit,
    /// conflict, bad transition…) with outcome `failed`.
    async fn done<T: Governed, R>(
        &self,
        cache: &FactsCache,
        a: &Authorized<T>,
        r: Result<R, StoreError>,
    ) -> Result<R, ApiError> {
        cache.clear();
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                if !matches!(e, StoreError::Backend(_)) {
                    let mut details = Map::new();
                    details.insert("decision_id".to_owned(), json!(a.decision_id));
                    details.insert(
                        "error".to_owned(),
                        json!({ "code": e.code(), "message": e.to_string() }),
                    );
                    let entry = NewAuditEntry {
                        actor: Some(a.caller.clone()),
                        company: Some(a.company.clone()),
                        action: a.action.clone(),
                        target: Some(a.target.clone()),
                        outcome: Outcome::Failed,
                        details,
                    };
                    if let Err(e) = self.store.append_audit(entry).await {
                        tracing::error!(error = %e, "cannot audit a failed write");
                    }
                }
                Err(store_error(e))
            }
        }
    }

    /// Creates a user.
    pub async fn create_user(&self, c: &FactsCache, a: Authorized<CreateUser>) -> Result<User, ApiError> {
        let r = self.store.create_user(a.op.new.clone(), &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Invites someone.
    pub async fn invite(
        &self,
        c: &FactsCache,
        a: Authorized<InviteUser>,
    ) -> Result<IssuedInvitation, ApiError> {
        let r = self.store.create_invitation(a.op.new.clone(), &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Revokes an invitation.
    pub async fn revoke_invitation(
        &self,
        c: &FactsCache,
        a: Authorized<RevokeInvitation>,
    ) -> Result<Invitation, ApiError> {
        let r = self.store.revoke_invitation(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Changes a user's role, flags, add-ons, group or scopes.
    pub async fn set_role(&self, c: &FactsCache, a: Authorized<SetRole>) -> Result<User, ApiError> {
        let r = self
            .store
            .update_user(&a.op.id, a.op.patch.clone(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Starts the e-mail change that an allowed `user.update` asked for, when the folder has
    /// changes verified: the address stays as it is until the link is used.
    pub async fn request_email_change(
        &self,
        a: &Authorized<UpdateUser>,
        ttl: time::Duration,
    ) -> Result<Option<(String, portcullis_store::Secret)>, ApiError> {
        let Some(Some(email)) = &a.op.patch.email else {
            return Ok(None);
        };
        let token = self
            .store
            .request_email_change(&a.op.id, email, ttl, &a.audit())
            .await
            .map_err(super::store_error)?;
        Ok(Some((email.clone(), token)))
    }

    /// Changes a user's login, email or name.
    pub async fn update_user(&self, c: &FactsCache, a: Authorized<UpdateUser>) -> Result<User, ApiError> {
        let r = self
            .store
            .update_user(&a.op.id, a.op.patch.clone(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Replaces a user's accessible companies.
    pub async fn set_companies(&self, c: &FactsCache, a: Authorized<SetCompanies>) -> Result<User, ApiError> {
        let r = self
            .store
            .set_accessible_companies(&a.op.id, a.op.companies.clone(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Moves a user.
    pub async fn move_user(&self, c: &FactsCache, a: Authorized<MoveUser>) -> Result<User, ApiError> {
        let r = self.store.move_user(&a.op.id, &a.op.company, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Deactivates a user.
    pub async fn deactivate(&self, c: &FactsCache, a: Authorized<Deactivate>) -> Result<User, ApiError> {
        let r = self.store.deactivate_user(&a.op.id, &a.audit()).await;
        let user = self.done(c, &a, r).await?;
        // Signed out everywhere: a later reactivation does not bring old sessions back.
        self.store
            .revoke_sessions(&a.op.id, None, &a.audit())
            .await
            .map_err(store_error)?;
        Ok(user)
    }

    /// Sets the session's active customer.
    pub async fn switch_customer(
        &self,
        a: Authorized<SwitchCustomer>,
    ) -> Result<portcullis_store::Session, ApiError> {
        let s = self.store.get_session(&a.op.session).await.map_err(store_error)?;
        self.store
            .update_session(&a.op.session, s.mfa, Some(a.op.customer.clone()))
            .await
            .map_err(store_error)
    }

    /// Clears a sign-in lock.
    pub async fn unlock(&self, c: &FactsCache, a: Authorized<UnlockUser>) -> Result<(), ApiError> {
        let r = self.store.unlock_user(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Ends every session of a user; returns how many.
    pub async fn revoke_user_sessions(
        &self,
        c: &FactsCache,
        a: Authorized<RevokeUserSessions>,
    ) -> Result<u64, ApiError> {
        let r = self.store.revoke_sessions(&a.op.id, None, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// A user's live sessions.
    pub async fn user_sessions(
        &self,
        a: Authorized<ListUserSessions>,
        idle: time::Duration,
    ) -> Result<Vec<portcullis_store::Session>, ApiError> {
        self.store
            .list_sessions(&a.op.id, idle)
            .await
            .map_err(store_error)
    }

    /// Creates a customer's token link; its token is returned once.
    pub async fn create_link(
        &self,
        c: &FactsCache,
        a: Authorized<ManageCompanyLink>,
    ) -> Result<(portcullis_store::CompanyLink, portcullis_store::Secret), ApiError> {
        let r = self.store.create_company_link(&a.op.company, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Revokes a customer's token link.
    pub async fn revoke_link(
        &self,
        c: &FactsCache,
        a: Authorized<ManageCompanyLink>,
        id: &str,
    ) -> Result<portcullis_store::CompanyLink, ApiError> {
        let r = self.store.revoke_company_link(id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Reactivates a user.
    pub async fn reactivate(&self, c: &FactsCache, a: Authorized<Reactivate>) -> Result<User, ApiError> {
        let r = self.store.reactivate_user(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, c: &FactsCache, a: Authorized<DeleteUser>) -> Result<Deletion, ApiError> {
        let r = self
            .store
            .delete_user(&a.op.id, a.op.transfer_to.as_deref(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Reads a user.
    pub async fn read_user(&self, a: Authorized<ReadUser>) -> Result<User, ApiError> {
        self.store.get_user(&a.op.id).await.map_err(store_error)
    }

    /// Requests a visitor grant.
    pub async fn request_grant(
        &self,
        c: &FactsCache,
        a: Authorized<RequestGrant>,
    ) -> Result<VisitorGrant, ApiError> {
        let r = self.store.request_grant(a.op.new.clone(), &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Approves a grant.
    pub async fn approve_grant(
        &self,
        c: &FactsCache,
        a: Authorized<ApproveGrant>,
    ) -> Result<VisitorGrant, ApiError> {
        let r = self.store.approve_grant(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Refuses a grant.
    pub async fn refuse_grant(
        &self,
        c: &FactsCache,
        a: Authorized<RefuseGrant>,
    ) -> Result<VisitorGrant, ApiError> {
        let r = self.store.refuse_grant(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Revokes a grant.
    pub async fn revoke_grant(
        &self,
        c: &FactsCache,
        a: Authorized<RevokeGrant>,
    ) -> Result<VisitorGrant, ApiError> {
        let r = self.store.revoke_grant(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Issues an API key; the key is in the answer once.
    pub async fn create_api_key(
        &self,
        c: &FactsCache,
        a: Authorized<CreateApiKey>,
    ) -> Result<portcullis_store::IssuedApiKey, ApiError> {
        let r = self
            .store
            .create_api_key(&a.op.user, &a.op.name, a.op.session.as_deref(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Revokes an API key of the user the proof names.
    pub async fn revoke_api_key(
        &self,
        c: &FactsCache,
        a: Authorized<RevokeApiKey>,
    ) -> Result<ApiKey, ApiError> {
        let keys = self.store.list_api_keys(&a.op.user).await.map_err(store_error)?;
        if !keys.iter().any(|k| k.id == a.op.id) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("api key `{}` not found", a.op.id),
            ));
        }
        let r = self.store.revoke_api_key(&a.op.id, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// A user's API keys (no secrets).
    pub async fn list_api_keys(&self, a: Authorized<ListApiKeys>) -> Result<Vec<ApiKey>, ApiError> {
        self.store.list_api_keys(&a.op.user).await.map_err(store_error)
    }

    /// Reads the audit trail.
    pub async fn query_audit(&self, a: Authorized<ReadAudit>) -> Result<Page<AuditEntry, i64>, ApiError> {
        self.store.query_audit(&a.op.query).await.map_err(store_error)
    }

    // ---- companies and permission groups ----

    /// Creates a company.
    pub async fn create_company(
        &self,
        c: &FactsCache,
        a: Authorized<CreateCompany>,
    ) -> Result<Company, ApiError> {
        let r = self.store.create_company(a.op.new.clone(), &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Changes a company.
    pub async fn update_company(
        &self,
        c: &FactsCache,
        a: Authorized<UpdateCompany>,
    ) -> Result<Company, ApiError> {
        let r = self
            .store
            .update_company(&a.op.id, a.op.patch.clone(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Creates a permission group.
    pub async fn create_group(
        &self,
        c: &FactsCache,
        a: Authorized<CreateGroup>,
    ) -> Result<portcullis_store::PermissionGroup, ApiError> {
        let r = self.store.create_group(a.op.new.clone(), &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Changes a permission group.
    pub async fn update_group(
        &self,
        c: &FactsCache,
        a: Authorized<UpdateGroup>,
    ) -> Result<portcullis_store::PermissionGroup, ApiError> {
        let r = self
            .store
            .update_group(&a.op.name, a.op.patch.clone(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Deletes a permission group.
    pub async fn delete_group(&self, c: &FactsCache, a: Authorized<DeleteGroup>) -> Result<(), ApiError> {
        let r = self.store.delete_group(&a.op.name, &a.audit()).await;
        self.done(c, &a, r).await
    }

    /// Sets the default permission group.
    pub async fn set_default_group(
        &self,
        c: &FactsCache,
        a: Authorized<SetDefaultGroup>,
    ) -> Result<(), ApiError> {
        let r = self
            .store
            .set_default_group(a.op.name.as_deref(), &a.audit())
            .await;
        self.done(c, &a, r).await
    }

    /// Accepts an invitation: the token is the credential and the store enforces it (single
    /// use, expiry, user limit); the policies decided the invitation when it was made.
    pub async fn accept_invitation(
        &self,
        c: &FactsCache,
        token: &str,
        acceptance: portcullis_store::Acceptance,
    ) -> Result<User, ApiError> {
        let r = self
            .store
            .accept_invitation(token, acceptance, &Audit::system())
            .await;
        c.clear();
        r.map_err(store_error)
    }
}
