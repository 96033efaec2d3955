//! Reads decided like writes (issue 13, "Reads are decided too").
//!
//! Every list of the management API is filtered row by row by the read action of its rows:
//! users by `user.read` on each user, invitations by `user.read` on the user each would make,
//! companies by `company.read`, permission groups by `group.read` (on the caller's company:
//! groups belong to the installation), visitor grants by `grant.read` (on the data owner's
//! company, with the requester's in the context). A folder that does not declare a read action
//! permits no row through it.
//!
//! An id the caller may not read answers exactly as an id that does not exist (404, same
//! body), so ids of other tenants cannot be probed: the handlers look their targets up through
//! [`Reads`] before deciding what they do to them.
//!
//! A hidden row is not audited (a list would log one denial per row); the decisions are the
//! engine's, over the same slice as every other decision.

use std::sync::Arc;

use portcullis_engine::EntityRef;
use portcullis_store::{Company, Invitation, PermissionGroup, StoreError, User, VisitorGrant};
use serde_json::{json, Map, Value};

use super::entities::{self, Stored};
use super::governance::{Governed, ReadCompany, ReadGrant, ReadGroup, ReadInvitation, ReadUser, Resource};
use super::{store_error, Caller, Manage};
use crate::http::error::ApiError;
use crate::state::{AppState, Served};

/// The read decisions of one call: the caller's facts, loaded once.
#[derive(Debug)]
pub struct Reads {
    /// The store.
    pub m: Arc<Manage>,
    /// The bundle the call is decided under.
    pub served: Arc<Served>,
    caller: Caller,
    me: Arc<Stored>,
    accessible: Vec<String>,
}

/// The answer to an id that does not exist, or that the caller may not read: the store's own
/// not-found error, so both are the same bytes.
pub fn not_found(what: &'static str, id: &str) -> ApiError {
    store_error(StoreError::NotFound {
        what,
        id: id.to_owned(),
    })
}

impl Reads {
    /// The caller's read decisions under the served bundle.
    pub async fn new(app: &AppState, caller: &Caller) -> Result<Self, ApiError> {
        let (m, served) = super::targets::parts(app)?;
        let me = super::targets::stored(&m, &caller.id).await?;
        let accessible = m
            .gate
            .read()
            .get_user(&caller.id)
            .await
            .map_err(store_error)?
            .accessible
            .into_iter()
            .map(|a| a.company)
            .collect();
        Ok(Self {
            m,
            served,
            caller: caller.clone(),
            me,
            accessible,
        })
    }

