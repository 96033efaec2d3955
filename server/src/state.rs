//! What the server serves: one immutable [`Served`] bundle behind an `ArcSwap`, rebuilt whole.
//!
//! Input: the policy folder and the optional static entities file named by the [`Config`].
//! [`build`] reads them, refuses what looks like a save in progress (an empty file, a
//! `roles.toml` that vanished), builds and validates the engine [`Snapshot`], parses the
//! entities against its schema and indexes the names requests use. [`AppState::install`]
//! swaps the bundle in at once and announces it on a `tokio::sync::watch` channel; a request
//! loads the bundle once, so its policies, schema, entities and version always agree. A failed
//! build leaves the last good bundle serving and is kept as [`ReloadStatus::last_error`].

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use cedar_policy::EntityUid;
use portcullis_engine::{
    Diagnostic, Diagnostics, Location, RequestError, Snapshot, SourceLimits, SourceSet, ROLES_FILE,
};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
pub use portcullis_engine::resolve::{RequestShape, Resolver};

use crate::slice::StaticEntities;

/// The announcement of one install: tests and the watcher await these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The policy version now served.
    pub version: Arc<str>,
    /// Counts installs since start (the first build is 1).
    pub generation: u64,
}

/// The static entities and what they were built from, so an unchanged file is not re-parsed.
#[derive(Debug)]
pub struct EntitySet {
    /// The entities.
    pub entities: Arc<StaticEntities>,
    /// Hash of the file's text and the schema's, or 0 without a file.
    stamp: u64,
}

/// One immutable build: a snapshot, the names it resolves and the entities it knows.
#[derive(Debug)]
pub struct Served {
    /// The engine snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Fast name resolution and the action entities.
    pub resolver: Resolver,
    /// The static entities, validated against this snapshot's schema.
    pub entities: Arc<EntitySet>,
    /// When this bundle was installed (set by `install`).
    pub installed_at: SystemTime,
    /// Its install number (set by `install`).
    pub generation: u64,
    /// Slices already built under this bundle.
    pub slices: SliceCache,
    /// Inline entities already parsed under this bundle's schema.
    pub inline: crate::slice::InlineCache,
    /// The held entities whole, as Cedar holds them (with the schema's actions), when there
    /// are at most `whole_entities` of them: questions without entities of their own are
    /// decided over it, as a bare Cedar server does, with no slice to build. Beyond that the
    /// compact store alone holds them (a fifth of the memory) and every question gets its
    /// slice.
    pub whole: Option<cedar_policy::Entities>,
}

impl Served {
    /// The slice of one decision: `inline` and every held entity the policies can reach from
    /// `roots` (see [`crate::slice::build_slice`]).
    pub fn slice(
        &self,
        roots: crate::slice::Roots<'_>,
        inline: &crate::slice::Inline,
    ) -> Result<cedar_policy::Entities, RequestError> {
        crate::slice::build_slice(
            &self.entities.entities,
            &self.resolver.action_entities,
            self.snapshot.reach(),
            roots,
            inline,
        )
    }

    /// Bundles a snapshot with entities already validated against its schema, with empty
    /// caches of `sizes`.
    pub fn new(snapshot: Arc<Snapshot>, entities: Arc<EntitySet>, sizes: crate::cache::CacheSizes) -> Self {
        let resolver = Resolver::new(&snapshot);
        let whole = if sizes.whole_entities > 0 && entities.entities.len() <= sizes.whole_entities {
            // Built from entities already validated; should Cedar refuse them, slices serve.
            entities
                .entities
                .to_entities(&resolver.action_entities, snapshot.reach())
                .ok()
        } else {
            None
        };
        Self {
            resolver,
            whole,
            snapshot,
            entities,
            installed_at: SystemTime::now(),
            generation: 0,
            slices: SliceCache::new(sizes.slices, sizes.decisions),
            inline: crate::slice::InlineCache::new(sizes.slices),
        }
    }
}

