//! Integration tests of `portcullis serve`: real servers on `127.0.0.1:0`, real HTTP.
//!
//! One binary, one module per theme. Servers serve a copy of `policies/` in a temp folder,
//! with `entities.json` beside this file as the static entities file.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

mod authzen;
mod authzen_interop;
mod browser;
mod cdp;
mod cedar_corpus;
mod cli;
mod common;
mod console;
mod crash;
mod decisions;
mod delegation;
mod docs;
mod errors;
mod escalation;
mod examples;
mod explain_http;
mod folder_delegation;
mod groups;
mod layers;
mod leaks;
mod lifecycle;
mod manage;
mod multi;
mod passkeys;
mod portal;
mod procs;
mod reload;
mod schema_fuzz;
mod signin;
mod soak;
mod stored_principals;
mod stress;
mod tenancy;
mod tls;
mod tools;
mod verify;
