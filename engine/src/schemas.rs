//! JSON Schemas of the TOML formats, generated from the same types serde reads, written to
//! `schema/` by `portcullis schema` and checked current by a workspace test.

use crate::fixtures::FixtureFile;
use crate::properties::PropertyFile;
use crate::roles::raw::RawRoles;

/// `(file name, JSON text)` for every format.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("roles.schema.json", render(schemars::schema_for!(RawRoles))),
        ("fixtures.schema.json", render(schemars::schema_for!(FixtureFile))),
        (
            "properties.schema.json",
            render(schemars::schema_for!(PropertyFile)),
        ),
    ]
}

fn render(schema: schemars::Schema) -> String {
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
