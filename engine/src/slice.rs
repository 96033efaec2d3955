//! Entity slices: the few entities one decision needs, never everything the server knows.
//!
//! Input: the resolved principal, action and resource of a request, the entities the request
//! carries inline (Cedar JSON, validated against the schema here), and the held
//! [`StaticEntities`] (the static entities file). Output: a Cedar `Entities` holding the
//! inline entities, every held entity the policies can read from the request, and the action
//! with its groups.
//!
//! Stored entities are kept compact: the file is validated against the schema once, entity
//! by entity, and each entity is kept as its type index, id, direct parents (indexes) and
//! attribute values ([`Val`]: sets, records and extension values kept once as Cedar values
//! and shared); a Cedar entity is built only for the handful of entities a slice needs,
//! straight from those values, with its ancestors complete. A 100,000-entity file costs tens of megabytes, not hundreds.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

use std::sync::Arc;

use crate::described::DescribedSchema;
use crate::{Reach, RequestError};
use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid, Schema};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;
use smol_str::SmolStr;

/// A Cedar entity as a slice holds it: shared, so a slice of held entities copies none.
pub type CoreEntity = Arc<ast::Entity>;

/// An attribute or tag value of a stored entity.
#[derive(Debug)]
enum Val {
    Bool(bool),
    Long(i64),
    Str(Box<str>),
    /// An entity, by node index.
    Entity(u32),
    /// A set, record or extension value, by index in [`StaticEntities::shared`].
    Shared(u32),
}

