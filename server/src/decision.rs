//! The decision pipeline: every question of every entry point is decided by [`decide`].
//!
//! `/v1/authorize` (with and without `explain`), its batch, `/v1/permissions`, AuthZEN's
//! evaluations and searches go through [`ask`]: names resolved under one served bundle
//! ([`Resolved`]), then what the decision is made over gathered by [`ground`] (a stored user's
//! entities and visitor grants from the user store, the entities the request carries, a
//! session's view), then [`decide`]. The management API's gate and sign-in's checks hold their
//! stored caller already and build its [`Grounds`] with [`Grounds::caller`]; they decide
//! through the same [`decide`].
//!
//! The decision service, with [`crate::state`]: the adapters above call it
//! ([`crate::http::decision`] for the decision API); it may import the other services, the
//! error envelope ([`crate::http::error`]), the store and the engine, never an HTTP adapter
//! (`tests/integration/layers.rs` checks). It also makes decision ids ([`decision_id`]),
//! which the gate's audit rows and the request ids use.
//!
//! [`decide`] decides a question with no entities beside the held ones over the whole held
//! store when the bundle keeps it whole ([`Served::whole`]); otherwise it builds the slice of
//! every held entity the policies can reach from the request
//! ([`crate::slice::build_slice`]), or takes it from where [`Grounds`] says it may be kept (the
//! bundle's cache, a batch's, a stored user's), and evaluates with the folder's policies or,
//! for a visitor, with its grants linked.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cedar_policy::{EntityUid, PolicySet};
use portcullis_engine::{Decision, EntityRef, Prepared, RequestError, Slot};
use portcullis_store::Session;
use serde_json::{Map, Value};

use crate::http::error::ApiError;
use crate::manage::entities::{self, Stored};
use crate::slice::{context_refs, Inline, Roots};
use crate::state::{AppState, CachedSlice, Served};

/// A question as an entry point receives it.
#[derive(Debug)]
pub struct Question<'a> {
    /// Who asks (a session's user when `session` is given).
    pub principal: &'a EntityRef,
    /// What they want to do.
    pub action: &'a EntityRef,
    /// On what.
    pub resource: &'a EntityRef,
    /// The request context.
    pub context: Map<String, Value>,
    /// The entities the request carries.
    pub given: Given<'a>,
    /// The session the question is asked in, if any.
    pub session: Option<&'a Session>,
}

/// The entities a question carries.
#[derive(Debug)]
pub enum Given<'a> {
    /// Parsed once for several questions (a batch's shared entities, an AuthZEN request's),
    /// with the JSON they were parsed from.
    Shared(&'a Inline, &'a [Value]),
    /// This question's own, as JSON.
    Own(Vec<Value>),
}

impl Given<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Given::Shared(inline, values) => inline.is_empty() && values.is_empty(),
            Given::Own(values) => values.is_empty(),
        }
    }

    fn into_values(self) -> Vec<Value> {
        match self {
            Given::Shared(_, values) => values.to_vec(),
            Given::Own(values) => values,
        }
    }
}

/// A question's principal, action and resource, resolved under one served bundle.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The principal.
    pub principal: EntityUid,
    /// The action, declared by the schema.
    pub action: EntityUid,
    /// The resource.
    pub resource: EntityUid,
}

impl Resolved {
    /// Resolves the three names of a question; errors are the engine's.
    pub fn of(
        served: &Served,
        principal: &EntityRef,
        action: &EntityRef,
        resource: &EntityRef,
    ) -> Result<Self, RequestError> {
        let s = &served.snapshot;
        Ok(Self {
            principal: served.resolver.entity(s, principal, Slot::Principal)?,
            action: served.resolver.action(s, action)?,
            resource: served.resolver.entity(s, resource, Slot::Resource)?,
        })
    }
}

/// The answer of [`decide`]: a decision, or with `explain` the decision explained.
#[derive(Debug)]
pub enum Answer {
    /// The decision.
    Decided(Decision),
    /// The decision with why.
    Explained(portcullis_engine::explain::Explanation),
}

impl Answer {
    /// The decision.
    pub fn decision(&self) -> &Decision {
        match self {
            Answer::Decided(d) => d,
            Answer::Explained(e) => &e.decision,
        }
    }

