//! Role definitions: the `roles.toml` format (`raw`), its checks (`model`) and its compilation
//! to Cedar (`compile`).

pub mod compile;
pub mod edit;
pub mod model;
pub mod raw;
