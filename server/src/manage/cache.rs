//! The facts cache of stored users, its invalidation, and what a stored user brings to a
//! decision (its entities, the companies a request names, its visitor grants linked).
//!
//! Every write through this server clears the cache at once; writes through other instances
//! reach it through `LISTEN portcullis_changes` (PostgreSQL) and, as a fallback, by polling the
//! store's change version every [`super::POLL_INTERVAL`]. A load that raced a clear is not
//! kept (generation check), so a cleared entry never comes back stale.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use cedar_policy::{EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, SlotId};
use portcullis_engine::{RequestError, Slot};
use portcullis_store::StoreError;
use time::OffsetDateTime;

use super::entities::{self, Stored};
use super::governance::Reader;
use super::Manage;
use crate::http::error::ApiError;
use crate::slice::Inline;
use crate::state::{AppState, Served};

/// The template visitor grants link.
pub const GRANT_TEMPLATE: &str = "visitor-grant";

/// Stored users by id (`None`: not a stored user), cleared by every change.
///
/// Bounded (`user_cache`): principals are whatever ids clients send; the users asked about
/// most stay. While the store holds no user at all (a deployment deciding over a
/// static entities file with the default embedded store), no principal is looked up in it.
#[derive(Debug)]
pub struct FactsCache {
    generation: AtomicU64,
    users: crate::cache::Cache<String, Option<Arc<Stored>>>,
    /// Whether the store holds users, for one generation: `generation << 2 | state`, state 1
    /// none, 2 some (any other generation: not known).
    holds_users: AtomicU64,
}

const NO_USERS: u64 = 1;
const SOME_USERS: u64 = 2;