    /// The decision, taken.
    pub fn into_decision(self) -> Decision {
        match self {
            Answer::Decided(d) => d,
            Answer::Explained(e) => e.decision,
        }
    }
}

/// Slices already built in one batch, by principal, action and resource (for checks that
/// share the batch's entities).
pub type BatchSlices = HashMap<(EntityUid, EntityUid, EntityUid), Arc<CachedSlice>>;

/// Where a question's slice may be kept and found again: only where the slice is the same
/// for every question with that principal, action and resource.
#[derive(Debug)]
enum Keep {
    /// Nowhere: built for this question alone.
    Nowhere,
    /// In the served bundle's cache (no entities beside the held ones).
    Bundle,
    /// In the batch's map (the batch's shared entities beside the held ones).
    Batch,
    /// With the stored user's facts (its own entities beside the held ones).
    User(Arc<Stored>),
}

/// The entities beside the held ones, borrowed or shared.
#[derive(Debug)]
enum Beside<'a> {
    Borrowed(&'a Inline),
    Shared(Arc<Inline>),
}

impl std::ops::Deref for Beside<'_> {
    type Target = Inline;

    fn deref(&self) -> &Inline {
        match self {
            Beside::Borrowed(i) => i,
            Beside::Shared(i) => i,
        }
    }
}

static NO_ENTITIES: LazyLock<Inline> = LazyLock::new(Inline::default);

/// What a decision is made over besides the request: the entities beside those the server
/// holds (the request's, a stored user's), the policies (the folder's, or a visitor's with
/// its grants linked) and where the slice may be kept.
#[derive(Debug)]
pub struct Grounds<'a> {
    beside: Beside<'a>,
    policies: Option<Arc<PolicySet>>,
    keep: Keep,
}

impl Grounds<'_> {
    /// The entities beside the held ones.
    pub fn beside(&self) -> &Inline {
        &self.beside
    }

    /// The policy set with a visitor's grants linked, when it holds any.
    pub fn policies(&self) -> Option<&PolicySet> {
        self.policies.as_deref()
    }
}

impl Grounds<'static> {
    /// The grounds of a stored caller the server already holds (the management API's gate,
    /// sign-in): its user and company entities, with `extra` (the server's own entities of
    /// the resource, which win) merged in; the folder's policies.
    pub fn caller(served: &Served, me: &Stored, extra: Vec<Value>) -> Result<Self, RequestError> {
        let beside = if extra.is_empty() {
            crate::manage::cache::stored_entities(served, me)?
        } else {
            let s = &served.snapshot;
            let mut values = entities::values(s, &me.id, &me.user, &me.chain);
            entities::merge(&mut values, extra);
            Arc::new(Inline::parse_cached(values, s.described(), Some(&served.inline))?)
        };
        Ok(Grounds {
            beside: Beside::Shared(beside),
            policies: None,
            keep: Keep::Nowhere,
        })
    }
}

/// The stored user `principal` names, when the server has a user store and holds one.
pub async fn stored_user(
    app: &AppState,
    served: &Served,
    principal: &EntityUid,
) -> Result<Option<Arc<Stored>>, ApiError> {
    let Some(m) = app.manage.get() else {
        return Ok(None);
    };
    if !served.resolver.is_user(principal) {
        return Ok(None);
    }
    m.cache
        .get(m.gate.read(), principal.id().unescaped())
        .await
        .map_err(crate::manage::store_error)
}

