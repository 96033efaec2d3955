//! Names a request may use, resolved under one snapshot without the Cedar parser, and what
//! the schema accepts for each action ([`RequestShape`]), so a request whose parts fit needs no
//! validation of its own.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, Request, SchemaFragment};

use crate::diag::did_you_mean;
use crate::slice::ActionEntities;
use crate::{EntityRef, RequestError, Slot, Snapshot};

/// Names a request may use, resolved without parsing: built once per snapshot.
#[derive(Debug)]
pub struct Resolver {
    /// Entity types by full and by bare name (bare only inside the folder's namespace).
    types: HashMap<String, EntityTypeName>,
    /// Actions of the schema by full uid.
    actions: HashSet<EntityUid>,
    /// Actions of the folder's namespace by id.
    action_ids: HashMap<String, EntityUid>,
    /// The type a bare principal id names.
    user_type: Option<EntityTypeName>,
    /// The folder's company type.
    company_type: Option<EntityTypeName>,
    /// The schema's action entities, so action groups work in a slice.
    pub action_entities: ActionEntities,
    /// Per action, what the schema lets a request carry, checked once here so a request
    /// whose parts fit needs no schema validation of its own.
    pub request_shapes: HashMap<EntityUid, RequestShape>,
}

/// What the schema accepts for one action.
#[derive(Debug)]
pub struct RequestShape {
    /// Principal types the action applies to (enumerated types excluded: their ids need
    /// checking).
    principals: HashSet<EntityTypeName>,
    /// Resource types the action applies to (enumerated types excluded).
    resources: HashSet<EntityTypeName>,
    /// The empty context, when the action's context type accepts it.
    empty_context: Option<Context>,
}

impl RequestShape {
    /// Whether the action applies to these principal and resource types, with the empty
    /// context accepted: then the request needs no validation of its own.
    pub fn fits(&self, principal: &EntityUid, resource: &EntityUid) -> bool {
        self.empty_context.is_some()
            && self.principals.contains(principal.type_name())
            && self.resources.contains(resource.type_name())
    }

    /// The request with the empty context, built without validation; only for a principal
    /// and resource that [`Self::fits`]. `None` when the action takes no empty context.
    pub fn request(
        &self,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
    ) -> Option<Request> {
        let context = self.empty_context.clone()?;
        Request::new(principal.clone(), action.clone(), resource.clone(), context, None).ok()
    }
}

/// Entity types the schema declares as enumerations (`entity Color enum ["red", ...]`).
fn enum_types(schema_text: &str) -> Option<HashSet<String>> {
    let (fragment, _) = SchemaFragment::from_cedarschema_str(schema_text).ok()?;
    let json = fragment.to_json_value().ok()?;
    let mut out = HashSet::new();
    for (ns, body) in json.as_object()? {
        let Some(types) = body.get("entityTypes").and_then(|t| t.as_object()) else {
            continue;
        };
        for (name, def) in types {
            if def.get("enum").is_some() {
                out.insert(if ns.is_empty() {
                    name.clone()
                } else {
                    format!("{ns}::{name}")
                });
            }
        }
    }
    Some(out)
}

fn request_shapes(s: &Snapshot) -> HashMap<EntityUid, RequestShape> {
    let schema = s.schema();
    let Some(enums) = s.sources().schema.as_ref().and_then(|f| enum_types(&f.text)) else {
        return HashMap::new();
    };
    let plain = |t: &&EntityTypeName| !enums.contains(&t.to_string());
    let mut out = HashMap::new();
    for action in schema.actions() {
        let principals: HashSet<EntityTypeName> = schema
            .principals_for_action(action)
            .map(|it| it.filter(plain).cloned().collect())
            .unwrap_or_default();
        let resources: HashSet<EntityTypeName> = schema
            .resources_for_action(action)
            .map(|it| it.filter(plain).cloned().collect())
            .unwrap_or_default();
        // The empty context counts as accepted only when Cedar itself accepts a whole
        // request with it, for some principal and resource of the action.
        let empty_context = Context::from_json_value(serde_json::json!({}), Some((schema, action)))
            .ok()
            .filter(|c| match (principals.iter().next(), resources.iter().next()) {
                (Some(p), Some(r)) => Request::new(
                    EntityUid::from_type_name_and_id(p.clone(), EntityId::new("probe")),
                    action.clone(),
                    EntityUid::from_type_name_and_id(r.clone(), EntityId::new("probe")),
                    c.clone(),
                    Some(schema),
                )
                .is_ok(),
                _ => false,
            });
        out.insert(
            action.clone(),
            RequestShape {
                principals,
                resources,
                empty_context,
            },
        );
    }
    out
}

