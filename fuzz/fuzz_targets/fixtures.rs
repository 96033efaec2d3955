//! Fuzzes the fixture format and the fixture runner: the input's first byte picks a policy
//! folder of the repository, the rest is one fixture file (`fixtures/fuzz.toml`), run with
//! the folder's `fixtures/common.toml` (so `include = ["common.toml"]` resolves) against the
//! folder's snapshot, as `portcullis test` would. Reports and diagnostics are rendered in
//! both output formats. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_engine::{fixtures, SourceFile, FIXTURES_DIR};

fuzz_target!(|data: &[u8]| {
    let Some((folder, _, rest)) = portcullis_fuzz::split(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut files = vec![SourceFile {
        path: format!("{FIXTURES_DIR}/fuzz.toml"),
        text: text.to_owned(),
    }];
    let common = format!("{FIXTURES_DIR}/common.toml");
    files.extend(
        folder
            .sources
            .fixtures
            .iter()
            .filter(|f| f.path == common)
            .cloned(),
    );
    match fixtures::run_files(&folder.snapshot, &files) {
        Ok(report) => {
            let _ = report.render_human(folder.name, true);
            let _ = report.render_junit(folder.name);
        }
        Err(diags) => {
            let _ = diags.render_human(folder.name);
            let _ = diags.render_json(folder.name);
        }
    }
});