/// Gathers what a question is decided over.
///
/// A stored user as principal: its user and company entities from the store win over any
/// the request carries for the same ids (a caller never supplies a fact a policy trusts), the
/// stored companies the request names join with their stored ancestors, and its visitor
/// grants are linked. With nothing else beside them, its entities are parsed once per bundle
/// and its slices kept with its facts. A session adds what it knows to the context and, while
/// it acts for a customer profile the folder carries on the user, to its user's entity
/// ([`crate::auth::session_overlay`]).
pub async fn ground<'a>(
    app: &AppState,
    served: &Served,
    uids: &Resolved,
    resource: &EntityRef,
    given: Given<'a>,
    session: Option<&Session>,
    context: &mut Map<String, Value>,
) -> Result<Grounds<'a>, ApiError> {
    let s = &served.snapshot;
    let schema = s.described();
    let Some(stored) = stored_user(app, served, &uids.principal).await? else {
        let mut values = match given {
            Given::Shared(inline, _) if session.is_none() => {
                let keep = if inline.is_empty() {
                    Keep::Bundle
                } else {
                    Keep::Batch
                };
                return Ok(Grounds {
                    beside: Beside::Borrowed(inline),
                    policies: None,
                    keep,
                });
            }
            given => given.into_values(),
        };
        if let Some(session) = session {
            crate::auth::session_overlay(served, session, &uids.action, context, &mut values);
        }
        if values.is_empty() {
            return Ok(Grounds {
                beside: Beside::Borrowed(&NO_ENTITIES),
                policies: None,
                keep: Keep::Bundle,
            });
        }
        let inline = Inline::parse_cached(values, schema, Some(&served.inline))?;
        return Ok(Grounds {
            beside: Beside::Shared(Arc::new(inline)),
            policies: None,
            keep: Keep::Nowhere,
        });
    };
    let policies = crate::manage::cache::grant_policies(served, &uids.principal, &stored)?;
    // A session changes the user's entity only while it acts for a customer profile the folder
    // carries on the user (`sign_in.switch_attribute`); otherwise it adds to the context alone,
    // and the user's entities and kept slices serve it as they serve the user.
    let reshapes = session.is_some_and(|sess| {
        sess.switched_to.is_some() && s.model().is_some_and(|m| m.sign_in.switch_attribute.is_some())
    });
    let alone = given.is_empty() && !reshapes;
    let keep = |stored: Arc<Stored>| match &policies {
        None if alone => Keep::User(stored),
        _ => Keep::Nowhere,
    };
    let company = served.resolver.is_company(&uids.resource);
    if alone && !company {
        if let Some(session) = session {
            crate::auth::session_overlay(served, session, &uids.action, context, &mut []);
        }
        let beside = crate::manage::cache::stored_entities(served, &stored)?;
        return Ok(Grounds {
            beside: Beside::Shared(beside),
            keep: keep(stored),
            policies,
        });
    }
    let mut values = given.into_values();
    let mut facts = entities::values(s, &stored.id, &stored.user, &stored.chain);
    let named = crate::manage::cache::named_companies(app, served, &values, resource, &facts).await?;
    facts.extend(named);
    entities::merge(&mut values, facts);
    if let Some(session) = session {
        crate::auth::session_overlay(served, session, &uids.action, context, &mut values);
    }
    let inline = Inline::parse_cached(values, schema, Some(&served.inline))?;
    Ok(Grounds {
        beside: Beside::Shared(Arc::new(inline)),
        keep: keep(stored),
        policies,
    })
}

