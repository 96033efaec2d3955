//! Fuzzes the TOML role format and its compilation: the input's first byte picks a policy
//! folder of the repository (and whether its hand-written `.cedar` files stay), the rest
//! replaces its `roles.toml`; the folder is then built with `Snapshot::build` (parse, check,
//! compile to Cedar, validate against the folder's schema). Diagnostics are rendered, as the
//! CLI would, and a model that builds has its rights matrix rendered in every format. Nothing
//! may panic; errors are the expected outcome of most inputs.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_engine::matrix::{Format, Matrix};
use portcullis_engine::{Snapshot, SourceFile, ROLES_FILE};

fuzz_target!(|data: &[u8]| {
    let Some((folder, selector, rest)) = portcullis_fuzz::split(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut sources = folder.sources.clone();
    sources.roles = Some(SourceFile {
        path: ROLES_FILE.to_owned(),
        text: text.to_owned(),
    });
    sources.fixtures.clear();
    // Every other input keeps the folder's own policies, so the compiled policies are validated
    // together with hand-written ones that name the roles' types.
    if selector & 0x80 == 0 {
        sources.cedar.clear();
    }
    match Snapshot::build(sources) {
        Ok(snapshot) => {
            let _ = snapshot.warnings().render_human(folder.name);
            if let Some(model) = snapshot.model() {
                let matrix = Matrix::of(model);
                for format in [
                    Format::Table,
                    Format::Markdown,
                    Format::Csv,
                    Format::Html,
                    Format::Json,
                ] {
                    let _ = matrix.render(format);
                }
            }
        }
        Err(diags) => {
            let _ = diags.render_human(folder.name);
            let _ = diags.render_json(folder.name);
        }
    }
});