/// What requests without inline entities share under one bundle, by principal, action and
/// resource: the entity slices Cedar decides over, and the decisions of those asked without
/// a context.
///
/// A bundle never changes (a reload installs a new one, with empty caches), so a cached slice
/// is exactly the one the request would build (a hit skips building Cedar entities and
/// Cedar's transitive closure), and a cached decision is the one Cedar would make again (it
/// reads nothing but the policies, the slice and the request): a hit skips evaluation too.
/// Requests with a context take the slice and are evaluated every time; only their slices
/// are kept (a context-free question needs its slice once). Both are bounded, keep what is
/// asked for again, and keep an answer only when its question comes a second time, so
/// questions that never repeat cost no more than with the caches off; decisions, a few
/// hundred bytes each, are kept by the thousand, slices (kilobytes of Cedar entities) by the
/// hundred.
#[derive(Debug)]
pub struct SliceCache {
    slices: crate::cache::Cache<Question, Arc<CachedSlice>>,
    decisions: crate::cache::Cache<Question, portcullis_engine::Decision>,
}

/// A request's principal, action and resource as a cache key: each type name and id after
/// its length, in one allocation of about a hundred bytes, where the three Cedar uids take
/// over four hundred (a full decision cache was 16 MB of a 100,000-entity server's RSS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question(Box<[u8]>);

impl Question {
    fn new(principal: &EntityUid, action: &EntityUid, resource: &EntityUid) -> Self {
        use std::io::Write;
        let mut out: Vec<u8> = Vec::with_capacity(128);
        let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes();
        for uid in [principal, action, resource] {
            // The type name written in place, its length filled in after.
            let at = out.len();
            out.extend_from_slice(&[0; 8]);
            // Writing to a vector cannot fail.
            let _ = write!(out, "{}", uid.type_name());
            let n = len(out.len().saturating_sub(at + 8));
            if let Some(slot) = out.get_mut(at..at + 8) {
                slot.copy_from_slice(&n);
            }
            let id: &str = uid.id().as_ref();
            out.extend_from_slice(&len(id.len()));
            out.extend_from_slice(id.as_bytes());
        }
        Self(out.into_boxed_slice())
    }
}

/// The entity slice of one (principal, action, resource) under one bundle, and the decision
/// of that request with the empty context once it has been made (for slices kept per stored
/// user, and shared within one batch).
#[derive(Debug)]
pub struct CachedSlice {
    /// The entities Cedar decides over.
    pub entities: cedar_policy::Entities,
    decision: std::sync::OnceLock<portcullis_engine::Decision>,
}

/// The schema's shape of a request the schema is known to accept with the empty context:
/// its decision is built without validation and may be kept. `None` for a request with a
/// context, or with types the shape does not cover (Cedar validates those, with its
/// messages, and they are decided every time).
fn keepable<'a>(
    served: &'a Served,
    principal: &EntityUid,
    action: &EntityUid,
    resource: &EntityUid,
    context_is_empty: bool,
) -> Option<&'a RequestShape> {
    if !context_is_empty {
        return None;
    }
    served
        .resolver
        .request_shapes
        .get(action)
        .filter(|sh| sh.fits(principal, resource))
}

/// Evaluates one request over `entities`: a [`keepable`] request (`shape`) is built without
/// validation; anything else goes through Cedar's request validation.
fn evaluate(
    served: &Served,
    shape: Option<&RequestShape>,
    entities: &cedar_policy::Entities,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: serde_json::Map<String, serde_json::Value>,
) -> Result<portcullis_engine::Decision, RequestError> {
    let s = &served.snapshot;
    let request = match shape.and_then(|sh| sh.request(&principal, &action, &resource)) {
        Some(request) => request,
        None => s.request_with(principal, action, resource, context)?,
    };
    Ok(s.decide_parts(&request, entities))
}

impl CachedSlice {
    /// A slice whose decision is not made yet.
    pub fn new(entities: cedar_policy::Entities) -> Self {
        Self {
            entities,
            decision: std::sync::OnceLock::new(),
        }
    }

    /// Decides `principal` `action` `resource` with `context` over this slice (whose request
    /// it must be). A [`keepable`] request is evaluated once and answered from then on;
    /// anything else goes through Cedar's request validation and evaluation every time.
    pub fn decide(
        &self,
        served: &Served,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: serde_json::Map<String, serde_json::Value>,
    ) -> Result<portcullis_engine::Decision, RequestError> {
        let shape = keepable(served, &principal, &action, &resource, context.is_empty());
        self.decide_as(served, shape, principal, action, resource, context)
    }

