//! Cedar's schema-directed entity parser with each entity type described once.
//!
//! `cedar_policy::Entity::from_json_str` wraps the schema in Cedar's `CoreSchema`, which
//! builds a new description of an entity's type for every entity it parses: a copy of the
//! type's attributes, a scan of every type for the allowed parents, and each attribute's
//! type converted again at each lookup. An entities file of 100,000 entities paid that
//! 100,000 times. [`EntityParser`] asks Cedar's `CoreSchema` once per type and answers every
//! entity from those answers, so the parse (its checks, values and errors) stays Cedar's own.

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

/// Cedar's `CoreSchema` with its entity type descriptions made once.
#[derive(Debug)]
pub struct DescribedSchema<'a> {
    core: CoreSchema<'a>,
    types: HashMap<ast::EntityType, TypeDescription>,
}

impl<'a> DescribedSchema<'a> {
    /// Describes every entity type of `schema`, as Cedar's `CoreSchema` does.
    pub fn new(schema: &'a Schema) -> Self {
        use cedar_policy_core::entities::Schema as _;
        let validator: &'a ValidatorSchema = schema.as_ref();
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
        Self { core, types }
    }
}

impl<'a> cedar_policy_core::entities::Schema for DescribedSchema<'a> {
    type EntityTypeDescription = TypeDescription;
    type ActionEntityIterator = <CoreSchema<'a> as cedar_policy_core::entities::Schema>::ActionEntityIterator;

    fn entity_type(&self, entity_type: &ast::EntityType) -> Option<TypeDescription> {
        self.types.get(entity_type).cloned()
    }

    fn action(&self, action: &ast::EntityUID) -> Option<Arc<ast::Entity>> {
        self.core.action(action)
    }

    fn entity_types_with_basename<'b>(
        &'b self,
        basename: &'b ast::UnreservedId,
    ) -> Box<dyn Iterator<Item = ast::EntityType> + 'b> {
        self.core.entity_types_with_basename(basename)
    }

    fn action_entities(&self) -> Self::ActionEntityIterator {
        self.core.action_entities()
    }
}

/// Parses single entities against a schema exactly as `cedar_policy::Entity::from_json_str`
/// does, with the schema described once.
pub struct EntityParser<'s> {
    parser: EntityJsonParser<'s, 's, DescribedSchema<'s>>,
}

impl<'s> EntityParser<'s> {
    /// A parser over `schema` (described in [`DescribedSchema::new`]).
    pub fn new(schema: &'s DescribedSchema<'s>) -> Self {
        Self {
            parser: EntityJsonParser::new(
                Some(schema),
                Extensions::all_available(),
                TCComputation::ComputeNow,
            ),
        }
    }

    /// One entity from its JSON text.
    pub fn parse(&self, text: &str) -> Result<cedar_policy::Entity, EntitiesError> {
        self.parser
            .single_from_json_str(text)
            .map(cedar_policy::Entity::from)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{Entity, Schema};

    use super::{DescribedSchema, EntityParser};

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
        let parser = EntityParser::new(&described);
        let mut failures = 0;
        for text in CASES {
            let ours = parser.parse(text);
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