/// A set, record or extension value, kept once as Cedar holds it: equal values of different
/// entities share one copy (`[]` and `["insights"]` are everywhere), and a slice clones it by
/// a reference count.
#[derive(Debug)]
struct SharedVal {
    value: ast::Value,
    /// The nodes of the entities it names (which a policy can reach through it).
    refs: Box<[u32]>,
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

fn id_hash(hasher: &foldhash::fast::RandomState, nodes: &[Node], i: u32) -> u64 {
    hasher.hash_one(node_id(nodes, i))
}

/// Entities held in memory: the static entities file, parsed once into a compact form.
#[derive(Debug, Default)]
pub struct StaticEntities {
    types: Vec<EntityTypeName>,
    /// The same types as Cedar's core holds them, for building uids without conversions.
    core_types: Vec<ast::EntityType>,
    /// Looked up for every root of every slice: hashed fast (foldhash), not with SipHash.
    type_index: HashMap<EntityTypeName, u16, foldhash::fast::RandomState>,
    /// Per type, node indexes hashed by their node's id (the id is kept once, in the node).
    ids: Vec<hashbrown::HashTable<u32>>,
    hasher: foldhash::fast::RandomState,
    nodes: Vec<Node>,
    /// Interned attribute, record-field and tag names.
    names: Vec<SmolStr>,
    /// Interned sets, records and extension values.
    shared: Vec<SharedVal>,
    /// While loading: the index of each shared value.
    shared_index: std::collections::BTreeMap<ast::Value, u32>,
    name_index: HashMap<Box<str>, u32>,
    /// Per type, the nodes of held entities in id order (for search, whose pages follow it).
    sorted: Vec<Box<[u32]>>,
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
        // Cedar's schema-directed parse of each entity is most of the work: it runs on every
        // core, in chunks, while this thread reads the JSON and one more adds the parsed
        // entities in file order (so node order, errors and their indexes are those of a
        // parse one entity at a time).
        const CHUNK: usize = 256;
        type Parsed = Vec<Result<Entity, String>>;
        type Raw = RawElement;
        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Raw>)>(workers * 2);
        let raw_rx = std::sync::Mutex::new(raw_rx);
        // Each entity type described once for every worker, not once per entity.
        let described = crate::described::DescribedSchema::new(schema);
        let described = &described;
        let (store, parsed) = std::thread::scope(|scope| {
            let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<(usize, Parsed)>(workers * 2);
            for _ in 0..workers {
                let (raw_rx, done_tx) = (&raw_rx, done_tx.clone());
                scope.spawn(move || loop {
                    let job = match raw_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, values)) = job else { return };
                    let out = values
                        .into_iter()
                        .map(|v| {
                            // From the entity's text, not a JSON tree: Cedar reads it straight
                            // into its own form.
                            described
                                .parse_str(v.get())
                                .map_err(|e| crate::error::error_text(&e))
                        })
                        .collect();
                    if done_tx.send((seq, out)).is_err() {
                        return;
                    }
                });
            }
            drop(done_tx);
            let failed = &failed;
            let adder = scope.spawn(move || {
                let mut store = Self::default();
                let mut waiting: std::collections::BTreeMap<usize, Parsed> =
                    std::collections::BTreeMap::new();
                let (mut next, mut i) = (0usize, 0usize);
                let mut failure: Option<String> = None;
                // Drains every chunk, also after a failure, so no sender ever blocks.
                for (seq, chunk) in done_rx {
                    waiting.insert(seq, chunk);
                    while let Some(chunk) = waiting.remove(&next) {
                        next += 1;
                        for e in chunk {
                            if failure.is_none() {
                                if let Err(m) = e.and_then(|e| store.add(e)) {
                                    failure = Some(format!("entity {i}: {m}"));
                                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            i += 1;
                        }
                    }
                }
                failure.map_or(Ok(store), Err)
            });
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut seq = 0usize;
            let mut each = |v: Raw| -> bool {
                chunk.push(v);
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if raw_tx.send((seq, full)).is_err() {
                        return false;
                    }
                    seq += 1;
                }
                !failed.load(std::sync::atomic::Ordering::Relaxed)
            };
            let parsed = EachElement(&mut each)
                .deserialize(&mut de)
                .and_then(|()| de.end());
            if !chunk.is_empty() {
                // A send fails only when every parser is gone, and then the adder says why.
                let _ = raw_tx.send((seq, chunk));
            }
            drop(raw_tx);
            let store = adder
                .join()
                .unwrap_or_else(|_| Err("the entity loader stopped unexpectedly".to_owned()));
            (store, parsed)
        });
        // A bad entity explains a stopped parse; otherwise the JSON's own error does.
        let mut store = store?;
        parsed.map_err(|e| crate::error::lower_first(&e.to_string()))?;
        store.check_acyclic()?;
        let StaticEntities {
            ids, nodes, hasher, ..
        } = &mut store;
        for table in ids.iter_mut() {
            table.shrink_to_fit(|&i| id_hash(hasher, nodes, i));
        }
        store.nodes.shrink_to_fit();
        let mut sorted: Vec<Vec<u32>> = vec![Vec::new(); store.types.len()];
        for (i, n) in store.nodes.iter().enumerate() {
            if let (Some(_), Some(v), Ok(i)) = (&n.data, sorted.get_mut(usize::from(n.ty)), u32::try_from(i))
            {
                v.push(i);
            }
        }
        for v in &mut sorted {
            v.sort_unstable_by(|a, b| node_id(&store.nodes, *a).cmp(node_id(&store.nodes, *b)));
        }
        store.sorted = sorted.into_iter().map(Vec::into_boxed_slice).collect();
        store.name_index = HashMap::new();
        store.shared_index = std::collections::BTreeMap::new();
        store.shared.shrink_to_fit();
        Ok(store)
    }

    fn add(&mut self, e: Entity) -> Result<(), String> {
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
        let core: &ast::Entity = e.as_ref();
        let mut attrs = Vec::new();
        for (name, value) in core.attrs() {
            let n = self.name(name);
            attrs.push((n, self.val(partial(value)?)));
        }
        let mut tags = Vec::new();
        for (name, value) in core.tags() {
            let n = self.name(name);
            tags.push((n, self.val(partial(value)?)));
        }
        // Its parents and any ancestors it already names, as `Entity::into_inner` gives them,
        // without converting its attributes back to expressions as that does.
        let mut parents: Vec<u32> = core
            .ancestors()
            .map(|p| self.node(&EntityUid::from(ast::EntityUID::clone(p))))
            .collect();
        parents.sort_unstable();
        parents.dedup();
        let parents = parents.into_boxed_slice();
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
        self.core_types.push(AsRef::<ast::EntityType>::as_ref(t).clone());
        self.type_index.insert(t.clone(), i);
        self.ids.push(hashbrown::HashTable::new());
        i
    }

    fn name(&mut self, n: &str) -> u32 {
        if let Some(i) = self.name_index.get(n) {
            return *i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(SmolStr::new(n));
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

    fn val(&mut self, v: &ast::Value) -> Val {
        match v.value_kind() {
            ast::ValueKind::Lit(ast::Literal::Bool(b)) => Val::Bool(*b),
            ast::ValueKind::Lit(ast::Literal::Long(l)) => Val::Long(*l),
            ast::ValueKind::Lit(ast::Literal::String(s)) => Val::Str(s.as_str().into()),
            ast::ValueKind::Lit(ast::Literal::EntityUID(u)) => {
                Val::Entity(self.node(&EntityUid::from(ast::EntityUID::clone(u))))
            }
            ast::ValueKind::Set(_) | ast::ValueKind::Record(_) | ast::ValueKind::ExtensionValue(_) => {
                if let Some(i) = self.shared_index.get(v) {
                    return Val::Shared(*i);
                }
                let mut uids = Vec::new();
                core_refs(v, &mut uids);
                let refs = uids
                    .iter()
                    .map(|u| self.node(&EntityUid::from(u.clone())))
                    .collect();
                let i = u32::try_from(self.shared.len()).unwrap_or(u32::MAX);
                self.shared.push(SharedVal {
                    value: v.clone(),
                    refs,
                });
                self.shared_index.insert(v.clone(), i);
                Val::Shared(i)
            }
        }
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

    /// The ids of the held entities of type `ty` that sort after `after` (all without it),
    /// in id order.
    pub fn ids_after<'a>(
        &'a self,
        ty: &EntityTypeName,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let nodes = self
            .type_index
            .get(ty)
            .and_then(|t| self.sorted.get(usize::from(*t)))
            .map_or(&[][..], |v| &v[..]);
        let start = after.map_or(0, |a| nodes.partition_point(|&i| node_id(&self.nodes, i) <= a));
        nodes
            .get(start..)
            .unwrap_or_default()
            .iter()
            .map(|&i| node_id(&self.nodes, i))
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

    /// Every held entity as Cedar holds it (ancestors complete), with the schema's actions:
    /// the whole store as one Cedar `Entities`, for a store small enough to keep so.
    /// Attributes no policy of `reach` reads are left out.
    pub fn to_entities(&self, actions: &ActionEntities, reach: &Reach) -> Result<Entities, RequestError> {
        let mut out: Vec<CoreEntity> = Vec::with_capacity(self.count + actions.entities.len());
        for (i, n) in self.nodes.iter().enumerate() {
            let (Some(d), Ok(i)) = (&n.data, u32::try_from(i)) else {
                continue;
            };
            out.push(Arc::new(self.entity(i, d, true, reach)?));
        }
        out.extend(actions.entities.values().map(|a| a.entity.clone()));
        cedar_policy_core::entities::Entities::new()
            .add_entities(
                out,
                None::<&NoEntitiesSchema>,
                TCComputation::AssumeAlreadyComputed,
                Extensions::all_available(),
            )
            .map(Entities::from)
            .map_err(|e| RequestError::Entities(crate::error::error_text(&e)))
    }

    /// The uid of node `i` as Cedar's core holds it.
    fn core_uid(&self, i: u32) -> Option<ast::EntityUID> {
        let n = self.nodes.get(i as usize)?;
        let ty = self.core_types.get(usize::from(n.ty))?;
        Some(ast::EntityUID::from_components(
            ty.clone(),
            ast::Eid::new(&*n.id),
            None,
        ))
    }

    /// A stored value as the Cedar value it was loaded from.
    fn value(&self, v: &Val) -> Result<ast::Value, RequestError> {
        Ok(match v {
            Val::Bool(b) => ast::Value::from(*b),
            Val::Long(l) => ast::Value::from(*l),
            Val::Str(s) => ast::Value::from(SmolStr::new(s)),
            Val::Entity(i) => ast::Value::from(self.core_uid(*i).ok_or_else(corrupt)?),
            Val::Shared(i) => self.shared.get(*i as usize).ok_or_else(corrupt)?.value.clone(),
        })
    }

    fn fields(
        &self,
        r: &[(u32, Val)],
        reach: Option<&Reach>,
    ) -> Result<Vec<(SmolStr, ast::PartialValue)>, RequestError> {
        let mut out = Vec::with_capacity(r.len());
        for (k, v) in r {
            let name = self.names.get(*k as usize).ok_or_else(corrupt)?;
            if reach.is_none_or(|reach| reach.reads_attr(name)) {
                out.push((name.clone(), ast::PartialValue::from(self.value(v)?)));
            }
        }
        Ok(out)
    }

    /// Builds the Cedar entity of stored node `i`. `closed`: with its ancestors complete (its
    /// parents, and through every held parent that parent's ancestors, as Cedar's closure
    /// over the whole file has them), so a slice of such entities needs no closure of its
    /// own; otherwise with its parents only, for a slice Cedar closes. Without the attributes
    /// no policy of `reach` reads (its tags all kept: a tag's name can be computed).
    fn entity(&self, i: u32, d: &Data, closed: bool, reach: &Reach) -> Result<ast::Entity, RequestError> {
        let mut parents = HashSet::with_capacity(d.parents.len());
        let mut indirect = HashSet::new();
        let mut seen: Vec<u32> = d.parents.to_vec();
        let mut stack: Vec<u32> = if closed { d.parents.to_vec() } else { Vec::new() };
        for p in d.parents.iter() {
            parents.insert(self.core_uid(*p).ok_or_else(corrupt)?);
        }
        while let Some(p) = stack.pop() {
            let Some(pd) = self.nodes.get(p as usize).and_then(|n| n.data.as_ref()) else {
                continue;
            };
            for g in pd.parents.iter() {
                if seen.contains(g) {
                    continue;
                }
                seen.push(*g);
                stack.push(*g);
                let gu = self.core_uid(*g).ok_or_else(corrupt)?;
                if !parents.contains(&gu) {
                    indirect.insert(gu);
                }
            }
        }
        let uid = self.core_uid(i).ok_or_else(corrupt)?;
        let (attrs, tags) = (self.fields(&d.attrs, Some(reach))?, self.fields(&d.tags, None)?);
        Ok(ast::Entity::new_with_attr_partial_value(
            uid, attrs, indirect, parents, tags,
        ))
    }
}

/// Pushes the entity uids a Cedar value names, in sets and records at any depth.
fn core_refs(v: &ast::Value, out: &mut Vec<ast::EntityUID>) {
    match v.value_kind() {
        ast::ValueKind::Lit(ast::Literal::EntityUID(u)) => out.push(ast::EntityUID::clone(u)),
        ast::ValueKind::Set(s) => s.iter().for_each(|m| core_refs(m, out)),
        ast::ValueKind::Record(r) => r.values().for_each(|m| core_refs(m, out)),
        ast::ValueKind::Lit(_) | ast::ValueKind::ExtensionValue(_) => {}
    }
}

/// The concrete value of an attribute loaded from JSON (never a residual).
fn partial(v: &ast::PartialValue) -> Result<&ast::Value, String> {
    match v {
        ast::PartialValue::Value(v) => Ok(v),
        ast::PartialValue::Residual(_) => Err("an attribute holds an unknown".to_owned()),
    }
}

fn corrupt() -> RequestError {
    RequestError::Entities("the stored entities are inconsistent".to_owned())
}

impl StaticEntities {
    /// The data of node `i`, when the file holds that entity (not only names it).
    fn data(&self, i: u32) -> Option<&Data> {
        self.nodes.get(i as usize).and_then(|n| n.data.as_ref())
    }

    /// Calls `f` with every held ancestor's node of node `i` (parents first, each once).
    fn ancestor_nodes(&self, i: u32, mut f: impl FnMut(u32)) {
        let mut stack: Vec<u32> = self.data(i).map_or_else(Vec::new, |d| d.parents.to_vec());
        let mut seen: Vec<u32> = Vec::new();
        while let Some(p) = stack.pop() {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            if let Some(pd) = self.data(p) {
                f(p);
                stack.extend(pd.parents.iter().copied());
            }
        }
    }

    /// Pushes the nodes the attributes and tags of `d` name.
    fn ref_nodes(&self, d: &Data, out: &mut Vec<u32>) {
        for (_, v) in d.attrs.iter().chain(d.tags.iter()) {
            match v {
                Val::Entity(j) => out.push(*j),
                Val::Shared(k) => {
                    out.extend(self.shared.get(*k as usize).map_or(&[][..], |s| &s.refs[..]));
                }
                Val::Bool(_) | Val::Long(_) | Val::Str(_) => {}
            }
        }
    }
}

/// Calls a function on each element of a JSON array while it is being read (each element
/// as its own text, which a parser reads without building a JSON tree first).
struct EachElement<'f, F>(&'f mut F);

type RawElement = Box<serde_json::value::RawValue>;

impl<'de, F: FnMut(RawElement) -> bool> DeserializeSeed<'de> for EachElement<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(RawElement) -> bool> Visitor<'de> for EachElement<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of entities")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<RawElement>()? {
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
    entities: HashMap<EntityUid, Action>,
}