    /// [`Self::decide`] with the request's [`keepable`] shape already looked up.
    fn decide_as(
        &self,
        served: &Served,
        shape: Option<&RequestShape>,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: serde_json::Map<String, serde_json::Value>,
    ) -> Result<portcullis_engine::Decision, RequestError> {
        if shape.is_none() {
            return evaluate(served, None, &self.entities, principal, action, resource, context);
        }
        if let Some(d) = self.decision.get() {
            return Ok(d.clone());
        }
        let d = evaluate(
            served,
            shape,
            &self.entities,
            principal,
            action,
            resource,
            context,
        )?;
        Ok(self.decision.get_or_init(|| d).clone())
    }
}

impl SliceCache {
    /// At most `slices` slices and `decisions` decisions (0: none).
    pub fn new(slices: usize, decisions: usize) -> Self {
        let counts = &*crate::cache::COUNTS;
        Self {
            slices: crate::cache::Cache::second_sight(slices, &counts.slices),
            decisions: crate::cache::Cache::second_sight(decisions, &counts.decisions),
        }
    }

    /// Decides over `entities` (the whole held store), keeping the decision like
    /// [`Self::decide`].
    pub fn decide_over(
        &self,
        served: &Served,
        entities: &cedar_policy::Entities,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: serde_json::Map<String, serde_json::Value>,
    ) -> Result<portcullis_engine::Decision, RequestError> {
        let shape = keepable(served, &principal, &action, &resource, context.is_empty());
        let key = (shape.is_some() && self.decisions.is_on())
            .then(|| Question::new(&principal, &action, &resource));
        if let Some(d) = key.as_ref().and_then(|k| self.decisions.get(k)) {
            return Ok(d);
        }
        let d = evaluate(served, shape, entities, principal, action, resource, context)?;
        if let Some(key) = key {
            self.decisions.insert(key, d.clone());
        }
        Ok(d)
    }

    /// Decides `principal` `action` `resource` with `context` under `served` (whose cache
    /// this is): from a kept decision, or over the kept slice, or over the slice `build`
    /// makes.
    pub fn decide(
        &self,
        served: &Served,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: serde_json::Map<String, serde_json::Value>,
        build: impl FnOnce(&EntityUid, &EntityUid, &EntityUid) -> Result<cedar_policy::Entities, RequestError>,
    ) -> Result<portcullis_engine::Decision, RequestError> {
        let shape = keepable(served, &principal, &action, &resource, context.is_empty());
        let keep = shape.is_some() && self.decisions.is_on();
        // No key is built when neither cache would use it.
        let key = (keep || self.slices.is_on()).then(|| Question::new(&principal, &action, &resource));
        if let Some(d) = key.as_ref().filter(|_| keep).and_then(|k| self.decisions.get(k)) {
            return Ok(d);
        }
        // A kept decision answers the next such question without its slice; only questions
        // with a context come back for one.
        let kept = key.as_ref().filter(|_| !keep).and_then(|k| self.slices.get(k));
        let slice = match kept {
            Some(hit) => hit,
            None => {
                let built = Arc::new(CachedSlice::new(build(&principal, &action, &resource)?));
                if let Some(k) = key.as_ref().filter(|_| !keep) {
                    self.slices.insert(k.clone(), built.clone());
                }
                built
            }
        };
        let d = slice.decide_as(served, shape, principal, action, resource, context)?;
        if let Some(k) = key.filter(|_| keep) {
            self.decisions.insert(k, d.clone());
        }
        Ok(d)
    }
}

/// A build that failed: every diagnostic, paths relative to the policy folder.
#[derive(Debug, Clone)]
pub struct BuildError {
    /// The diagnostics.
    pub diagnostics: Diagnostics,
}

impl BuildError {
    fn one(code: &str, message: String, file: Option<&str>) -> Self {
        let mut d = Diagnostic::error(code, message);
        if let Some(f) = file {
            d = d.at(Location::file_only(f));
        }
        let mut diagnostics = Diagnostics::default();
        diagnostics.push(d);
        Self { diagnostics }
    }