impl Resolver {
    /// Indexes a snapshot.
    pub fn new(s: &Snapshot) -> Self {
        let ns = s.namespace();
        let mut types = HashMap::new();
        for t in s.schema().entity_types() {
            let full = t.to_string();
            if let Some(bare) = full.strip_prefix(ns).and_then(|r| r.strip_prefix("::")) {
                types.insert(bare.to_owned(), t.clone());
            }
            types.insert(full, t.clone());
        }
        let actions: HashSet<EntityUid> = s.schema().actions().cloned().collect();
        let action_type = if ns.is_empty() {
            "Action".to_owned()
        } else {
            format!("{ns}::Action")
        };
        let action_ids = actions
            .iter()
            .filter(|a| a.type_name().to_string() == action_type)
            .map(|a| (a.id().unescaped().to_owned(), a.clone()))
            .collect();
        let user_type = EntityTypeName::from_str(&s.user_type()).ok();
        let company_type = EntityTypeName::from_str(&s.company_type()).ok();
        let action_entities = s
            .schema()
            .action_entities()
            .map(|e| ActionEntities::new(&e))
            .unwrap_or_default();
        Self {
            types,
            actions,
            action_ids,
            user_type,
            company_type,
            action_entities,
            request_shapes: request_shapes(s),
        }
    }

    /// Resolves a principal or resource reference; unusual forms and errors go through the
    /// engine, so the messages are the engine's.
    pub fn entity(&self, s: &Snapshot, r: &EntityRef, slot: Slot) -> Result<EntityUid, RequestError> {
        let fast = match r {
            EntityRef::Object { ty, id } => self
                .types
                .get(ty.as_str())
                .map(|t| EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))),
            EntityRef::Text(t) => match split_uid(t) {
                Some((ty, id)) => self
                    .types
                    .get(ty)
                    .map(|t| EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))),
                None if slot == Slot::Principal && !t.contains("::") => self
                    .user_type
                    .as_ref()
                    .map(|u| EntityUid::from_type_name_and_id(u.clone(), EntityId::new(t))),
                None => None,
            },
        };
        match fast {
            Some(uid) => Ok(uid),
            None => s.resolve(r, slot),
        }
    }

    /// True when `uid` is of the folder's user type (a principal the user store may hold).
    pub fn is_user(&self, uid: &EntityUid) -> bool {
        self.user_type.as_ref() == Some(uid.type_name())
    }

    /// True when `uid` is of the folder's company type.
    pub fn is_company(&self, uid: &EntityUid) -> bool {
        self.company_type.as_ref() == Some(uid.type_name())
    }

    /// Resolves an action reference and checks that the schema declares it.
    pub fn action(&self, s: &Snapshot, r: &EntityRef) -> Result<EntityUid, RequestError> {
        if let EntityRef::Text(t) = r {
            if let Some(uid) = self.action_ids.get(t.as_str()) {
                return Ok(uid.clone());
            }
        }
        let uid = s.resolve(r, Slot::Action)?;
        if self.actions.contains(&uid) {
            return Ok(uid);
        }
        let id = uid.id().unescaped().to_owned();
        let mut message = format!("unknown action `{id}`");
        if let Some(close) = did_you_mean(&id, self.action_ids.keys().map(String::as_str)) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        Err(RequestError::Reference {
            field: "action".to_owned(),
            message,
        })
    }
}

/// `Type::"id"` with a plain id, split without the Cedar parser; `None` for anything else.
fn split_uid(t: &str) -> Option<(&str, &str)> {
    let body = t.strip_suffix('"')?;
    let at = body.rfind("::\"")?;
    let (ty, id) = (&body[..at], &body[at + 3..]);
    if id.contains(['"', '\\']) || ty.is_empty() {
        return None;
    }
    Some((ty, id))
}