/// One action of the schema, with its groups as the schema's closure has them.
#[derive(Debug)]
struct Action {
    entity: CoreEntity,
    groups: Vec<EntityUid>,
    /// The groups' entities (the groups the schema declares as actions).
    group_entities: Vec<CoreEntity>,
}

impl ActionEntities {
    /// From the schema's action entities.
    pub fn new(entities: &Entities) -> Self {
        let core = |e: &Entity| -> CoreEntity { Arc::new(AsRef::<ast::Entity>::as_ref(e).clone()) };
        Self {
            entities: entities
                .iter()
                .map(|e| {
                    let c: &ast::Entity = e.as_ref();
                    let groups: Vec<EntityUid> = c.ancestors().map(|a| EntityUid::from(a.clone())).collect();
                    let group_entities = groups.iter().filter_map(|g| entities.get(g)).map(core).collect();
                    let action = Action {
                        entity: core(e),
                        groups,
                        group_entities,
                    };
                    (e.uid(), action)
                })
                .collect(),
        }
    }

    /// Pushes the action and its groups (already closed: the schema's action entities carry
    /// every group they are in), those not in `seen`.
    fn slice_into(&self, action: &EntityUid, out: &mut Vec<CoreEntity>, seen: &mut HashSet<EntityUid>) {
        let Some(a) = self.entities.get(action) else {
            return;
        };
        if seen.is_empty() {
            // The first action in: it and its groups are distinct.
            seen.insert(action.clone());
            seen.extend(a.groups.iter().cloned());
            out.push(a.entity.clone());
            out.extend(a.group_entities.iter().cloned());
            return;
        }
        if seen.insert(action.clone()) {
            out.push(a.entity.clone());
        }
        for g in &a.groups {
            if !seen.contains(g) {
                if let Some(ga) = self.entities.get(g) {
                    seen.insert(g.clone());
                    out.push(ga.entity.clone());
                }
            }
        }
    }

