//! The entity slices decisions are made over are built by [`portcullis_engine::slice`]; this
//! module adds the server's bounded cache of parsed inline entities.

use cedar_policy::Entity;
pub use portcullis_engine::slice::*;
use portcullis_engine::RequestError;
use serde_json::Value;

/// Inline entities already parsed and validated under one served bundle's schema, by their
/// JSON text. The same text under the same schema always parses to the same entity, so a hit
/// is exactly what Cedar would build; errors are never kept. Bounded (`slice_cache`).
#[derive(Debug)]
pub struct InlineCache {
    map: crate::cache::Cache<String, Entity>,
}

impl InlineCache {
    /// A cache of at most `capacity` entities (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: crate::cache::Cache::second_sight(capacity, &crate::cache::COUNTS.inline),
        }
    }
}

impl ParseCache for InlineCache {
    fn get_or_parse(
        &self,
        v: Value,
        parse: &mut dyn FnMut(Value) -> Result<Entity, RequestError>,
    ) -> Result<Entity, RequestError> {
        if !self.map.is_on() {
            return parse(v);
        }
        let Ok(key) = serde_json::to_string(&v) else {
            return parse(v);
        };
        if let Some(hit) = self.map.get(&key) {
            return Ok(hit);
        }
        let e = parse(v)?;
        self.map.insert(key, e.clone());
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use cedar_policy::Schema;

    use super::{Inline, InlineCache};

    const SCHEMA: &str = r#"
        namespace N {
          entity G in [G];
          entity U in [G] = { n: Long };
          action "a" appliesTo { principal: U, resource: G, context: {} };
        }
    "#;

    const DATA: &str = r#"[
        {"uid": {"type": "N::G", "id": "root"}, "attrs": {}, "parents": []},
        {"uid": {"type": "N::U", "id": "u"}, "attrs": {"n": 1}, "parents": [{"type": "N::G", "id": "root"}]}
    ]"#;

    #[test]
    fn cached_inline_entities_are_the_parsed_ones_and_errors_are_not_kept() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let schema = portcullis_engine::described::DescribedSchema::new(&schema);
        let values: Vec<serde_json::Value> = serde_json::from_str(DATA).unwrap();
        let cache = InlineCache::new(8);
        let plain = Inline::parse_owned(values.clone(), &schema).unwrap();
        for _ in 0..2 {
            let cached = Inline::parse_cached(values.clone(), &schema, Some(&cache)).unwrap();
            assert_eq!(cached.entities(), plain.entities());
        }
        let bad: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"uid": {"type": "N::G", "id": "g"}, "attrs": {"x": 1}, "parents": []}]"#,
        )
        .unwrap();
        for _ in 0..2 {
            assert!(Inline::parse_cached(bad.clone(), &schema, Some(&cache)).is_err());
        }
    }
}
