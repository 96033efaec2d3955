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

/// The schemas describe the files the folders really hold: every top-level key of every
/// `roles.toml`, fixture and property file shipped here is a property of its schema, each such property
/// says what it is, and the schema refuses any other key (as the parser does), so an editor
/// underlines a typo where `portcullis check` would refuse it.
#[test]
fn schemas_describe_the_formats() {
    let schemas: std::collections::BTreeMap<&str, serde_json::Value> = portcullis_engine::schemas::all()
        .into_iter()
        .map(|(name, text)| (name, serde_json::from_str(&text).unwrap()))
        .collect();
    let mut checked = 0;
    for folder in portcullis_tests::policy_folders() {
        let mut files = vec![("roles.schema.json", folder.join("roles.toml"))];
        for (dir, schema) in [
            ("fixtures", "fixtures.schema.json"),
            ("properties", "properties.schema.json"),
        ] {
            if let Ok(entries) = std::fs::read_dir(folder.join(dir)) {
                files.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .map(|p| (schema, p)),
                );
            }
        }
        for (schema, file) in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let table: toml::Table = toml::from_str(&text).unwrap();
            let s = &schemas[schema];
            assert_eq!(s["additionalProperties"], false, "{schema} accepts unknown keys");
            let properties = s["properties"].as_object().unwrap();
            for key in table.keys() {
                let p = properties.get(key);
                assert!(p.is_some(), "{}: `{key}` is not in {schema}", file.display());
                let described = p.and_then(|p| p.get("description")).and_then(|d| d.as_str());
                assert!(
                    described.is_some_and(|d| !d.is_empty()),
                    "{schema}: `{key}` has no description"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} files checked");
}