    /// Pushes the request's action and its groups, when no other action is in the slice.
    fn push_alone(&self, action: &EntityUid, out: &mut Vec<CoreEntity>) {
        if let Some(a) = self.entities.get(action) {
            out.push(a.entity.clone());
            out.extend(a.group_entities.iter().cloned());
        }
    }
}

/// Inline entities of a request, validated and ready to join a slice.
#[derive(Debug, Default, Clone)]
pub struct Inline {
    entities: Vec<CoreEntity>,
    uids: HashSet<EntityUid>,
    /// Parents named by inline entities, which the source may know.
    parents: Vec<EntityUid>,
    /// Entities that the attributes and tags of inline entities name, which the source may
    /// hold: a policy can reach them (`principal.manager`).
    refs: Vec<EntityUid>,
}

impl Inline {
    /// Parses Cedar JSON entities against the schema.
    pub fn parse(values: &[Value], schema: &DescribedSchema) -> Result<Self, RequestError> {
        Self::parse_owned(values.to_vec(), schema)
    }

    /// Parses Cedar JSON entities against the schema, taking them.
    pub fn parse_owned(values: Vec<Value>, schema: &DescribedSchema) -> Result<Self, RequestError> {
        Self::parse_cached(values, schema, None::<&NoCache>)
    }