impl FactsCache {
    /// A cache of at most `capacity` users (and ids found not to be stored users).
    pub fn new(capacity: usize) -> Self {
        Self {
            generation: AtomicU64::new(0),
            users: crate::cache::Cache::new(capacity, &crate::cache::COUNTS.users),
            holds_users: AtomicU64::new(0),
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.users.clear();
    }

    /// True when the store is known to hold no user in this generation.
    fn known_empty(&self) -> bool {
        let generation = self.generation.load(Ordering::SeqCst);
        self.holds_users.load(Ordering::SeqCst) == (generation << 2 | NO_USERS)
    }

    /// Whether the store holds no user, asked once per generation.
    async fn store_is_empty(&self, read: &Reader<'_>) -> Result<bool, StoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let known = self.holds_users.load(Ordering::SeqCst);
        if known >> 2 == generation && known & 3 != 0 {
            return Ok(known & 3 == NO_USERS);
        }
        let q = portcullis_store::UserQuery {
            include_inactive: true,
            limit: Some(1),
            ..Default::default()
        };
        let empty = read.list_users(&q).await?.items.is_empty();
        // Kept under the generation it was read in: a change since makes it unknown again.
        let state = if empty { NO_USERS } else { SOME_USERS };
        self.holds_users.store(generation << 2 | state, Ordering::SeqCst);
        Ok(empty)
    }

    /// A stored user's facts, loaded on a miss.
    pub async fn get(&self, read: Reader<'_>, id: &str) -> Result<Option<Arc<Stored>>, StoreError> {
        // A store known to hold no user answers without a lookup (or a miss counted).
        if self.known_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.users.get(id) {
            return Ok(hit);
        }
        if self.store_is_empty(&read).await? {
            return Ok(None);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = match read.user_facts(id).await {
            Ok(mut f) => {
                entities::strip_reserved(&mut f.user);
                // A group in the store ("edit an existing Permission Group") decides with
                // its stored features alone; `roles.toml` gave only its first definition.
                if let Some(g) = &f.user.group {
                    match read.get_group(g).await {
                        Ok(group) => {
                            f.user
                                .attrs
                                .insert("group_features".to_owned(), serde_json::json!(group.features));
                            if !group.defined {
                                f.user
                                    .attrs
                                    .insert(entities::GROUP_NOT_DEFINED.to_owned(), serde_json::json!(true));
                            }
                        }
                        Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                let chain = entities::company_chain(&read, &f.user.company).await?;
                let grants = read.active_grants_for_user(id).await?;
                Some(Arc::new(Stored {
                    id: id.to_owned(),
                    user: f.user,
                    chain,
                    grants,
                    links: Mutex::new(None),
                    slices: Mutex::new(HashMap::new()),
                    entities: Mutex::new(None),
                }))
            }
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        // Kept only when no change cleared the cache since the load began. (A clear racing
        // between this check and the insert is caught by the next poll or notification,
        // which clears again.)
        if self.generation.load(Ordering::SeqCst) == generation {
            self.users.insert(id.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }
}

/// Clears the cache whenever the store's version moves (poll) or PostgreSQL notifies a commit.
/// The cache clears fully on any move rather than following `changes_since`, so it never
/// depends on change rows the feed may have pruned (`UserStore::prune_changes`).
/// `start` is the store's version when the server opened it (so no change after it is
/// missed).
pub fn spawn_invalidation(manage: Weak<Manage>, pg: Option<Arc<portcullis_store::PgStore>>, start: i64) {
    if let Some(pg) = pg {
        let weak = manage.clone();
        tokio::spawn(async move {
            loop {
                match pg.listen().await {
                    Ok(mut listener) => loop {
                        let got = listener.recv().await;
                        let Some(m) = weak.upgrade() else { return };
                        m.cache.clear();
                        if got.is_err() {
                            break;
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for store changes; polling only"),
                }
                if weak.upgrade().is_none() {
                    return;
                }
                tokio::time::sleep(super::POLL_INTERVAL * 4).await;
            }
        });
    }
    tokio::spawn(async move {
        let mut last = start;
        loop {
            tokio::time::sleep(super::POLL_INTERVAL).await;
            let Some(m) = manage.upgrade() else { return };
            match m.gate.read().version().await {
                Ok(v) => {
                    if v != last {
                        m.cache.clear();
                    }
                    last = v;
                }
                Err(e) => tracing::warn!(error = %e, "cannot poll the store's change version"),
            }
        }
    });
}

/// The stored companies a request names besides the principal's own chain (a company as the
/// resource, the company parents of its inline entities), each with its ancestors as the store
/// holds them (over any inline copy): `resource in Company::"…"` then decides as Cedar would
/// over everything the store holds, for a record of a company below another one too.
pub async fn named_companies(
    app: &AppState,
    served: &Served,
    inline: &[serde_json::Value],
    resource: &portcullis_engine::EntityRef,
    held: &[serde_json::Value],
) -> Result<Vec<serde_json::Value>, ApiError> {
    let Some(m) = app.manage.get() else {
        return Ok(Vec::new());
    };
    let s = &served.snapshot;
    let ty = s.company_type();
    let mut ids: Vec<String> = Vec::new();
    for e in inline {
        for p in e.get("parents").and_then(|p| p.as_array()).into_iter().flatten() {
            let p = p.get("__entity").unwrap_or(p);
            if p.get("type").and_then(|t| t.as_str()) == Some(ty.as_str()) {
                if let Some(id) = p.get("id").and_then(|i| i.as_str()) {
                    ids.push(id.to_owned());
                }
            }
        }
    }
    if let Ok(r) = served.resolver.entity(s, resource, Slot::Resource) {
        if r.type_name().to_string() == ty {
            ids.push(r.id().unescaped().to_owned());
        }
    }
    let holds = |id: &str, values: &[serde_json::Value]| {
        values
            .iter()
            .any(|v| entities::uid_of(v) == (Some(ty.as_str()), Some(id)))
    };
    let read = m.gate.read();
    let mut out: Vec<serde_json::Value> = Vec::new();
    for id in ids {
        if holds(&id, held) || holds(&id, &out) {
            continue;
        }
        match entities::company_chain(&read, &id).await {
            Ok(chain) => {
                for (c, f) in chain {
                    if !holds(&c, held) && !holds(&c, &out) {
                        out.push(entities::company_value(s, &c, &f));
                    }
                }
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(super::store_error(e)),
        }
    }
    Ok(out)
}

/// The stored user's own entities (user, company and its ancestors) under `served`, parsed
/// against its schema once per bundle and kept on the user's cached facts.
pub fn stored_entities(served: &Served, stored: &Stored) -> Result<Arc<Inline>, RequestError> {
    let kept = stored.entities.lock().ok().and_then(|k| k.clone());
    if let Some((generation, inline)) = kept {
        if generation == served.generation {
            return Ok(inline);
        }
    }
    let s = &served.snapshot;
    let values = entities::values(s, &stored.id, &stored.user, &stored.chain);
    let inline = Arc::new(Inline::parse_owned(values, s.described())?);
    if let Ok(mut k) = stored.entities.lock() {
        *k = Some((served.generation, inline.clone()));
    }
    Ok(inline)
}

fn entity(ty: &str, id: &str) -> Option<EntityUid> {
    let t = EntityTypeName::from_str(ty).ok()?;
    Some(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// The snapshot's policies plus one link of the visitor-grant template per location, actor
/// or (when the grant lists neither) company of each active grant; `None` without grants.
pub fn grant_policies(
    served: &Served,
    principal: &EntityUid,
    stored: &Stored,
) -> Result<Option<Arc<PolicySet>>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let active: Vec<_> = stored
        .grants
        .iter()
        .filter(|g| g.expires_at.is_none_or(|e| e > now))
        .collect();
    if active.is_empty() {
        return Ok(None);
    }
    let s = &served.snapshot;
    let version = s.version_arc();
    let ids: Vec<String> = active.iter().map(|g| g.id.clone()).collect();
    if let Some((v, linked, set)) = stored.links.lock().ok().and_then(|l| l.clone()) {
        // Kept links hold for the same policies and the same unexpired grants only.
        if v == version && linked == ids {
            return Ok(Some(set));
        }
    }
    let Some(template) = s
        .policy_set()
        .templates()
        .find(|t| t.annotation("id") == Some(GRANT_TEMPLATE))
        .map(|t| t.id().clone())
    else {
        return Ok(None);
    };
    let mut set = s.policy_set().clone();
    for g in active {
        let mut targets: Vec<EntityUid> = g
            .locations
            .iter()
            .chain(g.actors.iter())
            .filter_map(|r| entity(&r.ty, &r.id))
            .collect();
        if targets.is_empty() {
            targets.extend(entity(&s.company_type(), &g.company));
        }
        for (n, t) in targets.into_iter().enumerate() {
            let vals = HashMap::from([(SlotId::principal(), principal.clone()), (SlotId::resource(), t)]);
            let id = PolicyId::new(format!("grant:{}:{n}", g.id));
            set.link(template.clone(), id, vals)
                .map_err(|e| ApiError::internal(format!("cannot link grant `{}`: {e}", g.id)))?;
        }
    }
    let set = Arc::new(set);
    if let Ok(mut l) = stored.links.lock() {
        *l = Some((version, ids, set.clone()));
    }
    Ok(Some(set))
}
