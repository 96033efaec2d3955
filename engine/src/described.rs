//! Cedar's schema-directed entity parser with each entity type described once.
//!
//! `cedar_policy::Entity::from_json_str` wraps the schema in Cedar's `CoreSchema`, which
//! builds a new description of an entity's type for every entity it parses: a copy of the
//! type's attributes, a scan of every type for the allowed parents, and each attribute's
//! type converted again at each lookup. An entities file of 100,000 entities paid that
//! 100,000 times, and a request paid it for each entity it carried. [`DescribedSchema`] asks
//! Cedar's `CoreSchema` once per type and answers every entity from those answers, so the
//! parse (its checks, values and errors) stays Cedar's own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::Schema;
use cedar_policy_core::ast;
use cedar_policy_core::entities::err::EntitiesError;
use cedar_policy_core::entities::{EntityJsonParser, EntityTypeDescription, SchemaType, TCComputation};
use cedar_policy_core::extensions::Extensions;
use cedar_policy_core::validator::{CoreSchema, ValidatorSchema};
use nonempty::NonEmpty;
use smol_str::SmolStr;

/// What Cedar's `CoreSchema` says of one entity type, asked once.
#[derive(Debug)]
struct Described {
    /// Cedar's own description (required attributes, enumerated ids, ...).
    cedar: cedar_policy_core::validator::EntityTypeDescription,
    /// Each declared attribute's type, converted once.
    attrs: HashMap<SmolStr, SchemaType>,
    tag: Option<SchemaType>,
    parents: Arc<HashSet<ast::EntityType>>,
}

/// A shared [`Described`]: what the parser gets for each entity of the type.
#[derive(Debug, Clone)]
pub struct TypeDescription(Arc<Described>);

impl EntityTypeDescription for TypeDescription {
    fn entity_type(&self) -> ast::EntityType {
        self.0.cedar.entity_type()
    }

    fn attr_type(&self, attr: &str) -> Option<SchemaType> {
        self.0.attrs.get(attr).cloned()
    }

    fn tag_type(&self) -> Option<SchemaType> {
        self.0.tag.clone()
    }

    fn required_attrs<'s>(&'s self) -> Box<dyn Iterator<Item = SmolStr> + 's> {
        self.0.cedar.required_attrs()
    }

    fn allowed_parent_types(&self) -> Arc<HashSet<ast::EntityType>> {
        Arc::clone(&self.0.parents)
    }

    fn open_attributes(&self) -> bool {
        self.0.cedar.open_attributes()
    }

    fn enum_entity_eids(&self) -> Option<&NonEmpty<ast::Eid>> {
        self.0.cedar.enum_entity_eids()
    }

    fn is_external(&self) -> bool {
        self.0.cedar.is_external()
    }
}

/// A schema with its entity type descriptions made once (by Cedar's `CoreSchema`), for
/// Cedar's entity parser. Owns its copy of the schema, so a snapshot keeps it beside its own.
#[derive(Debug, Clone)]
pub struct DescribedSchema {
    schema: Schema,
    types: HashMap<ast::EntityType, TypeDescription>,
}

impl DescribedSchema {
    /// Describes every entity type of `schema`, as Cedar's `CoreSchema` does.
    pub fn new(schema: &Schema) -> Self {
        use cedar_policy_core::entities::Schema as _;
        let validator: &ValidatorSchema = schema.as_ref();
        let core = CoreSchema::new(validator);
        let types = validator
            .entity_types()
            .filter_map(|et| {
                let name = et.name();
                let cedar = core.entity_type(name)?;
                let attrs = et
                    .attributes()
                    .iter()
                    .filter_map(|(attr, _)| Some((attr.clone(), cedar.attr_type(attr)?)))
                    .collect();
                let described = Described {
                    tag: cedar.tag_type(),
                    parents: cedar.allowed_parent_types(),
                    attrs,
                    cedar,
                };
                Some((name.clone(), TypeDescription(Arc::new(described))))
            })
            .collect();
        Self {
            schema: schema.clone(),
            types,
        }
    }

    /// The schema described.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn core(&self) -> CoreSchema<'_> {
        CoreSchema::new(self.schema.as_ref())
    }

    /// One entity from its JSON text, exactly as `cedar_policy::Entity::from_json_str` with
    /// this schema parses it.
    pub fn parse_str(&self, text: &str) -> Result<cedar_policy::Entity, Box<EntitiesError>> {
        self.parser()
            .single_from_json_str(text)
            .map(cedar_policy::Entity::from)
            .map_err(Box::new)
    }

    /// One entity from a JSON value, exactly as `cedar_policy::Entity::from_json_value` with
    /// this schema parses it.
    pub fn parse_value(&self, value: serde_json::Value) -> Result<cedar_policy::Entity, Box<EntitiesError>> {
        self.parser()
            .single_from_json_value(value)
            .map(cedar_policy::Entity::from)
            .map_err(Box::new)
    }

    fn parser(&self) -> EntityJsonParser<'_, '_, Self> {
        EntityJsonParser::new(Some(self), Extensions::all_available(), TCComputation::ComputeNow)
    }
}