    /// `file:line:col: message` of the first error, and how many more.
    pub fn summary(&self) -> String {
        self.diagnostics.to_string()
    }
}

/// Builds a bundle from the folder and entities file of `config`. `previous` is the bundle
/// being served, if any: its entities are reused when neither they nor the schema changed.
pub fn build(config: &Config, previous: Option<&Served>) -> Result<Served, BuildError> {
    let sources = SourceSet::read(&config.policies, SourceLimits::default())
        .map_err(|diagnostics| BuildError { diagnostics })?;
    check_complete(&sources, previous)?;
    let schema_text = sources
        .schema
        .as_ref()
        .map(|f| f.text.clone())
        .unwrap_or_default();
    let snapshot = Arc::new(Snapshot::build(sources).map_err(|diagnostics| BuildError { diagnostics })?);
    let entities = load_entities(config, &snapshot, &schema_text, previous)?;
    Ok(Served::new(snapshot, entities, config.caches))
}

/// Refuses folders that look like a save in progress: an empty policy file (an editor that
/// truncates before writing), or a `roles.toml` that the served folder had and this one lacks
/// (deleted before being written again). Either would otherwise build into a folder that
/// denies nearly everything.
fn check_complete(sources: &SourceSet, previous: Option<&Served>) -> Result<(), BuildError> {
    let mut diags = Diagnostics::default();
    for f in sources.policy_files() {
        if f.text.trim().is_empty() {
            diags.push(
                Diagnostic::error(
                    "source::empty",
                    format!(
                        "`{}` is empty; an empty policy file is taken as a save in progress and never served",
                        f.path
                    ),
                )
                .at(Location::file_only(&f.path))
                .with_help("delete the file to remove its policies"),
            );
        }
    }
    let had_roles = previous.is_some_and(|p| p.snapshot.sources().roles.is_some());
    if had_roles && sources.roles.is_none() {
        diags.push(
            Diagnostic::error(
                "source::roles-missing",
                format!("`{ROLES_FILE}` disappeared; a served folder never loses its role definitions in a reload"),
            )
            .with_help("restore the file, or restart the server to serve a folder without it"),
        );
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(BuildError { diagnostics: diags })
    }
}

fn load_entities(
    config: &Config,
    snapshot: &Snapshot,
    schema_text: &str,
    previous: Option<&Served>,
) -> Result<Arc<EntitySet>, BuildError> {
    let Some(path) = &config.entities else {
        return Ok(Arc::new(EntitySet {
            entities: Arc::new(StaticEntities::empty()),
            stamp: 0,
        }));
    };
    let name = path.display().to_string();
    let unreadable = |e: std::io::Error| {
        BuildError::one("entities::unreadable", format!("cannot read `{name}`: {e}"), None)
    };
    // Read twice, never held whole: once for the stamp (and the empty check), then parsed
    // as read, hashed again on the way; a file that changed between the two reads is a save
    // in progress and fails this build (the watcher's next rebuild reads it whole).
    let (stamp, blank) = file_stamp(path, schema_text).map_err(unreadable)?;
    if blank {
        return Err(BuildError::one(
            "entities::empty",
            format!("`{name}` is empty; an empty entities file is taken as a save in progress"),
            None,
        ));
    }
    if let Some(p) = previous {
        if p.entities.stamp == stamp {
            return Ok(p.entities.clone());
        }
    }
    let mut file = Hashing::new(std::fs::File::open(path).map_err(unreadable)?, schema_text);
    let entities = StaticEntities::from_json_reader(&mut file, snapshot.schema()).map_err(|m| {
        BuildError::one(
            "entities::invalid",
            format!("invalid entities in `{name}`: {m}"),
            None,
        )
    })?;
    if file.hasher.finish() != stamp {
        return Err(BuildError::one(
            "entities::changed",
            format!("`{name}` changed while it was read; it is read again after the save"),
            None,
        ));
    }
    Ok(Arc::new(EntitySet {
        entities: Arc::new(entities),
        stamp,
    }))
}

