//! Entity slices: the few entities one decision needs, never everything the server knows.
//!
//! Input: the resolved principal, action and resource of a request, the entities the request
//! carries inline (Cedar JSON, validated against the schema here), and an [`EntitySource`]
//! that knows stored entities (today the static entities file; the user store plugs in behind
//! the same trait). Output: a Cedar `Entities` holding the inline entities, the principal and
//! the resource with their ancestors from the source, and the action with its groups. Stored
//! entities are shared Cedar values; building a slice clones a handful of them, not a store.

use std::collections::HashSet;
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityUid, Schema};
use portcullis_engine::RequestError;
use serde_json::Value;

/// Where stored entities come from.
pub trait EntitySource: Send + Sync {
    /// Pushes the entity `uid` and every one of its ancestors that the source knows.
    fn slice_into(&self, uid: &EntityUid, out: &mut Vec<Entity>, seen: &mut HashSet<EntityUid>);
}

/// Entities held in memory: the static entities file, or the schema's action entities.
#[derive(Debug)]
pub struct StaticEntities {
    entities: Entities,
    /// Entities other than the schema's actions.
    count: usize,
}

impl StaticEntities {
    /// No entities.
    pub fn empty() -> Self {
        Self {
            entities: Entities::empty(),
            count: 0,
        }
    }

    /// Wraps an already validated entity set (its transitive closure computed).
    pub fn new(entities: Entities) -> Self {
        let count = entities.len();
        Self { entities, count }
    }

    /// Parses a Cedar JSON entity array against the schema.
    pub fn from_json_str(text: &str, schema: &Schema) -> Result<Self, String> {
        let entities =
            Entities::from_json_str(text, Some(schema)).map_err(|e| crate::lower_first(&e.to_string()))?;
        // Parsing with a schema adds its action entities; they are not counted as data.
        let count = entities
            .iter()
            .filter(|e| !e.uid().type_name().basename().eq("Action"))
            .count();
        Ok(Self { entities, count })
    }

    /// How many entities it holds, not counting the schema's actions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl EntitySource for StaticEntities {
    fn slice_into(&self, uid: &EntityUid, out: &mut Vec<Entity>, seen: &mut HashSet<EntityUid>) {
        if seen.contains(uid) {
            return;
        }
        let Some(e) = self.entities.get(uid) else {
            return;
        };
        seen.insert(uid.clone());
        out.push(e.clone());
        // The store's closure is computed, so the ancestors listed are all of them.
        if let Some(ancestors) = self.entities.ancestors(uid) {
            for a in ancestors {
                if seen.insert(a.clone()) {
                    if let Some(e) = self.entities.get(a) {
                        out.push(e.clone());
                    }
                }
            }
        }
    }
}

/// Inline entities of a request, validated and ready to join a slice.
#[derive(Debug, Default, Clone)]
pub struct Inline {
    entities: Vec<Entity>,
    uids: HashSet<EntityUid>,
    /// Parents named by inline entities, which the source may know.
    parents: Vec<EntityUid>,
}

impl Inline {
    /// Parses Cedar JSON entities against the schema.
    pub fn parse(values: &[Value], schema: &Schema) -> Result<Self, RequestError> {
        let mut out = Self::default();
        for (i, v) in values.iter().enumerate() {
            let e = Entity::from_json_value(v.clone(), Some(schema)).map_err(|e| {
                RequestError::Entities(format!("entity {i}: {}", crate::lower_first(&e.to_string())))
            })?;
            if !out.uids.insert(e.uid()) {
                return Err(RequestError::Entities(format!(
                    "entity {i}: `{}` is given twice",
                    e.uid()
                )));
            }
            if let Some(parents) = v.get("parents").and_then(Value::as_array) {
                out.parents.extend(parents.iter().filter_map(parent_uid));
            }
            out.entities.push(e);
        }
        Ok(out)
    }

    /// True when the request carries no entities.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }
}

fn parent_uid(v: &Value) -> Option<EntityUid> {
    let v = v.get("__entity").unwrap_or(v);
    let ty = v.get("type")?.as_str()?;
    let id = v.get("id")?.as_str()?;
    let ty = cedar_policy::EntityTypeName::from_str(ty).ok()?;
    Some(EntityUid::from_type_name_and_id(
        ty,
        cedar_policy::EntityId::new(id),
    ))
}

/// Builds the slice of one decision: inline entities, then the principal and the resource
/// with their ancestors from `source`, then the action and its groups from `actions`.
/// Inline entities win over stored ones with the same uid.
pub fn build_slice(
    source: &dyn EntitySource,
    actions: &StaticEntities,
    principal: &EntityUid,
    action: &EntityUid,
    resource: &EntityUid,
    inline: &Inline,
) -> Result<Entities, RequestError> {
    let mut out: Vec<Entity> = Vec::with_capacity(inline.entities.len() + 8);
    out.extend(inline.entities.iter().cloned());
    let mut seen = inline.uids.clone();
    for uid in [principal, resource] {
        source.slice_into(uid, &mut out, &mut seen);
    }
    for uid in &inline.parents {
        source.slice_into(uid, &mut out, &mut seen);
    }
    actions.slice_into(action, &mut out, &mut seen);
    Entities::from_entities(out, None).map_err(|e| RequestError::Entities(crate::lower_first(&e.to_string())))
}
