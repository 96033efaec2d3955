//! The policy console's state, kept by the server ([`crate::state::AppState::console`]): one
//! save and one proof at a time, and the last [`HISTORY`] saves, which can be undone. The
//! console's endpoints are in the decision adapter ([`crate::http::decision::console`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use portcullis_engine::roles::edit::Edit;
use serde::Serialize;

/// Saves kept for undo.
pub const HISTORY: usize = 20;

/// The console's own state: one save at a time, and the saves that can be undone.
#[derive(Debug, Default)]
pub struct Console {
    pub(crate) saving: tokio::sync::Mutex<()>,
    /// One proof at a time: each runs one solver per core.
    pub(crate) proving: tokio::sync::Mutex<()>,
    pub(crate) history: Mutex<VecDeque<Save>>,
    pub(crate) next_id: std::sync::atomic::AtomicU64,
}

/// One save, newest first in the history.
#[derive(Debug, Clone, Serialize)]
pub struct Save {
    /// Its number in this server's life.
    pub id: u64,
    /// When.
    pub at: String,
    /// The version it was made on.
    pub before_version: String,
    /// The version it installed.
    pub after_version: String,
    /// The edits.
    pub edits: Vec<Edit>,
    /// The text diff of `roles.toml`.
    pub text_diff: String,
    #[serde(skip)]
    pub(crate) before: String,
    #[serde(skip)]
    pub(crate) after: String,
}