    /// Whether the engine allows `T` on `resource` for the caller. A folder without the
    /// action, or a request that does not fit its schema, allows nothing.
    pub fn allows<T: Governed>(&self, resource: &Resource, context: Map<String, Value>) -> bool {
        match self.decide::<T>(resource, context) {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::debug!(operation = T::OPERATION, target = %resource.target, error = ?e, "a read was not decided");
                false
            }
        }
    }

    fn decide<T: Governed>(
        &self,
        resource: &Resource,
        context: Map<String, Value>,
    ) -> Result<bool, ApiError> {
        let served = &*self.served;
        let s = &served.snapshot;
        // An operation the folder does not map reads nothing.
        let Some(mapped) = s.model().and_then(|m| m.operation(T::OPERATION)) else {
            return Ok(false);
        };
        let action = served
            .resolver
            .action(s, &EntityRef::Text(mapped.to_owned()))
            .map_err(ApiError::from)?;
        super::governance::decide_for(served, &self.me, self.caller.mfa(), action, resource, context)
            .map(|d| d.allowed())
    }

    /// A stored user the caller may read (`user.read`), or 404 as for a missing one.
    pub async fn user(&self, id: &str) -> Result<Arc<Stored>, ApiError> {
        let target = super::targets::stored(&self.m, id).await?;
        let r = super::targets::user_resource(&self.served, &target);
        if self.allows::<ReadUser>(&r, Map::new()) {
            Ok(target)
        } else {
            Err(not_found("user", id))
        }
    }

    /// The users of a page the caller may read.
    pub async fn users(&self, page: Vec<User>) -> Result<Vec<User>, ApiError> {
        let mut out = Vec::with_capacity(page.len());
        for u in page {
            let Some(target) = self
                .m
                .cache
                .get(self.m.gate.read(), &u.id)
                .await
                .map_err(store_error)?
            else {
                continue;
            };
            let r = super::targets::user_resource(&self.served, &target);
            if self.allows::<ReadUser>(&r, Map::new()) {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// The resource of an invitation: the user it would make.
    async fn invitation_resource(&self, inv: &Invitation) -> Result<Resource, ApiError> {
        let f = super::targets::invited_facts(inv);
        super::targets::prospective(&self.m, &self.served, &format!("invitation:{}", inv.email), &f).await
    }

    /// An invitation the caller may read, or 404 as for a missing one.
    pub async fn invitation(&self, id: &str) -> Result<Invitation, ApiError> {
        let inv = self.m.gate.read().get_invitation(id).await.map_err(store_error)?;
        let r = self.invitation_resource(&inv).await?;
        if self.allows::<ReadInvitation>(&r, Map::new()) {
            Ok(inv)
        } else {
            Err(not_found("invitation", id))
        }
    }

    /// The invitations the caller may read.
    pub async fn invitations(&self, list: Vec<Invitation>) -> Result<Vec<Invitation>, ApiError> {
        let mut out = Vec::with_capacity(list.len());
        for inv in list {
            let r = self.invitation_resource(&inv).await?;
            if self.allows::<ReadInvitation>(&r, Map::new()) {
                out.push(inv);
            }
        }
        Ok(out)
    }

    /// A company with its ancestors as the resource of a read.
    async fn company_resource(&self, id: &str) -> Result<Resource, ApiError> {
        let s = &self.served.snapshot;
        let chain = entities::company_chain(&self.m.gate.read(), id)
            .await
            .map_err(store_error)?;
        Ok(Resource {
            ty: s.company_type(),
            id: id.to_owned(),
            entities: chain
                .iter()
                .map(|(c, f)| entities::company_value(s, c, f))
                .collect(),
            target: format!("company:{id}"),
        })
    }

    /// The context of `company.read`: whether the caller may switch to the company (a fact
    /// of the store), under `[management] switchable_context`, where the action declares it.
    fn company_context(&self, id: &str) -> Map<String, Value> {
        let mut c = Map::new();
        // Under the name the folder gives it; the decision keeps it where the action declares it.
        if let Some(name) = self
            .served
            .snapshot
            .model()
            .and_then(|m| m.switchable_context.clone())
        {
            c.insert(name, json!(self.accessible.iter().any(|a| a == id)));
        }
        c
    }

    /// Whether the caller may read company `id` (`company.read`); a missing company is not
    /// readable.
    pub async fn company_readable(&self, id: &str) -> Result<bool, ApiError> {
        let r = match self.company_resource(id).await {
            Ok(r) => r,
            Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(self.allows::<ReadCompany>(&r, self.company_context(id)))
    }

    /// Company `id` when the caller may read it, or 404 as for a missing one.
    pub async fn company(&self, id: &str) -> Result<Company, ApiError> {
        if !self.company_readable(id).await? {
            return Err(not_found("company", id));
        }
        self.m.gate.read().get_company(id).await.map_err(store_error)
    }

    /// The companies the caller may read.
    pub async fn companies(&self, list: Vec<Company>) -> Result<Vec<Company>, ApiError> {
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            if self.company_readable(&c.id).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The permission groups the caller may read (`group.read` on the caller's company).
    pub fn groups(&self, list: Vec<PermissionGroup>) -> Vec<PermissionGroup> {
        let s = &self.served.snapshot;
        let r = Resource {
            ty: s.company_type(),
            id: self.caller.company.clone(),
            entities: self
                .me
                .chain
                .iter()
                .map(|(c, f)| entities::company_value(s, c, f))
                .collect(),
            target: format!("company:{}", self.caller.company),
        };
        // Every group is read on the same resource: one decision answers for each row.
        if self.allows::<ReadGroup>(&r, Map::new()) {
            // A group not defined yet holds the folder's features too: shown as its members
            // hold them.
            list.into_iter()
                .map(|mut g| {
                    if !g.defined {
                        for f in s.group_features(&g.name) {
                            if !g.features.contains(&f) {
                                g.features.push(f);
                            }
                        }
                    }
                    g
                })
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Whether the caller may read grant `g` (`grant.read`).
    async fn grant_readable(&self, g: &VisitorGrant) -> Result<bool, ApiError> {
        let r = super::targets::company_resource(&self.m, &self.served, &g.company, Some(&g.from_company))
            .await?;
        let ctx = super::targets::requester_context(&self.served, g);
        Ok(self.allows::<ReadGrant>(&r, ctx))
    }

    /// A grant the caller may read, or 404 as for a missing one.
    pub async fn grant(&self, id: &str) -> Result<VisitorGrant, ApiError> {
        let g = self.m.gate.read().get_grant(id).await.map_err(store_error)?;
        if self.grant_readable(&g).await? {
            Ok(g)
        } else {
            Err(not_found("visitor grant", id))
        }
    }

    /// The grants the caller may read.
    pub async fn grants(&self, list: Vec<VisitorGrant>) -> Result<Vec<VisitorGrant>, ApiError> {
        let mut out = Vec::with_capacity(list.len());
        for g in list {
            if self.grant_readable(&g).await? {
                out.push(g);
            }
        }
        Ok(out)
    }
}