    /// Like [`Inline::parse_owned`], reusing entities `cache` already parsed from the same
    /// JSON under the same schema (the cache belongs to one served bundle).
    pub fn parse_cached(
        values: Vec<Value>,
        schema: &DescribedSchema,
        cache: Option<&(impl ParseCache + ?Sized)>,
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
                schema.parse_value(v).map_err(|e| {
                    RequestError::Entities(format!("entity {i}: {}", crate::error::error_text(&e)))
                })
            };
            let e = match cache {
                Some(c) => c.get_or_parse(v, &mut { parse })?,
                None => parse(v)?,
            };
            // Read off Cedar's values (`Entity::attrs` converts each one for the caller).
            let core: &ast::Entity = e.as_ref();
            let mut named = Vec::new();
            for (_, v) in core.attrs().chain(core.tags()) {
                if let ast::PartialValue::Value(v) = v {
                    core_refs(v, &mut named);
                }
            }
            out.refs.extend(named.into_iter().map(EntityUid::from));
            if !out.uids.insert(e.uid()) {
                return Err(RequestError::Entities(format!(
                    "entity {i}: `{}` is given twice",
                    e.uid()
                )));
            }
            out.entities.push(Arc::new(ast::Entity::clone(e.as_ref())));
        }
        Ok(out)
    }

    /// True when the request carries no entities.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The entities, in the order given.
    pub fn entities(&self) -> &[CoreEntity] {
        &self.entities
    }
}

/// Where [`Inline::parse_cached`] finds entities parsed before: the same JSON under the same
/// schema always parses to the same entity, so a cache may answer with what it kept.
pub trait ParseCache {
    /// The entity `v` parses to: kept, or from `parse` (whose errors are never kept).
    fn get_or_parse(
        &self,
        v: Value,
        parse: &mut dyn FnMut(Value) -> Result<Entity, RequestError>,
    ) -> Result<Entity, RequestError>;
}

/// No cache: every entity is parsed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

impl ParseCache for NoCache {
    fn get_or_parse(
        &self,
        v: Value,
        parse: &mut dyn FnMut(Value) -> Result<Entity, RequestError>,
    ) -> Result<Entity, RequestError> {
        parse(v)
    }
}

