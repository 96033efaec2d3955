//! The server's layering, kept by reading its sources: the three HTTP adapters
//! (`src/http/{decision,manage,signin}`) never import one another, and the services below
//! them (`src/manage`, `src/auth`, `src/decision.rs`, `src/state.rs`, `src/console.rs`)
//! never import an adapter. Only the composition root (`src/http/mod.rs`,
//! `src/http/openapi.rs`) names the adapters.
//!
//! ```text
//! http (router, middleware, OpenAPI)            ← composition root
//!   ├─ http/decision   http/manage   http/signin  ← adapters: never each other
//!   └─ http/{error,extract,json}                  ← plumbing every adapter uses
//! decision + state, manage, auth                  ← services: never an adapter
//! store, engine
//! ```

use std::path::{Path, PathBuf};

const ADAPTERS: [&str; 3] = ["decision", "manage", "signin"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file at `path` (a file, or a folder searched recursively).
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code of a file without its comment lines, whitespace removed, so that a path split
/// over lines (`crate::http::{\n    manage::…`) reads as one.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

/// The names `code` reaches under `prefix` (e.g. `crate::http::`): `crate::http::manage::x`
/// gives `manage`, `crate::http::{error::ApiError, manage::x}` gives `error` and `manage`.
fn reached(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group up to its matching brace; each top-level item's first name.
            let mut depth = 0usize;
            let mut item = String::new();
            let mut first = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        first = true;
                        continue;
                    }
                    _ => {}
                }
                if first && depth == 0 {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                        continue;
                    }
                    if !item.is_empty() {
                        out.push(std::mem::take(&mut item));
                    }
                    first = false;
                }
            }
            if !item.is_empty() {
                out.push(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// What a file of `layer` must not reach: `(file, forbidden name)` for each breach.
fn breaches(files: &[PathBuf], forbidden: &[&str], prefixes: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let code = code(&std::fs::read_to_string(f).unwrap());
        for prefix in prefixes {
            for name in reached(&code, prefix) {
                if forbidden.contains(&name.as_str()) {
                    out.push(format!("{} reaches {prefix}{name}", f.display()));
                }
            }
        }
    }
    out
}

#[test]
fn the_checker_reads_paths_and_groups() {
    let c = code("use crate::http::{\n    error::ApiError,\n    manage::{users, grants},\n};\n// crate::http::signin\nlet x = crate::http::decision::decide::authorize;");
    assert_eq!(
        reached(&c, "crate::http::"),
        ["error", "manage", "decision"],
        "comments do not count"
    );
}

#[test]
fn no_adapter_imports_another() {
    let mut all = Vec::new();
    for adapter in ADAPTERS {
        let files = rust_files(&src().join("http").join(adapter));
        assert!(
            files.len() > 1,
            "adapter {adapter} has its files under src/http/{adapter}"
        );
        let others: Vec<&str> = ADAPTERS.into_iter().filter(|a| *a != adapter).collect();
        // `super::super::` from a file of the adapter is `crate::http::`.
        all.extend(breaches(
            &files,
            &others,
            &["crate::http::", "super::super::", "portcullis_server::http::"],
        ));
    }
    assert!(all.is_empty(), "adapters importing adapters:\n{}", all.join("\n"));
}

#[test]
fn no_service_imports_an_adapter() {
    let mut files = Vec::new();
    for service in ["manage", "auth", "decision.rs", "state.rs", "console.rs"] {
        let found = rust_files(&src().join(service));
        assert!(!found.is_empty(), "service {service} exists");
        files.extend(found);
    }
    let all = breaches(&files, &ADAPTERS, &["crate::http::"]);
    assert!(all.is_empty(), "services importing adapters:\n{}", all.join("\n"));
}