/// A reader that hashes what passes through it, after the schema's text.
struct Hashing<R> {
    inner: R,
    hasher: std::collections::hash_map::DefaultHasher,
}

impl<R> Hashing<R> {
    fn new(inner: R, schema_text: &str) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        schema_text.hash(&mut hasher);
        Self { inner, hasher }
    }
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.write(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// The stamp of an entities file (a hash of its bytes and the schema's text), and whether it
/// holds only whitespace; read in pieces.
fn file_stamp(path: &std::path::Path, schema_text: &str) -> std::io::Result<(u64, bool)> {
    use std::io::Read;
    let mut file = Hashing::new(std::fs::File::open(path)?, schema_text);
    let mut blank = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        blank = blank
            && buf
                .get(..n)
                .unwrap_or_default()
                .iter()
                .all(u8::is_ascii_whitespace);
    }
    Ok((file.hasher.finish(), blank))
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// When the last attempt finished.
    pub last_attempt: Option<SystemTime>,
    /// The error of the last attempt, if it failed; cleared by the next good build.
    pub last_error: Option<(SystemTime, BuildError)>,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The resolved configuration.
    pub config: Config,
    served: ArcSwap<Served>,
    installed: watch::Sender<Installed>,
    status: Mutex<ReloadStatus>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    rebuild: tokio::sync::Mutex<()>,
    /// The user store and its caches, when the server has one (set once at start).
    pub manage: std::sync::OnceLock<Arc<crate::manage::Manage>>,
    /// The address the listener bound (set once at start; differs from `config.listen` for
    /// port 0).
    pub bound: std::sync::OnceLock<std::net::SocketAddr>,
    /// The server's certificate when it serves TLS, for its reload counts in `/metrics`.
    pub tls: std::sync::OnceLock<Arc<crate::tls::Tls>>,
    /// Set at SIGTERM: `GET /readyz` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
    /// The product owner's console: its saves and their undo history.
    pub console: crate::console::Console,
}

impl AppState {
    /// From now on, `GET /readyz` answers 503: the server is going away.
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// True once [`Self::start_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The base URL clients reach this server at: the configured `public_url`, else
    /// `http://` and the bound address. Never a request's `Host`.
    pub fn base_url(&self) -> String {
        match (&self.config.public_url, self.bound.get()) {
            (None, Some(addr)) => format!("{}://{addr}", self.config.scheme()),
            _ => self.config.base_url(),
        }
    }

    /// Builds the first bundle; fails when the folder does not build.
    pub fn open(config: Config) -> Result<Arc<Self>, BuildError> {
        let mut first = build(&config, None)?;
        first.generation = 1;
        let installed = Installed {
            version: first.snapshot.version_arc(),
            generation: 1,
        };
        let metrics = Arc::new(Metrics::default());
        metrics.set_policy(&installed.version, first.entities.entities.len());
        Ok(Arc::new(Self {
            config,
            served: ArcSwap::from_pointee(first),
            installed: watch::Sender::new(installed),
            status: Mutex::new(ReloadStatus::default()),
            metrics,
            rebuild: tokio::sync::Mutex::new(()),
            manage: std::sync::OnceLock::new(),
            bound: std::sync::OnceLock::new(),
            tls: std::sync::OnceLock::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            console: crate::console::Console::default(),
        }))
    }

    /// The bundle in force; hold it for the length of one request.
    pub fn served(&self) -> Arc<Served> {
        self.served.load_full()
    }

    /// Subscribes to install announcements.
    pub fn subscribe(&self) -> watch::Receiver<Installed> {
        self.installed.subscribe()
    }

    /// The outcome of the last reload.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Swaps a bundle in and announces it.
    pub fn install(&self, mut served: Served) -> Installed {
        let generation = self.installed.borrow().generation + 1;
        served.generation = generation;
        served.installed_at = SystemTime::now();
        let installed = Installed {
            version: served.snapshot.version_arc(),
            generation,
        };
        self.metrics
            .set_policy(&installed.version, served.entities.entities.len());
        self.served.store(Arc::new(served));
        self.installed.send_replace(installed.clone());
        installed
    }

