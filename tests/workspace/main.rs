//! Workspace-level tests: every shipped policy folder builds and passes its own fixtures with
//! full coverage, and the generated JSON Schemas in `schema/` are current.

mod folders;
mod schemas;
