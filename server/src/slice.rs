//! Entity slices: the few entities one decision needs, never everything the server knows.
//!
//! Input: the resolved principal, action and resource of a request, the entities the request
//! carries inline (Cedar JSON, validated against the schema here), and an [`EntitySource`]
//! that knows stored entities (today the static entities file; the user store plugs in behind
//! the same trait). Output: a Cedar `Entities` holding the inline entities, the principal and
//! the resource with their ancestors from the source, and the action with its groups.
//!
//! Stored entities are kept compact: the file is validated against the schema once, entity
//! by entity, and each entity is kept as its type index, id, direct parents (indexes) and
//! attribute values in a small tree ([`Val`]); a Cedar `Entity` is built only for the handful
//! of entities a slice needs. A 100,000-entity file costs tens of megabytes, not hundreds.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

use cedar_policy::{
    Entities, Entity, EntityId, EntityTypeName, EntityUid, EvalResult, RestrictedExpression, Schema,
};
use portcullis_engine::{Reach, RequestError};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

/// Where stored entities come from.
pub trait EntitySource: Send + Sync {
    /// Pushes the entity `uid` and every one of its ancestors that the source knows.
    fn slice_into(
        &self,
        uid: &EntityUid,
        out: &mut Vec<Entity>,
        seen: &mut HashSet<EntityUid>,
    ) -> Result<(), RequestError>;

    /// Pushes the entities that the attributes and tags of the stored entity `uid` name
    /// (none when the source does not hold it).
    fn refs_into(&self, uid: &EntityUid, out: &mut Vec<EntityUid>);
}

/// An attribute or tag value of a stored entity.
#[derive(Debug)]
enum Val {
    Bool(bool),
    Long(i64),
    Str(Box<str>),
    /// An entity, by node index.
    Entity(u32),
    Set(Box<[Val]>),
    /// Fields by interned name.
    Record(Box<[(u32, Val)]>),
    /// An extension value (`ip(..)`, `decimal(..)`, ...), rare enough to keep as Cedar has it.
    Ext(Box<RestrictedExpression>),
}

/// What a stored entity holds beyond its uid.
#[derive(Debug)]
struct Data {
    /// Direct parents, by node index.
    parents: Box<[u32]>,
    attrs: Box<[(u32, Val)]>,
    tags: Box<[(u32, Val)]>,
}

/// A uid the store knows of: a stored entity, or one only named by a parent or an attribute.
#[derive(Debug)]
struct Node {
    ty: u16,
    id: Box<str>,
    /// Inline rather than boxed: nearly every node is a stored entity.
    data: Option<Data>,
}

/// The id of node `i` ("" past the end, which no lookup matches with a real id's hash).
fn node_id(nodes: &[Node], i: u32) -> &str {
    nodes.get(i as usize).map_or("", |n| &n.id)
}

fn id_hash(hasher: &std::collections::hash_map::RandomState, nodes: &[Node], i: u32) -> u64 {
    hasher.hash_one(node_id(nodes, i))
}

/// Entities held in memory: the static entities file, parsed once into a compact form.
#[derive(Debug, Default)]
pub struct StaticEntities {
    types: Vec<EntityTypeName>,
    type_index: HashMap<EntityTypeName, u16>,
    /// Per type, node indexes hashed by their node's id (the id is kept once, in the node).
    ids: Vec<hashbrown::HashTable<u32>>,
    hasher: std::collections::hash_map::RandomState,
    nodes: Vec<Node>,
    /// Interned attribute, record-field and tag names.
    names: Vec<Box<str>>,
    name_index: HashMap<Box<str>, u32>,
    /// Entities other than the schema's actions.
    count: usize,
}

impl StaticEntities {
    /// No entities.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a Cedar JSON entity array against the schema, one entity at a time, so the
    /// whole file never exists as one Cedar `Entities` (or one JSON tree).
    pub fn from_json_str(text: &str, schema: &Schema) -> Result<Self, String> {
        Self::from_json(serde_json::Deserializer::from_str(text), schema)
    }

