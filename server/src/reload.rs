//! Hot reload: file events (and SIGHUP) become debounced, stable rebuilds.
//!
//! ```text
//! event ──> count it, wake the loop
//! loop: wait for an event ─> wait until `debounce` passes with no new event
//!       ─> rebuild the whole folder (off the async threads)
//!       ─> any event during the build? discard it, go back to waiting (the files moved)
//!       ─> install, or keep the old bundle and record the error
//! ```
//! Editors that truncate then write, rename over, or delete and recreate all produce events
//! until the save is complete, so a build only counts once the files held still through it.
//! The build itself refuses empty files and a vanished `roles.toml` (see `state`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::state::AppState;

/// Counts file events, notes when the last one came, and wakes the reload loop.
#[derive(Debug)]
pub struct Trigger {
    events: AtomicU64,
    /// When the last event came, in nanoseconds after `start`.
    last: AtomicU64,
    start: Instant,
    wake: Notify,
}

impl Default for Trigger {
    fn default() -> Self {
        Self {
            events: AtomicU64::new(0),
            last: AtomicU64::new(0),
            start: Instant::now(),
            wake: Notify::new(),
        }
    }
}

impl Trigger {
    /// Records an event.
    pub fn fire(&self) {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.fetch_max(now, Ordering::SeqCst);
        self.events.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn count(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }

    /// When the files will have been quiet for `debounce`, counting from the last event.
    fn quiet_at(&self, debounce: Duration) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::SeqCst)) + debounce
    }
}

/// A running watcher; dropping it stops the file notifications.
pub struct Reloader {
    _watcher: Option<notify::RecommendedWatcher>,
    /// Fire it to request a reload (SIGHUP does).
    pub trigger: Arc<Trigger>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn relevant(path: &Path, folder: &Path, entities: Option<&PathBuf>) -> bool {
    if let Some(e) = entities {
        if path.file_name() == e.file_name() && path.parent() == e.parent() {
            return true;
        }
    }
    let Ok(rel) = path.strip_prefix(folder) else {
        return false;
    };
    // Fixtures never change what is served.
    !rel.starts_with(portcullis_engine::FIXTURES_DIR)
}

/// Starts watching the policy folder (and the entities file) when `watch` is set, and the
/// loop that rebuilds on events.
pub fn start(app: Arc<AppState>, watch: bool) -> Result<Reloader, notify::Error> {
    let trigger = Arc::new(Trigger::default());
    let watcher = if watch {
        let folder =
            std::fs::canonicalize(&app.config.policies).unwrap_or_else(|_| app.config.policies.clone());
        let entities = app
            .config
            .entities
            .as_ref()
            .map(|e| std::fs::canonicalize(e).unwrap_or_else(|_| e.clone()));
        let t = trigger.clone();
        let (f, e) = (folder.clone(), entities.clone());
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            match res {
                Ok(ev) => {
                    if matches!(ev.kind, EventKind::Access(_)) {
                        return;
                    }
                    if ev.paths.iter().any(|p| relevant(p, &f, e.as_ref())) {
                        t.fire();
                    }
                }
                // A lost event (queue overflow) may hide a change: rebuild to be sure.
                Err(_) => t.fire(),
            }
        })?;
        w.watch(&folder, RecursiveMode::Recursive)?;
        if let Some(parent) = entities.as_ref().and_then(|e| e.parent()) {
            w.watch(parent, RecursiveMode::NonRecursive)?;
        }
        Some(w)
    } else {
        None
    };
    let task = tokio::spawn(run(app.clone(), trigger.clone()));
    Ok(Reloader {
        _watcher: watcher,
        trigger,
        task,
    })
}

async fn run(app: Arc<AppState>, trigger: Arc<Trigger>) {
    let debounce = app.config.reload_debounce;
    let mut handled = 0;
    loop {
        if trigger.count() == handled {
            trigger.wake.notified().await;
            continue;
        }
        // Debounce: wait until the files have been quiet for `debounce` since the last
        // event (a truncate and the write after it, microseconds apart, cost one debounce).
        let mut seen = trigger.count();
        loop {
            tokio::time::sleep_until(trigger.quiet_at(debounce).into()).await;
            let now = trigger.count();
            if now == seen {
                break;
            }
            seen = now;
        }
        tracing::debug!(events = seen - handled, "files quiet; rebuilding");
        let outcome = app.reload_if(|| trigger.count() == seen).await;
        if outcome.is_none() {
            // The files changed while they were read: this build may mix two saves.
            tracing::debug!("files changed during a rebuild; building again");
            continue;
        }
        handled = seen;
    }
}

/// Fires `trigger` on every SIGHUP.
#[cfg(unix)]
pub fn on_sighup(trigger: Arc<Trigger>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            trigger.fire();
        }
    }))
}