impl cedar_policy_core::entities::Schema for DescribedSchema {
    type EntityTypeDescription = TypeDescription;
    type ActionEntityIterator = std::vec::IntoIter<Arc<ast::Entity>>;

    fn entity_type(&self, entity_type: &ast::EntityType) -> Option<TypeDescription> {
        self.types.get(entity_type).cloned()
    }

    fn action(&self, action: &ast::EntityUID) -> Option<Arc<ast::Entity>> {
        self.core().action(action)
    }

    fn entity_types_with_basename<'b>(
        &'b self,
        basename: &'b ast::UnreservedId,
    ) -> Box<dyn Iterator<Item = ast::EntityType> + 'b> {
        let core = self.core();
        let found: Vec<ast::EntityType> = core.entity_types_with_basename(basename).collect();
        Box::new(found.into_iter())
    }

    fn action_entities(&self) -> Self::ActionEntityIterator {
        self.core().action_entities().collect::<Vec<_>>().into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{Entity, Schema};

    use super::DescribedSchema;

    const SCHEMA: &str = r#"
        namespace N {
          entity G in [G];
          entity E enum ["a", "b"];
          entity U in [G] = {
            name: String, n: Long, ok: Bool, g: G, tags: Set<String>, gs: Set<G>,
            rec: { a: Long, b?: Set<G> }, ip: ipaddr, d: decimal, opt?: String,
          } tags String;
          action "a" appliesTo { principal: U, resource: G, context: {} };
        }
    "#;

    /// Entities good and bad: each must parse to Cedar's entity, or fail with Cedar's error.
    const CASES: &[&str] = &[
        r#"{"uid": {"type": "N::G", "id": "root"}, "attrs": {}, "parents": []}"#,
        r#"{"uid": {"type": "N::U", "id": "u"}, "parents": [{"type": "N::G", "id": "root"}],
            "attrs": {"name": "Ü", "n": -7, "ok": true, "g": {"type": "N::G", "id": "root"},
                      "tags": ["x"], "gs": [{"__entity": {"type": "N::G", "id": "m"}}],
                      "rec": {"a": 1, "b": []}, "ip": "10.0.0.1", "d": {"__extn": {"fn": "decimal", "arg": "1.5"}}},
            "tags": {"t": "v"}}"#,
        r#"{"uid": {"type": "N::U", "id": "missing"}, "parents": [], "attrs": {"name": "x"}}"#,
        r#"{"uid": {"type": "N::U", "id": "wrong"}, "parents": [],
            "attrs": {"name": 1, "n": 1, "ok": true, "g": {"type": "N::G", "id": "r"}, "tags": [], "gs": [],
                      "rec": {"a": 1}, "ip": "10.0.0.1", "d": "1.0"}}"#,
        r#"{"uid": {"type": "N::U", "id": "extra"}, "parents": [],
            "attrs": {"name": "x", "n": 1, "ok": true, "g": {"type": "N::G", "id": "r"}, "tags": [], "gs": [],
                      "rec": {"a": 1}, "ip": "10.0.0.1", "d": "1.0", "zzz": 1}}"#,
        r#"{"uid": {"type": "N::G", "id": "badparent"}, "attrs": {}, "parents": [{"type": "N::U", "id": "u"}]}"#,
        r#"{"uid": {"type": "N::E", "id": "a"}, "attrs": {}, "parents": []}"#,
        r#"{"uid": {"type": "N::E", "id": "c"}, "attrs": {}, "parents": []}"#,
        r#"{"uid": {"type": "N::Nope", "id": "x"}, "attrs": {}, "parents": []}"#,
        r#"{"uid": {"type": "N::Action", "id": "a"}, "attrs": {}, "parents": []}"#,
        r#"{"uid": {"type": "N::G", "id": "t"}, "attrs": {}, "parents": [], "tags": {"x": "y"}}"#,
    ];

    #[test]
    fn entities_parse_as_cedars_own_parser_parses_them() {
        let schema = Schema::from_str(SCHEMA).unwrap();
        let described = DescribedSchema::new(&schema);
        let mut failures = 0;
        for text in CASES {
            let ours = described.parse_str(text);
            let from_value = described.parse_value(serde_json::from_str(text).unwrap());
            assert_eq!(
                ours.as_ref().map_err(ToString::to_string),
                from_value.as_ref().map_err(ToString::to_string),
                "{text}"
            );
            let cedars = Entity::from_json_str(text, Some(&schema));
            match (ours, cedars) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(a), Err(b)) => {
                    failures += 1;
                    assert_eq!(a.to_string(), b.to_string(), "{text}");
                }
                (a, b) => panic!("{text}: ours {a:?}, Cedar's {b:?}"),
            }
        }
        // The cases exercise both outcomes.
        assert!(failures >= 5, "{failures} failures");
        assert!(failures < CASES.len() - 2, "{failures} failures");
    }
}
