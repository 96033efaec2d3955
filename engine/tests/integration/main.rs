//! Integration tests of the Portcullis engine, one module per theme, linked into one binary.
//!
//! - `diagnostics`: every kind of broken edit to the default policy folder, rendered and
//!   snapshotted with `insta` (snapshots under `snapshots/`).
//! - `decisions`: concrete decisions of the default folder through `Engine::authorize`, request
//!   errors, the "an evaluation error never allows" rule, versions and reloads.
//! - `edits`: console edits of every real `roles.toml`, random cell changes checked for
//!   comments, builds and the cells they give.
//! - `property`: random role models compiled to Cedar, checked against a reference evaluator
//!   of the `roles.toml` semantics.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail loudly")]

mod decisions;
mod diagnostics;
mod edits;
mod property;
mod support;
