//! Portcullis policy engine: a policy folder becomes a validated Cedar snapshot that decides.
//!
//! The pipeline, one type per stage: [`SourceSet`] (files as read) → `RawRoles` (serde, with
//! spans) → [`RoleModel`] (ranks, matrix, checks) → compiled Cedar with origins → validated
//! policies → [`Snapshot`]. [`Engine`] holds the current snapshot behind an `ArcSwap` so
//! readers never lock and a reload swaps the whole folder at once. The engine is pure: no
//! HTTP, no database, no async runtime.

mod decide;
pub mod described;
pub mod diag;
pub mod diff;
pub mod error;
pub mod explain;
pub mod facts;
pub mod fixtures;
pub mod matrix;
pub mod permissions;
pub mod properties;
mod reach;
mod request;
pub mod resolve;
pub mod roles;
pub mod schemas;
pub mod slice;
mod snapshot;
mod source;
mod spanned;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use decide::{Decision, Outcome, PolicyError};
pub use diag::{Diagnostic, Diagnostics, Location, Severity};
pub use reach::Reach;
pub use request::{AuthzQuery, EntityRef, Prepared, RequestError, Slot};
pub use roles::model::{allowed_list, Cell, RoleModel, SignIn, StoredAttribute};
pub use roles::raw::{Derived, PasswordRule};
pub use snapshot::{Effect, PolicyInfo, Snapshot};
pub use source::{SourceFile, SourceLimits, SourceSet, FIXTURES_DIR, ROLES_FILE, SCHEMA_FILE};
pub use spanned::Spanned;

/// Reads and builds a policy folder.
pub fn load(folder: &Path) -> Result<Snapshot, Diagnostics> {
    load_with(folder, SourceLimits::default())
}

/// Reads and builds a policy folder with explicit limits.
pub fn load_with(folder: &Path, limits: SourceLimits) -> Result<Snapshot, Diagnostics> {
    Snapshot::build(SourceSet::read(folder, limits)?)
}

/// The current snapshot of one policy folder, swapped whole on reload.
#[derive(Debug)]
pub struct Engine {
    folder: PathBuf,
    limits: SourceLimits,
    current: ArcSwap<Snapshot>,
}

impl Engine {
    /// Loads a folder; fails with every diagnostic if it does not build.
    pub fn open(folder: impl Into<PathBuf>) -> Result<Self, Diagnostics> {
        Self::open_with(folder, SourceLimits::default())
    }

    /// Loads a folder with explicit limits.
    pub fn open_with(folder: impl Into<PathBuf>, limits: SourceLimits) -> Result<Self, Diagnostics> {
        let folder = folder.into();
        let snapshot = load_with(&folder, limits)?;
        Ok(Self {
            folder,
            limits,
            current: ArcSwap::from_pointee(snapshot),
        })
    }

    /// Serves an already built snapshot.
    pub fn from_snapshot(folder: impl Into<PathBuf>, snapshot: Snapshot) -> Self {
        Self {
            folder: folder.into(),
            limits: SourceLimits::default(),
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The folder it serves.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The snapshot in force; hold it for the length of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Rebuilds the folder. On success the new snapshot replaces the old one at once; on
    /// failure the old one keeps serving and the diagnostics are returned.
    pub fn reload(&self) -> Result<Arc<Snapshot>, Diagnostics> {
        let snapshot = Arc::new(load_with(&self.folder, self.limits)?);
        self.current.store(snapshot.clone());
        Ok(snapshot)
    }

    /// Installs a snapshot built elsewhere.
    pub fn install(&self, snapshot: Arc<Snapshot>) {
        self.current.store(snapshot);
    }

    /// Decides one query under the current snapshot.
    pub fn authorize(&self, query: &AuthzQuery) -> Result<Decision, RequestError> {
        let snapshot = self.current.load();
        let prepared = snapshot.prepare(query)?;
        Ok(snapshot.decide(&prepared))
    }
}