    /// Like [`Self::from_json_str`], reading as it parses: a large file never sits in memory
    /// as text beside the entities it becomes.
    pub fn from_json_reader(reader: impl std::io::Read, schema: &Schema) -> Result<Self, String> {
        Self::from_json(
            serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader)),
            schema,
        )
    }

    fn from_json<'de, R: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<R>,
        schema: &Schema,
    ) -> Result<Self, String> {
        let mut store = Self::default();
        let mut failure: Option<String> = None;
        let mut i = 0usize;
        let mut each = |v: Value| -> bool {
            let result = store.add_json(v, schema);
            if let Err(m) = result {
                failure = Some(format!("entity {i}: {m}"));
                return false;
            }
            i += 1;
            true
        };
        let parsed = EachElement(&mut each)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Some(f) = failure {
            return Err(f);
        }
        parsed.map_err(|e| crate::lower_first(&e.to_string()))?;
        store.check_acyclic()?;
        let StaticEntities {
            ids, nodes, hasher, ..
        } = &mut store;
        for table in ids.iter_mut() {
            table.shrink_to_fit(|&i| id_hash(hasher, nodes, i));
        }
        store.nodes.shrink_to_fit();
        store.name_index = HashMap::new();
        Ok(store)
    }

    fn add_json(&mut self, v: Value, schema: &Schema) -> Result<(), String> {
        let e = Entity::from_json_value(v, Some(schema)).map_err(|e| crate::lower_first(&e.to_string()))?;
        let uid = e.uid();
        // The schema's action entities are served from the schema, never from data.
        if uid.type_name().basename() == "Action" {
            return Ok(());
        }
        // A node may exist already, named as a parent or in an attribute; one with data was
        // given before.
        let at = self.node(&uid) as usize;
        if self.nodes.get(at).is_some_and(|n| n.data.is_some()) {
            return Err(format!("`{uid}` is given twice"));
        }
        let mut attrs = Vec::new();
        for (name, value) in e.attrs() {
            let value = value.map_err(|e| crate::lower_first(&e.to_string()))?;
            let n = self.name(name);
            attrs.push((n, self.val(&value)?));
        }
        let mut tags = Vec::new();
        for (name, value) in e.tags() {
            let value = value.map_err(|e| crate::lower_first(&e.to_string()))?;
            let n = self.name(name);
            tags.push((n, self.val(&value)?));
        }
        let (_, _, parents) = e.into_inner();
        let parents: Box<[u32]> = parents.iter().map(|p| self.node(p)).collect();
        if let Some(node) = self.nodes.get_mut(at) {
            node.data = Some(Data {
                parents,
                attrs: attrs.into_boxed_slice(),
                tags: tags.into_boxed_slice(),
            });
        }
        self.count += 1;
        Ok(())
    }

    fn type_idx(&mut self, t: &EntityTypeName) -> u16 {
        if let Some(i) = self.type_index.get(t) {
            return *i;
        }
        let i = u16::try_from(self.types.len()).unwrap_or(u16::MAX);
        self.types.push(t.clone());
        self.type_index.insert(t.clone(), i);
        self.ids.push(hashbrown::HashTable::new());
        i
    }

    fn name(&mut self, n: &str) -> u32 {
        if let Some(i) = self.name_index.get(n) {
            return *i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(n.into());
        self.name_index.insert(n.into(), i);
        i
    }

    /// The node of a uid, added when new.
    fn node(&mut self, uid: &EntityUid) -> u32 {
        let ty = self.type_idx(uid.type_name());
        let id = uid.id().unescaped();
        let hash = self.hasher.hash_one(id);
        let Self {
            ids, nodes, hasher, ..
        } = self;
        let Some(table) = ids.get_mut(usize::from(ty)) else {
            return u32::MAX;
        };
        if let Some(i) = table.find(hash, |&i| node_id(nodes, i) == id) {
            return *i;
        }
        let i = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
        table.insert_unique(hash, i, |&j| id_hash(hasher, nodes, j));
        self.nodes.push(Node {
            ty,
            id: id.into(),
            data: None,
        });
        i
    }

    fn val(&mut self, v: &EvalResult) -> Result<Val, String> {
        Ok(match v {
            EvalResult::Bool(b) => Val::Bool(*b),
            EvalResult::Long(l) => Val::Long(*l),
            EvalResult::String(s) => Val::Str(s.as_str().into()),
            EvalResult::EntityUid(u) => Val::Entity(self.node(u)),
            EvalResult::Set(s) => Val::Set(s.iter().map(|m| self.val(m)).collect::<Result<_, _>>()?),
            EvalResult::Record(r) => Val::Record(
                r.iter()
                    .map(|(k, m)| Ok((self.name(k), self.val(m)?)))
                    .collect::<Result<_, String>>()?,
            ),
            EvalResult::ExtensionValue(s) => Val::Ext(Box::new(
                RestrictedExpression::from_str(s).map_err(|e| format!("extension value `{s}`: {e}"))?,
            )),
        })
    }

    /// Refuses a parent hierarchy with a cycle, as Cedar does for a whole entity set.
    fn check_acyclic(&self) -> Result<(), String> {
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if state.get(start).copied() != Some(0) {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            if let Some(s) = state.get_mut(start) {
                *s = 1;
            }
            while let Some((n, next)) = stack.last().copied() {
                let parents = self
                    .nodes
                    .get(n)
                    .and_then(|x| x.data.as_ref())
                    .map_or(&[][..], |d| &d.parents[..]);
                if let Some(&p) = parents.get(next) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    let p = p as usize;
                    match state.get(p).copied() {
                        Some(0) => {
                            if let Some(s) = state.get_mut(p) {
                                *s = 1;
                            }
                            stack.push((p, 0));
                        }
                        Some(1) => {
                            return Err(format!(
                                "the entity hierarchy has a cycle through `{}`",
                                self.uid(p as u32).map_or_else(String::new, |u| u.to_string())
                            ))
                        }
                        _ => {}
                    }
                } else {
                    if let Some(s) = state.get_mut(n) {
                        *s = 2;
                    }
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// How many entities it holds, not counting the schema's actions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when it holds `uid` itself (not only a reference to it from another entity).
    pub fn holds(&self, uid: &EntityUid) -> bool {
        self.find(uid)
            .and_then(|i| self.nodes.get(i as usize))
            .is_some_and(|n| n.data.is_some())
    }

    fn find(&self, uid: &EntityUid) -> Option<u32> {
        let ty = self.type_index.get(uid.type_name())?;
        let id = uid.id().unescaped();
        self.ids
            .get(usize::from(*ty))?
            .find(self.hasher.hash_one(id), |&i| node_id(&self.nodes, i) == id)
            .copied()
    }

    /// The held ancestors of `uid` (not itself), nearest first; none when it is not held.
    pub fn ancestors(&self, uid: &EntityUid) -> Vec<EntityUid> {
        let mut out: Vec<EntityUid> = Vec::new();
        let Some(start) = self.find(uid) else {
            return out;
        };
        let mut stack = vec![start];
        let mut seen = HashSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            let Some(d) = self.nodes.get(i as usize).and_then(|n| n.data.as_ref()) else {
                continue;
            };
            for p in d.parents.iter() {
                if let Some(pu) = self.uid(*p) {
                    out.push(pu);
                    stack.push(*p);
                }
            }
        }
        out
    }

    fn uid(&self, i: u32) -> Option<EntityUid> {
        let n = self.nodes.get(i as usize)?;
        let ty = self.types.get(usize::from(n.ty))?;
        Some(EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(&n.id)))
    }

    fn expr(&self, v: &Val) -> Result<RestrictedExpression, RequestError> {
        Ok(match v {
            Val::Bool(b) => RestrictedExpression::new_bool(*b),
            Val::Long(l) => RestrictedExpression::new_long(*l),
            Val::Str(s) => RestrictedExpression::new_string(s.to_string()),
            Val::Entity(i) => RestrictedExpression::new_entity_uid(self.uid(*i).ok_or_else(corrupt)?),
            Val::Set(s) => {
                RestrictedExpression::new_set(s.iter().map(|m| self.expr(m)).collect::<Result<Vec<_>, _>>()?)
            }
            Val::Record(r) => RestrictedExpression::new_record(self.fields(r)?)
                .map_err(|e| RequestError::Entities(crate::lower_first(&e.to_string())))?,
            Val::Ext(e) => RestrictedExpression::clone(e),
        })
    }

    fn fields(&self, r: &[(u32, Val)]) -> Result<Vec<(String, RestrictedExpression)>, RequestError> {
        r.iter()
            .map(|(k, v)| {
                let name = self.names.get(*k as usize).ok_or_else(corrupt)?;
                Ok((name.to_string(), self.expr(v)?))
            })
            .collect()
    }

    /// Builds the Cedar entity of a stored node.
    fn entity(&self, uid: EntityUid, d: &Data) -> Result<Entity, RequestError> {
        let parents: Vec<EntityUid> = d
            .parents
            .iter()
            .map(|p| self.uid(*p).ok_or_else(corrupt))
            .collect::<Result<_, _>>()?;
        Entity::new_with_tags(uid, self.fields(&d.attrs)?, parents, self.fields(&d.tags)?)
            .map_err(|e| RequestError::Entities(crate::lower_first(&e.to_string())))
    }
}

fn corrupt() -> RequestError {
    RequestError::Entities("the stored entities are inconsistent".to_owned())
}

impl EntitySource for StaticEntities {
    fn slice_into(
        &self,
        uid: &EntityUid,
        out: &mut Vec<Entity>,
        seen: &mut HashSet<EntityUid>,
    ) -> Result<(), RequestError> {
        if seen.contains(uid) {
            return Ok(());
        }
        let Some(start) = self.find(uid) else {
            return Ok(());
        };
        // Depth-first over direct parents: every stored ancestor joins the slice, so Cedar's
        // closure over the slice equals the closure over the whole store.
        let mut stack = vec![(start, uid.clone())];
        while let Some((i, u)) = stack.pop() {
            if !seen.insert(u.clone()) {
                continue;
            }
            let Some(d) = self.nodes.get(i as usize).and_then(|n| n.data.as_ref()) else {
                continue;
            };
            for p in d.parents.iter() {
                if let Some(pu) = self.uid(*p) {
                    if !seen.contains(&pu) {
                        stack.push((*p, pu));
                    }
                }
            }
            out.push(self.entity(u, d)?);
        }
        Ok(())
    }

    fn refs_into(&self, uid: &EntityUid, out: &mut Vec<EntityUid>) {
        let Some(d) = self
            .find(uid)
            .and_then(|i| self.nodes.get(i as usize))
            .and_then(|n| n.data.as_ref())
        else {
            return;
        };
        for (_, v) in d.attrs.iter().chain(d.tags.iter()) {
            self.val_refs(v, out);
        }
    }
}

impl StaticEntities {
    fn val_refs(&self, v: &Val, out: &mut Vec<EntityUid>) {
        match v {
            Val::Entity(i) => out.extend(self.uid(*i)),
            Val::Set(s) => s.iter().for_each(|m| self.val_refs(m, out)),
            Val::Record(r) => r.iter().for_each(|(_, m)| self.val_refs(m, out)),
            Val::Bool(_) | Val::Long(_) | Val::Str(_) | Val::Ext(_) => {}
        }
    }
}

/// Calls a function on each element of a JSON array while it is being read.
struct EachElement<'f, F>(&'f mut F);