    /// Installs a snapshot built elsewhere, keeping the served entities (which must fit its
    /// schema): the direct path for tests and embedders.
    pub fn install_snapshot(&self, snapshot: Arc<Snapshot>) -> Installed {
        let entities = self.served().entities.clone();
        self.install(Served::new(snapshot, entities, self.config.caches))
    }

    /// Rebuilds the folder and installs it; on failure the old bundle keeps serving and the
    /// error is kept for `GET /v1/policy` and counted in the metrics.
    pub async fn reload(self: &Arc<Self>) -> Result<Installed, BuildError> {
        match self.reload_if(|| true).await {
            Some(r) => r,
            None => Err(BuildError::one(
                "reload::discarded",
                "the rebuild was discarded".to_owned(),
                None,
            )),
        }
    }

    /// Rebuilds the folder, then installs the result only if `still_valid()` holds (the
    /// watcher passes "no file changed during the build"); `None` when discarded. One rebuild
    /// runs at a time, so an older build never overwrites a newer one.
    pub async fn reload_if(
        self: &Arc<Self>,
        still_valid: impl FnOnce() -> bool,
    ) -> Option<Result<Installed, BuildError>> {
        let _one_at_a_time = self.rebuild.lock().await;
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let previous = this.served();
            let started = std::time::Instant::now();
            let built = build(&this.config, Some(&previous));
            tracing::debug!(
                ms = started.elapsed().as_secs_f64() * 1e3,
                ok = built.is_ok(),
                "folder rebuilt"
            );
            built
        })
        .await
        .unwrap_or_else(|e| {
            Err(BuildError::one(
                "reload::panicked",
                format!("the rebuild stopped: {e}"),
                None,
            ))
        });
        if !still_valid() {
            return None;
        }
        Some(self.finish(built))
    }

    /// Records the outcome of a build and installs it when it succeeded.
    pub fn finish(&self, built: Result<Served, BuildError>) -> Result<Installed, BuildError> {
        let now = SystemTime::now();
        self.metrics.reload(built.is_ok());
        let result = match built {
            Ok(served) => {
                let installed = self.install(served);
                tracing::info!(version = %installed.version, generation = installed.generation, "policy installed");
                if let Ok(mut s) = self.status.lock() {
                    s.last_error = None;
                }
                Ok(installed)
            }
            Err(e) => {
                tracing::warn!(error = %e.summary(), "reload failed; the last good policy keeps serving");
                if let Ok(mut s) = self.status.lock() {
                    s.last_error = Some((now, e.clone()));
                }
                Err(e)
            }
        };
        if let Ok(mut s) = self.status.lock() {
            s.last_attempt = Some(now);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{EntityId, EntityTypeName, EntityUid};
    use proptest::prelude::*;

    use super::Question;

    fn uid(ty: &str, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(EntityTypeName::from_str(ty).unwrap(), EntityId::new(id))
    }

    #[test]
    fn ids_that_run_together_make_different_keys() {
        let (p, a) = (uid("User", "ab"), uid("Action", "c"));
        let (q, b) = (uid("User", "a"), uid("Action", "bc"));
        let r = uid("Doc", "");
        assert_ne!(Question::new(&p, &a, &r), Question::new(&q, &b, &r));
        assert_eq!(Question::new(&p, &a, &r), Question::new(&p, &a, &r));
    }

    proptest! {
        /// Two questions share a key exactly when they are the same question, whatever their
        /// ids hold (separators, lengths that could run together).
        #[test]
        fn question_keys_are_equal_only_for_the_same_question(
            ids in proptest::collection::vec("[a-b:\"\\\\\u{0}\u{8}]{0,3}", 6),
            types in proptest::collection::vec(prop_oneof![Just("User"), Just("N::User"), Just("Action"), Just("N::Action")], 6),
        ) {
            let a = [uid(types[0], &ids[0]), uid(types[1], &ids[1]), uid(types[2], &ids[2])];
            let b = [uid(types[3], &ids[3]), uid(types[4], &ids[4]), uid(types[5], &ids[5])];
            let (ka, kb) = (Question::new(&a[0], &a[1], &a[2]), Question::new(&b[0], &b[1], &b[2]));
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(ka, Question::new(&a[0], &a[1], &a[2]));
        }
    }
}