fn parent_uid(v: &Value) -> Option<EntityUid> {
    let v = v.get("__entity").unwrap_or(v);
    let ty = v.get("type")?.as_str()?;
    let id = v.get("id")?.as_str()?;
    let ty = EntityTypeName::from_str(ty).ok()?;
    Some(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
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
/// the policies can read from the request: the principal, the resource, the entities the
/// context, the inline entities and the policies' literals name, and the entities their
/// attributes name, as many steps deep as `reach` says the policies can look. Then the action
/// and its groups from `actions`. Inline entities win over stored ones with the same uid.
///
/// Cedar's answer over this slice is its answer over everything the server holds: an entity
/// left out is one no policy can read (see [`portcullis_engine::Reach`]). Without inline
/// entities, a held entity comes with its ancestors complete ([`StaticEntities::entity`]), so
/// the slice needs neither its ancestors' entities nor a transitive closure. With inline ones,
/// held entities come with their parents, their held ancestors join the slice (except those an
/// inline entity replaces) and Cedar closes it: an inline entity below a held one is below
/// that one's ancestors too, and a replaced ancestor's stored parents count for nothing.
///
/// The walk runs on node indexes: no uid is built or hashed for an entity that turns out to
/// be out of reach.
pub fn build_slice(
    source: &StaticEntities,
    actions: &ActionEntities,
    reach: &Reach,
    roots: Roots<'_>,
    inline: &Inline,
) -> Result<Entities, RequestError> {
    let mut out: Vec<CoreEntity> = Vec::with_capacity(inline.entities.len() + 8);
    out.extend(inline.entities.iter().cloned());
    let with_ancestors = !inline.is_empty();
    // Held nodes an inline entity shadows.
    let shadowed: Vec<u32> = inline.uids.iter().filter_map(|u| source.find(u)).collect();
    // Each node to visit with its budget: how many more nested data reads can reach it.
    // An entity's data is read only with a budget of at least 1; its attributes' entities
    // get one less. The request's own entities always join (a policy's scope reads their
    // ancestors), whatever their budget.
    let budget = |d: Option<usize>| d.unwrap_or(usize::MAX);
    let all = budget(reach.depth);
    let mut todo: Vec<(u32, usize, bool)> = Vec::with_capacity(8);
    // Uids the source does not hold (actions named in a context, say).
    let mut elsewhere: Vec<&EntityUid> = Vec::new();
    let roots_with_budget = [
        (roots.principal, budget(reach.from_var("principal"))),
        (roots.resource, budget(reach.from_var("resource"))),
    ];
    // The context's entities and the policies' literals are measured from the whole set's
    // depth (a context entity sits one record access below `context`, so that bound holds).
    let others = roots
        .context
        .iter()
        .chain(reach.literals.iter())
        .chain(inline.parents.iter())
        .map(|u| (u, all));
    let inline_refs = inline.refs.iter().map(|u| (u, all.saturating_sub(1)));
    for (uid, b) in roots_with_budget.into_iter().chain(others) {
        match source.find(uid) {
            Some(i) => todo.push((i, b, true)),
            None => elsewhere.push(uid),
        }
    }
    for (uid, b) in inline_refs {
        match source.find(uid) {
            Some(i) => todo.push((i, b, false)),
            None => elsewhere.push(uid),
        }
    }
    let mut followed: HashMap<u32, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut include: Vec<u32> = Vec::with_capacity(8);
    let mut included: HashSet<u32, foldhash::fast::RandomState> = HashSet::default();
    let mut refs: Vec<u32> = Vec::new();
    while let Some((i, b, root)) = todo.pop() {
        if (b == 0 && !root) || followed.get(&i).is_some_and(|&seen| seen >= b) || shadowed.contains(&i) {
            continue;
        }
        followed.insert(i, b);
        let Some(d) = source.data(i) else {
            continue;
        };
        if included.insert(i) {
            include.push(i);
        }
        if with_ancestors {
            source.ancestor_nodes(i, |a| {
                if !shadowed.contains(&a) && included.insert(a) {
                    include.push(a);
                }
            });
        }
        if b >= 2 {
            source.ref_nodes(d, &mut refs);
            todo.extend(refs.drain(..).map(|r| (r, b - 1, false)));
        }
    }
    for i in include {
        if let Some(d) = source.data(i) {
            out.push(Arc::new(source.entity(i, d, !with_ancestors, reach)?));
        }
    }
    if elsewhere.is_empty() {
        actions.push_alone(roots.action, &mut out);
    } else {
        let mut seen: HashSet<EntityUid> = HashSet::new();
        for uid in elsewhere {
            actions.slice_into(uid, &mut out, &mut seen);
        }
        actions.slice_into(roots.action, &mut out, &mut seen);
    }
    // Held and action entities carry their ancestors complete; inline ones only their parents.
    let tc = if with_ancestors {
        TCComputation::ComputeNow
    } else {
        TCComputation::AssumeAlreadyComputed
    };
    cedar_policy_core::entities::Entities::new()
        .add_entities(out, None::<&NoEntitiesSchema>, tc, Extensions::all_available())
        .map(Entities::from)
        .map_err(|e| RequestError::Entities(crate::error::error_text(&e)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::str::FromStr;

    use cedar_policy::{Entities, EntityUid, Schema};

    use crate::Reach;

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

    /// The slice of one request without inline entities or context, and its entities' uids.
    fn slice_of(
        store: &StaticEntities,
        actions: &ActionEntities,
        reach: &Reach,
        (principal, action, resource): (&EntityUid, &EntityUid, &EntityUid),
    ) -> (Entities, HashSet<String>) {
        let roots = Roots {
            principal,
            action,
            resource,
            context: &[],
        };
        let slice = build_slice(store, actions, reach, roots, &Inline::default()).unwrap();
        let got = slice.iter().map(|e| e.uid().to_string()).collect();
        (slice, got)
    }

    fn full_entities(data: &str, schema: &Schema) -> Entities {
        Entities::from_json_str(data, Some(schema)).unwrap()
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
            vars: Some(Default::default()),
            attrs: None,
        };
        let slice = build_slice(&store, &actions, &reach, roots, &Inline::default()).unwrap();
        // The request's entities and the action; `mid`, an ancestor whose data no policy can
        // read at depth 0, is left out, but `u` holds it and `root` among its ancestors.
        let got: HashSet<String> = slice.iter().map(|e| e.uid().to_string()).collect();
        let want: HashSet<String> = [r#"N::U::"u""#, r#"N::G::"root""#, r#"N::Action::"a""#]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(got, want);
        for e in slice.iter() {
            assert_eq!(Some(e), full.get(&e.uid()), "{}", e.uid());
        }
    }

    #[test]
    fn the_whole_store_is_what_cedar_parses_with_the_schemas_actions() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let full = Entities::from_json_str(DATA, Some(&schema)).unwrap();
        let store = StaticEntities::from_json_str(DATA, &schema).unwrap();
        let actions = ActionEntities::new(&schema.action_entities().unwrap());
        let everything = Reach {
            depth: None,
            literals: Vec::new(),
            vars: None,
            attrs: None,
        };
        let whole = store.to_entities(&actions, &everything).unwrap();
        assert_eq!(whole.iter().count(), full.iter().count());
        for e in full.iter() {
            assert_eq!(whole.get(&e.uid()), Some(e), "{}", e.uid());
        }
    }

    #[test]
    fn attributes_no_policy_reads_are_left_out_and_decisions_stay_cedars() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let full = Entities::from_json_str(DATA, Some(&schema)).unwrap();
        let store = StaticEntities::from_json_str(DATA, &schema).unwrap();
        let actions = ActionEntities::new(&schema.action_entities().unwrap());
        let policies: cedar_policy::PolicySet = r#"
            permit (principal, action, resource) when { principal.n < 0 && principal.rec.a == 1 };
            forbid (principal, action, resource) when { principal has opt };
        "#
        .parse()
        .unwrap();
        let reach = Reach::of(&policies);
        let whole = store.to_entities(&actions, &reach).unwrap();
        let u = whole.get(&uid(r#"N::U::"u""#)).unwrap();
        assert!(u.attr("n").is_some() && u.attr("rec").is_some());
        assert!(u.attr("name").is_none() && u.attr("ip").is_none());
        let request = cedar_policy::Request::new(
            uid(r#"N::U::"u""#),
            uid(r#"N::Action::"a""#),
            uid(r#"N::G::"root""#),
            cedar_policy::Context::empty(),
            None,
        )
        .unwrap();
        let authorizer = cedar_policy::Authorizer::new();
        let ours = authorizer.is_authorized(&request, &policies, &whole);
        let cedars = authorizer.is_authorized(&request, &policies, &full);
        assert_eq!(ours.decision(), cedars.decision());
        assert_eq!(ours.decision(), cedar_policy::Decision::Allow);
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
        let (slice, got) = slice_of(&store, &actions, &reach, (&p, &a, &r));
        assert!(got.contains(r#"User::"bob""#), "{got:?}");
        // `bob` comes with his group among his ancestors (the group's own data is never read).
        let bob = slice.get(&uid(r#"User::"bob""#)).unwrap();
        assert_eq!(Some(bob), full_entities(data, &schema).get(&bob.uid()));
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
            &crate::described::DescribedSchema::new(&schema),
        )
        .unwrap();
        let roots = Roots {
            principal: &p,
            action: &a,
            resource: &r,
            context: &[],
        };
        let slice = build_slice(&store, &actions, &reach, roots, &inline).unwrap();
        assert_eq!(
            authorizer.is_authorized(&request, &policies, &slice).decision(),
            expected
        );
    }

    /// Each request variable is followed as far as the policies read from it: the resource's
    /// `owner` is only compared, so the owner's entity (and what it names) stays out, while
    /// the principal's manager, whose groups are read, comes in; the decision is Cedar's over
    /// the whole file either way.
    #[test]
    fn each_variable_is_followed_as_far_as_policies_read_from_it() {
        let (schema, _) = Schema::from_cedarschema_str(
            r#"entity Group; entity User in [Group] = { manager: User }; entity Doc = { owner: User };
               action view appliesTo { principal: User, resource: Doc, context: {} };"#,
        )
        .unwrap();
        let policies: cedar_policy::PolicySet = r#"
            @id("owners") permit (principal, action == Action::"view", resource)
              when { resource.owner == principal };
            @id("blocked") forbid (principal, action == Action::"view", resource)
              when { principal.manager in Group::"blocked" };"#
            .parse()
            .unwrap();
        let data = r#"[
            {"uid": {"type": "User", "id": "alice"}, "attrs": {"manager": {"type": "User", "id": "bob"}}, "parents": []},
            {"uid": {"type": "User", "id": "bob"}, "attrs": {"manager": {"type": "User", "id": "carol"}}, "parents": [{"type": "Group", "id": "blocked"}]},
            {"uid": {"type": "User", "id": "carol"}, "attrs": {"manager": {"type": "User", "id": "carol"}}, "parents": []},
            {"uid": {"type": "User", "id": "dave"}, "attrs": {"manager": {"type": "User", "id": "carol"}}, "parents": []},
            {"uid": {"type": "Group", "id": "blocked"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Doc", "id": "d"}, "attrs": {"owner": {"type": "User", "id": "dave"}}, "parents": []}
        ]"#;
        let store = StaticEntities::from_json_str(data, &schema).unwrap();
        let actions = ActionEntities::new(&schema.action_entities().unwrap());
        let reach = Reach::of(&policies);
        assert_eq!(reach.from_var("principal"), Some(2));
        assert_eq!(reach.from_var("resource"), Some(1));
        let full = full_entities(data, &schema);
        let authorizer = cedar_policy::Authorizer::new();
        for who in ["alice", "bob", "dave"] {
            let (p, a, r) = (
                uid(&format!(r#"User::"{who}""#)),
                uid(r#"Action::"view""#),
                uid(r#"Doc::"d""#),
            );
            let (slice, got) = slice_of(&store, &actions, &reach, (&p, &a, &r));
            // The owner (dave) is compared, never read; the manager's manager is never read.
            if who != "dave" {
                assert!(!got.contains(r#"User::"dave""#), "{who}: {got:?}");
            }
            if who == "alice" {
                assert!(got.contains(r#"User::"bob""#), "{got:?}");
                assert!(!got.contains(r#"User::"carol""#), "{got:?}");
            }
            let request =
                cedar_policy::Request::new(p.clone(), a, r, cedar_policy::Context::empty(), Some(&schema))
                    .unwrap();
            assert_eq!(
                authorizer.is_authorized(&request, &policies, &slice).decision(),
                authorizer.is_authorized(&request, &policies, &full).decision(),
                "{who}"
            );
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

    /// Files of many chunks load on several threads: the same entities as Cedar's parse,
    /// errors named by their index in the file, a JSON error after good chunks still refused.
    #[test]
    fn large_files_load_in_file_order_with_their_errors() {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let n = 3000;
        let group = |i: usize, parent: Option<usize>| {
            let parents = parent.map_or(String::new(), |p| format!(r#"{{"type": "N::G", "id": "g{p}"}}"#));
            format!(r#"{{"uid": {{"type": "N::G", "id": "g{i}"}}, "attrs": {{}}, "parents": [{parents}]}}"#)
        };
        // Chains of ten, each group's parent later in the file (named before it is given).
        let items: Vec<String> = (0..n)
            .map(|i| group(i, ((i + 1) % 10 != 0).then_some(i + 1)))
            .collect();
        let data = format!("[{}]", items.join(","));
        let store = StaticEntities::from_json_str(&data, &schema).unwrap();
        assert_eq!(store.len(), n);
        let full = full_entities(&data, &schema);
        let actions = ActionEntities::new(&schema.action_entities().unwrap());
        let reach = Reach {
            depth: Some(0),
            literals: Vec::new(),
            vars: Some(Default::default()),
            attrs: None,
        };
        for i in [0, 255, 256, 1777, n - 1] {
            let g = uid(&format!(r#"N::G::"g{i}""#));
            let (slice, _) = slice_of(
                &store,
                &actions,
                &reach,
                (&uid(r#"N::U::"nobody""#), &uid(r#"N::Action::"a""#), &g),
            );
            assert_eq!(slice.get(&g), full.get(&g), "{g}");
            assert_eq!(store.ancestors(&g).len(), 9 - i % 10, "{g}");
        }
        let mut bad = items.clone();
        bad[1500] = r#"{"uid": {"type": "N::G", "id": "x"}, "attrs": {"x": 1}, "parents": []}"#.to_owned();
        bad[2500] = r#"{"uid": {"type": "N::G", "id": "y"}, "attrs": {"y": 1}, "parents": []}"#.to_owned();
        let err = StaticEntities::from_json_str(&format!("[{}]", bad.join(",")), &schema).unwrap_err();
        assert!(err.starts_with("entity 1500:"), "{err}");
        let mut twice = items.clone();
        twice[1777] = group(1000, None);
        let err = StaticEntities::from_json_str(&format!("[{}]", twice.join(",")), &schema).unwrap_err();
        assert!(err.starts_with("entity 1777:") && err.contains("twice"), "{err}");
        let cut = &data[..data.len() - 40];
        assert!(StaticEntities::from_json_str(cut, &schema).is_err());
    }
}
