//! The JSON Schemas committed in `schema/` match the types serde reads; regenerate them with
//! `cargo run -p portcullis-server -- schema` when this fails.

use portcullis_tests::workspace_root;

#[test]
fn committed_json_schemas_are_current() {
    let dir = workspace_root().join("schema");
    for (name, expected) in portcullis_engine::schemas::all() {
        let path = dir.join(name);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `portcullis schema`", path.display()));
        assert!(
            committed == expected,
            "{} is out of date: run `cargo run -p portcullis-server -- schema`",
            path.display()
        );
    }
}

#[test]
fn schemas_describe_the_formats() {
    for (name, text) in portcullis_engine::schemas::all() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("properties").is_some(), "{name} has no properties");
    }
}