/// Decides one question over `grounds` under `served`: the one decision function of the
/// server. With `explain`, the decision comes with the deciding policies or the nearest
/// permits.
///
/// The slice is built from the held entities and those beside them, or found where it was
/// kept; a context that names entities makes a slice for this question alone. Cedar's answer
/// over the slice is its answer over everything the server holds (see
/// [`crate::slice::build_slice`]).
pub fn decide(
    served: &Served,
    grounds: &Grounds<'_>,
    uids: Resolved,
    context: Map<String, Value>,
    batch: Option<&mut BatchSlices>,
    explain: bool,
) -> Result<Answer, RequestError> {
    let s = &served.snapshot;
    let refs = context_refs(&context);
    let build = |p: &EntityUid, a: &EntityUid, r: &EntityUid| {
        let roots = Roots {
            principal: p,
            action: a,
            resource: r,
            context: &refs,
        };
        served.slice(roots, &grounds.beside)
    };
    let Resolved {
        principal,
        action,
        resource,
    } = uids;
    if explain || grounds.policies.is_some() {
        let entities = build(&principal, &action, &resource)?;
        let request = s.request_with(principal, action, resource, context)?;
        let prepared = Prepared { request, entities };
        let policies = grounds.policies.as_deref().unwrap_or(s.policy_set());
        return Ok(if explain {
            Answer::Explained(s.explain_with(&prepared, policies))
        } else {
            Answer::Decided(s.decide_with(&prepared, policies))
        });
    }
    if let (Keep::Bundle, Some(whole)) = (&grounds.keep, &served.whole) {
        let d = served
            .slices
            .decide_over(served, whole, principal, action, resource, context)?;
        return Ok(Answer::Decided(d));
    }
    let fresh =
        |p: &EntityUid, a: &EntityUid, r: &EntityUid| build(p, a, r).map(CachedSlice::new).map(Arc::new);
    let slice = match &grounds.keep {
        _ if !refs.is_empty() => fresh(&principal, &action, &resource)?,
        Keep::Nowhere => fresh(&principal, &action, &resource)?,
        Keep::Bundle => {
            let d = served
                .slices
                .decide(served, principal, action, resource, context, build)?;
            return Ok(Answer::Decided(d));
        }
        Keep::Batch => match batch {
            Some(batch) => match batch.entry((principal.clone(), action.clone(), resource.clone())) {
                Entry::Occupied(o) => o.get().clone(),
                Entry::Vacant(v) => v.insert(fresh(&principal, &action, &resource)?).clone(),
            },
            None => fresh(&principal, &action, &resource)?,
        },
        Keep::User(stored) => {
            let key = (served.generation, action.clone(), resource.clone());
            let kept = stored.slices.lock().ok().and_then(|m| m.get(&key).cloned());
            match kept {
                Some(slice) => slice,
                None => {
                    let slice = fresh(&principal, &action, &resource)?;
                    if let Ok(mut m) = stored.slices.lock() {
                        if m.len() >= entities::MAX_STORED_SLICES {
                            m.clear();
                        }
                        m.insert(key, slice.clone());
                    }
                    slice
                }
            }
        }
    };
    let d = slice.decide(served, principal, action, resource, context)?;
    Ok(Answer::Decided(d))
}

/// One question from an entry point of the decision API, decided: [`Resolved::of`],
/// [`ground`], [`decide`]. Counts the outcome (or the refusal) in the metrics.
pub async fn ask(
    app: &AppState,
    served: &Served,
    q: Question<'_>,
    batch: Option<&mut BatchSlices>,
    explain: bool,
) -> Result<Answer, ApiError> {
    let answer = async {
        let uids = Resolved::of(served, q.principal, q.action, q.resource)?;
        let mut context = q.context;
        let grounds = ground(app, served, &uids, q.resource, q.given, q.session, &mut context).await?;
        Ok::<_, ApiError>(decide(served, &grounds, uids, context, batch, explain)?)
    }
    .await;
    match &answer {
        Ok(a) => app.metrics.decision(a.decision()),
        Err(_) => app.metrics.rejected(),
    }
    answer
}

/// A new decision id: a version-4 UUID, unique within the process and across processes.
///
/// Not from the operating system's random source per decision (a `getrandom` system call
/// each, 100 per batch of 100): a per-process random key from it once, then a counter mixed
/// through a bijection, so two ids of one process never collide and ids of two processes
/// differ in their random key. Decision ids name decisions in audit logs; they are not
/// secrets. Kept hand-written: `uuid`'s own fast generator (`fast-rng`) needs `rand` 0.10, a
/// second `rand` beside the 0.8 that sqlx brings.
pub fn decision_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let &(high, low) = KEY.get_or_init(|| {
        let mut seed = [0u8; 16];
        if getrandom::fill(&mut seed).is_err() {
            // No random source: the start time still tells processes apart.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed = t.to_le_bytes();
        }
        let (a, b) = seed.split_at(8);
        (
            u64::from_le_bytes(a.try_into().unwrap_or_default()),
            u64::from_le_bytes(b.try_into().unwrap_or_default()),
        )
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(n ^ low).to_le_bytes());
    bytes[8..].copy_from_slice(&high.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// splitmix64's finalizer: a bijection on `u64` that spreads a counter over all bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::{decision_id, mix};

    #[test]
    fn decision_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| decision_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(u.get_version_num(), 4, "{id}");
        }
    }

    #[test]
    fn the_mix_is_a_bijection_on_a_sample() {
        let outs: std::collections::HashSet<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(outs.len(), 100_000);
        assert_ne!(mix(1), 1);
    }
}