impl<'de, F: FnMut(Value) -> bool> DeserializeSeed<'de> for EachElement<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Value) -> bool> Visitor<'de> for EachElement<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of entities")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            if !(self.0)(v) {
                // Stop at the first bad entity; drain nothing more.
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// The schema's action entities, one Cedar entity per action (its groups in its ancestors).
#[derive(Debug, Default)]
pub struct ActionEntities {
    entities: HashMap<EntityUid, Entity>,
}

impl ActionEntities {
    /// From the schema's action entities.
    pub fn new(entities: &Entities) -> Self {
        Self {
            entities: entities.iter().map(|e| (e.uid(), e.clone())).collect(),
        }
    }

    /// Pushes the action and its groups.
    fn slice_into(&self, action: &EntityUid, out: &mut Vec<Entity>, seen: &mut HashSet<EntityUid>) {
        let mut stack = vec![action.clone()];
        while let Some(a) = stack.pop() {
            if !seen.insert(a.clone()) {
                continue;
            }
            let Some(e) = self.entities.get(&a) else {
                continue;
            };
            let (_, _, parents) = e.clone().into_inner();
            stack.extend(parents.into_iter().filter(|p| !seen.contains(p)));
            out.push(e.clone());
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
    /// Entities that the attributes and tags of inline entities name, which the source may
    /// hold: a policy can reach them (`principal.manager`).
    refs: Vec<EntityUid>,
}

impl Inline {
    /// Parses Cedar JSON entities against the schema.
    pub fn parse(values: &[Value], schema: &Schema) -> Result<Self, RequestError> {
        Self::parse_owned(values.to_vec(), schema)
    }

    /// Parses Cedar JSON entities against the schema, taking them.
    pub fn parse_owned(values: Vec<Value>, schema: &Schema) -> Result<Self, RequestError> {
        Self::parse_cached(values, schema, None)
    }

    /// Like [`Inline::parse_owned`], reusing entities `cache` already parsed from the same
    /// JSON under the same schema (the cache belongs to one served bundle).
    pub fn parse_cached(
        values: Vec<Value>,
        schema: &Schema,
        cache: Option<&InlineCache>,
    ) -> Result<Self, RequestError> {
        let mut out = Self::default();
        if values.is_empty() {
            return Ok(out);
        }
        out.entities.reserve(values.len());
        for (i, v) in values.into_iter().enumerate() {
            if let Some(parents) = v.get("parents").and_then(Value::as_array) {
                out.parents.extend(parents.iter().filter_map(parent_uid));
            }
            let parse = |v: Value| {
                Entity::from_json_value(v, Some(schema)).map_err(|e| {
                    RequestError::Entities(format!("entity {i}: {}", crate::lower_first(&e.to_string())))
                })
            };
            let e = match cache {
                Some(c) if c.capacity > 0 => c.get_or_parse(v, parse)?,
                _ => parse(v)?,
            };
            for (_, v) in e.attrs().chain(e.tags()) {
                if let Ok(v) = v {
                    eval_refs(&v, &mut out.refs);
                }
            }
            if !out.uids.insert(e.uid()) {
                return Err(RequestError::Entities(format!(
                    "entity {i}: `{}` is given twice",
                    e.uid()
                )));
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

/// Inline entities already parsed and validated under one served bundle's schema, by their
/// JSON text. The same text under the same schema always parses to the same entity, so a hit
/// is exactly what Cedar would build; errors are never kept. Bounded: when full it starts
/// over.
#[derive(Debug)]
pub struct InlineCache {
    capacity: usize,
    map: std::sync::Mutex<HashMap<String, Entity>>,
}

impl InlineCache {
    /// A cache of at most `capacity` entities (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn get_or_parse(
        &self,
        v: Value,
        parse: impl FnOnce(Value) -> Result<Entity, RequestError>,
    ) -> Result<Entity, RequestError> {
        let Ok(key) = serde_json::to_string(&v) else {
            return parse(v);
        };
        if let Some(hit) = self.map.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let e = parse(v)?;
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(key, e.clone());
        }
        Ok(e)
    }
}

fn parent_uid(v: &Value) -> Option<EntityUid> {
    let v = v.get("__entity").unwrap_or(v);
    let ty = v.get("type")?.as_str()?;
    let id = v.get("id")?.as_str()?;
    let ty = EntityTypeName::from_str(ty).ok()?;
    Some(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// The entities a Cedar value names, at any depth of sets and records.
fn eval_refs(v: &EvalResult, out: &mut Vec<EntityUid>) {
    match v {
        EvalResult::EntityUid(u) => out.push(u.clone()),
        EvalResult::Set(s) => s.iter().for_each(|m| eval_refs(m, out)),
        EvalResult::Record(r) => r.iter().for_each(|(_, m)| eval_refs(m, out)),
        EvalResult::Bool(_) | EvalResult::Long(_) | EvalResult::String(_) | EvalResult::ExtensionValue(_) => {
        }
    }
}

/// The entities a request context names (Cedar JSON: `{"__entity": {"type", "id"}}` or, where
/// the schema types the attribute, `{"type", "id"}`). Over-collecting is harmless: a slice
/// may hold more than a decision reads, never less.
pub fn context_refs(context: &serde_json::Map<String, Value>) -> Vec<EntityUid> {
    fn walk(v: &Value, out: &mut Vec<EntityUid>) {
        match v {
            Value::Object(m) => {
                if let Some(u) = parent_uid(v) {
                    out.push(u);
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    context.values().for_each(|v| walk(v, &mut out));
    out
}

/// The roots of one decision's slice besides its inline entities.
#[derive(Debug, Clone, Copy)]
pub struct Roots<'a> {
    /// The request's principal.
    pub principal: &'a EntityUid,
    /// The request's action.
    pub action: &'a EntityUid,
    /// The request's resource.
    pub resource: &'a EntityUid,
    /// Entities the request's context names ([`context_refs`]).
    pub context: &'a [EntityUid],
}

/// Builds the slice of one decision: the inline entities, then from `source` every entity
/// the policies can reach from the request: the principal, the resource, the entities the
/// context, the inline entities and the policies' literals name, and the entities their
/// attributes name, as many steps deep as `reach` says the policies can look; each with its
/// ancestors. Then the action and its groups from `actions`. Inline entities win over stored
/// ones with the same uid.
///
/// Cedar's answer over this slice is its answer over everything the server holds: an entity
/// left out is one no policy can read (see [`portcullis_engine::Reach`]).
pub fn build_slice(
    source: &dyn EntitySource,
    actions: &ActionEntities,
    reach: &Reach,
    roots: Roots<'_>,
    inline: &Inline,
) -> Result<Entities, RequestError> {
    let mut out: Vec<Entity> = Vec::with_capacity(inline.entities.len() + 8);
    out.extend(inline.entities.iter().cloned());
    let mut seen = if inline.uids.is_empty() {
        HashSet::with_capacity(8)
    } else {
        inline.uids.clone()
    };
    // (entity, attribute steps from a root); each entity is followed once, at its nearest.
    let mut todo: Vec<(EntityUid, usize)> = Vec::with_capacity(8);
    todo.extend(
        [roots.principal, roots.resource]
            .into_iter()
            .map(|u| (u.clone(), 0)),
    );
    todo.extend(roots.context.iter().map(|u| (u.clone(), 0)));
    todo.extend(reach.literals.iter().map(|u| (u.clone(), 0)));
    todo.extend(inline.parents.iter().map(|u| (u.clone(), 0)));
    todo.extend(inline.refs.iter().map(|u| (u.clone(), 1)));
    let mut followed: HashMap<EntityUid, usize> = HashMap::new();
    let mut refs = Vec::new();
    while let Some((uid, steps)) = todo.pop() {
        if !reach.reads(steps) || followed.get(&uid).is_some_and(|&s| s <= steps) {
            continue;
        }
        followed.insert(uid.clone(), steps);
        source.slice_into(&uid, &mut out, &mut seen)?;
        if actions.entities.contains_key(&uid) {
            actions.slice_into(&uid, &mut out, &mut seen);
        }
        // An inline entity's own references are in `inline.refs`; a stored one's come from
        // the source.
        if !inline.uids.contains(&uid) && reach.reads(steps + 1) {
            source.refs_into(&uid, &mut refs);
            todo.extend(refs.drain(..).map(|r| (r, steps + 1)));
        }
    }
    actions.slice_into(roots.action, &mut out, &mut seen);
    Entities::from_entities(out, None).map_err(|e| RequestError::Entities(crate::lower_first(&e.to_string())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::str::FromStr;

    use cedar_policy::{Entities, EntityUid, Schema};

    use portcullis_engine::Reach;

    use super::{build_slice, ActionEntities, Inline, Roots, StaticEntities};

    const SCHEMA: &str = r#"
        namespace N {
          entity G in [G];
          entity U in [G] = {
            name: String, n: Long, ok: Bool, g: G, tags: Set<String>, gs: Set<G>,
            rec: { a: Long, b?: Set<G> }, ip: ipaddr, d: decimal, opt?: String,
          };
          action "a" appliesTo { principal: U, resource: G, context: {} };
        }
    "#;

    const DATA: &str = r#"[
        {"uid": {"type": "N::G", "id": "root"}, "attrs": {}, "parents": []},
        {"uid": {"type": "N::G", "id": "mid"}, "attrs": {}, "parents": [{"type": "N::G", "id": "root"}]},
        {"uid": {"type": "N::U", "id": "u"}, "parents": [{"type": "N::G", "id": "mid"}, {"type": "N::G", "id": "nowhere"}],
         "attrs": {"name": "Ü \"q\"", "n": -7, "ok": true, "g": {"type": "N::G", "id": "root"},
                   "tags": ["x", "y"], "gs": [{"__entity": {"type": "N::G", "id": "mid"}}],
                   "rec": {"a": 1, "b": [{"type": "N::G", "id": "root"}]},
                   "ip": "10.0.0.0/8", "d": {"__extn": {"fn": "decimal", "arg": "1.25"}}}}
    ]"#;

    fn uid(s: &str) -> EntityUid {
        EntityUid::from_str(s).unwrap()
    }

    #[test]
    fn compact_entities_rebuild_exactly_what_cedar_parses() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let full = Entities::from_json_str(DATA, Some(&schema)).unwrap();
        let store = StaticEntities::from_json_str(DATA, &schema).unwrap();
        assert_eq!(store.len(), 3);
        let actions = ActionEntities::new(&schema.action_entities().unwrap());
        let (p, a, r) = (
            uid(r#"N::U::"u""#),
            uid(r#"N::Action::"a""#),
            uid(r#"N::G::"root""#),
        );
        let roots = Roots {
            principal: &p,
            action: &a,
            resource: &r,
            context: &[],
        };
        let reach = Reach {
            depth: Some(0),
            literals: Vec::new(),
        };
        let slice = build_slice(&store, &actions, &reach, roots, &Inline::default()).unwrap();
        let got: HashSet<String> = slice.iter().map(|e| e.uid().to_string()).collect();
        assert_eq!(got.len(), 4, "{got:?}");
        for e in slice.iter() {
            assert_eq!(Some(e), full.get(&e.uid()), "{}", e.uid());
        }
    }

    /// The server allowed what Cedar denies: `bob`, reached only through `principal.manager`,
    /// was missing from the slice, so `principal.manager in Group::"blocked"` was false and
    /// the `forbid` never applied.
    #[test]
    fn entities_reached_through_attributes_are_in_the_slice() {
        let (schema, _) = Schema::from_cedarschema_str(
            r#"entity Group; entity User in [Group] = { manager: User }; entity Doc;
               action view appliesTo { principal: User, resource: Doc, context: {} };"#,
        )
        .unwrap();
        let policies: cedar_policy::PolicySet = r#"
            @id("everyone-views") permit (principal, action == Action::"view", resource);
            @id("blocked-managers-team") forbid (principal, action == Action::"view", resource)
              when { principal.manager in Group::"blocked" };"#
            .parse()
            .unwrap();
        let data = r#"[
            {"uid": {"type": "User", "id": "alice"}, "attrs": {"manager": {"type": "User", "id": "bob"}}, "parents": []},
            {"uid": {"type": "User", "id": "bob"}, "attrs": {"manager": {"type": "User", "id": "carol"}}, "parents": [{"type": "Group", "id": "blocked"}]},
            {"uid": {"type": "User", "id": "carol"}, "attrs": {"manager": {"type": "User", "id": "carol"}}, "parents": []},
            {"uid": {"type": "Group", "id": "blocked"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Doc", "id": "d"}, "attrs": {}, "parents": []}
        ]"#;
        let store = StaticEntities::from_json_str(data, &schema).unwrap();
        let actions = ActionEntities::new(&schema.action_entities().unwrap());
        let reach = Reach::of(&policies);
        assert_eq!(reach.depth, Some(2));
        let (p, a, r) = (
            uid(r#"User::"alice""#),
            uid(r#"Action::"view""#),
            uid(r#"Doc::"d""#),
        );
        let roots = Roots {
            principal: &p,
            action: &a,
            resource: &r,
            context: &[],
        };
        let slice = build_slice(&store, &actions, &reach, roots, &Inline::default()).unwrap();
        let got: HashSet<String> = slice.iter().map(|e| e.uid().to_string()).collect();
        assert!(got.contains(r#"User::"bob""#), "{got:?}");
        assert!(got.contains(r#"Group::"blocked""#), "{got:?}");
        let request = cedar_policy::Request::new(
            p.clone(),
            a.clone(),
            r.clone(),
            cedar_policy::Context::empty(),
            Some(&schema),
        )
        .unwrap();
        let full = Entities::from_json_str(data, Some(&schema)).unwrap();
        let authorizer = cedar_policy::Authorizer::new();
        let expected = authorizer.is_authorized(&request, &policies, &full).decision();
        assert_eq!(expected, cedar_policy::Decision::Deny);
        assert_eq!(
            authorizer.is_authorized(&request, &policies, &slice).decision(),
            expected
        );

        // The same through an inline principal: its `manager` is looked up in the store.
        let inline = Inline::parse_owned(
            serde_json::from_str(
                r#"[{"uid": {"type": "User", "id": "alice"}, "attrs": {"manager": {"type": "User", "id": "bob"}}, "parents": []}]"#,
            )
            .unwrap(),
            &schema,
        )
        .unwrap();
        let slice = build_slice(&store, &actions, &reach, roots, &inline).unwrap();
        assert_eq!(
            authorizer.is_authorized(&request, &policies, &slice).decision(),
            expected
        );
    }

    #[test]
    fn cached_inline_entities_are_the_parsed_ones_and_errors_are_not_kept() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let values: Vec<serde_json::Value> = serde_json::from_str(DATA).unwrap();
        let cache = super::InlineCache::new(8);
        let plain = Inline::parse_owned(values.clone(), &schema).unwrap();
        for _ in 0..2 {
            let cached = Inline::parse_cached(values.clone(), &schema, Some(&cache)).unwrap();
            assert_eq!(cached.entities, plain.entities);
            assert_eq!(cached.parents, plain.parents);
        }
        let bad: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"uid": {"type": "N::G", "id": "g"}, "attrs": {"x": 1}, "parents": []}]"#,
        )
        .unwrap();
        for _ in 0..2 {
            assert!(Inline::parse_cached(bad.clone(), &schema, Some(&cache)).is_err());
        }
    }

    #[test]
    fn bad_and_cyclic_files_are_refused() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let bad = r#"[{"uid": {"type": "N::G", "id": "g"}, "attrs": {"x": 1}, "parents": []}]"#;
        assert!(StaticEntities::from_json_str(bad, &schema)
            .unwrap_err()
            .starts_with("entity 0:"));
        let twice = r#"[{"uid": {"type": "N::G", "id": "g"}, "attrs": {}, "parents": []},
                        {"uid": {"type": "N::G", "id": "g"}, "attrs": {}, "parents": []}]"#;
        assert!(StaticEntities::from_json_str(twice, &schema)
            .unwrap_err()
            .contains("twice"));
        let cycle = r#"[{"uid": {"type": "N::G", "id": "a"}, "attrs": {}, "parents": [{"type": "N::G", "id": "b"}]},
                        {"uid": {"type": "N::G", "id": "b"}, "attrs": {}, "parents": [{"type": "N::G", "id": "a"}]}]"#;
        assert!(StaticEntities::from_json_str(cycle, &schema)
            .unwrap_err()
            .contains("cycle"));
        assert!(StaticEntities::from_json_str("{}", &schema).is_err());
    }
}
