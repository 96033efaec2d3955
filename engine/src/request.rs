//! Decision requests: entity references in either accepted form, the JSON request, and its
//! preparation into a Cedar request plus the entity slice it needs.
//!
//! Input: an `AuthzQuery` (from HTTP JSON, a fixture case or CLI flags) and the snapshot it is
//! decided under. Output: a `Prepared` request (Cedar `Request` + `Entities`), or a
//! `RequestError` that says which field is wrong. Only the entities the request names or
//! carries are built; the schema's action entities are added so action groups work.

use std::fmt;
use std::str::FromStr;

use cedar_policy::{Context, Entities, EntityId, EntityTypeName, EntityUid, Request};
use serde::{Deserialize, Serialize};

use crate::snapshot::{qualify, Snapshot};

/// A reference to an entity: `Portal::User::"alice"` or `{"type": "Portal::User", "id": "alice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EntityRef {
    /// Cedar syntax, or a bare id where the position implies the type.
    Text(String),
    /// Type and id apart, like the Cedar CLI's JSON.
    Object {
        /// Entity type, with or without the folder's namespace.
        #[serde(rename = "type")]
        ty: String,
        /// Entity id.
        id: String,
    },
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityRef::Text(t) => f.write_str(t),
            EntityRef::Object { ty, id } => write!(f, "{ty}::{id:?}"),
        }
    }
}

/// Which part of a request a reference fills; bare ids are read according to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The principal: a bare id is a user.
    Principal,
    /// The action: a bare id is an action.
    Action,
    /// The resource: must name its type.
    Resource,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::Principal => "principal",
            Slot::Action => "action",
            Slot::Resource => "resource",
        }
    }
}

/// A request that cannot be decided, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A reference does not parse or names an unknown type.
    #[error("invalid {field}: {message}")]
    Reference {
        /// `principal`, `action`, `resource` or an entity's place.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The context does not fit the schema.
    #[error("invalid context: {0}")]
    Context(String),
    /// The entities do not parse or do not fit the schema.
    #[error("invalid entities: {0}")]
    Entities(String),
    /// The request does not fit the schema (e.g. the action does not apply to this principal).
    #[error("invalid request: {0}")]
    Request(String),
}

impl RequestError {
    /// A stable code for the HTTP error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Reference { .. } => "invalid_reference",
            RequestError::Context(_) => "invalid_context",
            RequestError::Entities(_) => "invalid_entities",
            RequestError::Request(_) => "invalid_request",
        }
    }
}

/// One question: may `principal` do `action` on `resource` in `context`?
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthzQuery {
    /// Who asks.
    pub principal: EntityRef,
    /// What they want to do.
    pub action: EntityRef,
    /// On what.
    pub resource: EntityRef,
    /// Facts about the request (a JSON object).
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Entities the decision needs, in Cedar's JSON entity format.
    #[serde(default)]
    pub entities: Vec<serde_json::Value>,
    /// Ask for an explanation with the decision (`POST /v1/authorize` only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

/// A request ready for the authorizer.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The Cedar request.
    pub request: Request,
    /// The entity slice.
    pub entities: Entities,
}

impl Snapshot {
    /// Resolves a reference to an entity uid of this folder's schema.
    pub fn resolve(&self, r: &EntityRef, slot: Slot) -> Result<EntityUid, RequestError> {
        let err = |message: String| RequestError::Reference {
            field: slot.name().to_owned(),
            message,
        };
        let ns = self.namespace();
        let (ty, id) = match r {
            EntityRef::Object { ty, id } => (ty.clone(), id.clone()),
            EntityRef::Text(t) if t.contains("::") && t.ends_with('"') => {
                let uid = EntityUid::from_str(t).map_err(|e| err(format!("`{t}` is not an entity reference: {e}")))?;
                (uid.type_name().to_string(), uid.id().unescaped().to_owned())
            }
            EntityRef::Text(t) => match slot {
                Slot::Principal => {
                    let user = self.model().map_or("User", |m| m.cedar.user_type.as_str());
                    (qualify(ns, user), t.clone())
                }
                Slot::Action => (qualify(ns, "Action"), t.clone()),
                Slot::Resource => {
                    return Err(err(format!(
                        "`{t}` does not name its type; write it as `{}::Type::\"{t}\"` or {{\"type\": ..., \"id\": ...}}",
                        if ns.is_empty() { "Namespace" } else { ns }
                    )))
                }
            },
        };
        let ty = self.qualify_type(&ty).map_err(err)?;
        Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
    }

    /// Resolves a type name, adding the folder's namespace when the bare name is unknown.
    fn qualify_type(&self, ty: &str) -> Result<EntityTypeName, String> {
        if let Some(t) = self.type_names.get(ty) {
            return Ok(t.clone());
        }
        if let Some(t) = self.type_names.get(&qualify(self.namespace(), ty)) {
            return Ok(t.clone());
        }
        let mut m = format!("unknown entity type `{ty}`");
        // Compare bare names too, so `Shipmnt` finds `Portal::Shipment`.
        let bare = ty.rsplit("::").next().unwrap_or(ty);
        let mut fulls: Vec<&str> = self.type_names.keys().map(String::as_str).collect();
        fulls.sort_unstable();
        let bare_of = |full: &str| -> String { full.rsplit("::").next().unwrap_or(full).to_owned() };
        let bares: Vec<String> = fulls.iter().map(|f| bare_of(f)).collect();
        let close = crate::diag::did_you_mean(bare, bares.iter().map(String::as_str))
            .and_then(|b| fulls.iter().copied().find(|f| bare_of(f) == b));
        let close =
            close.or_else(|| crate::diag::did_you_mean(ty, self.type_names.keys().map(String::as_str)));
        if let Some(close) = close {
            m.push_str(&format!("; did you mean `{close}`?"));
        }
        Err(m)
    }

    /// Turns a query into a Cedar request and its entity slice, checked against the schema.
    pub fn prepare(&self, q: &AuthzQuery) -> Result<Prepared, RequestError> {
        let principal = self.resolve(&q.principal, Slot::Principal)?;
        let action = self.resolve(&q.action, Slot::Action)?;
        if !self.action_uids.contains(&action) {
            let ids = crate::snapshot::action_ids(&self.schema, self.namespace());
            let id = action.id().unescaped().to_owned();
            let mut message = format!("unknown action `{id}`");
            if let Some(close) = crate::diag::did_you_mean(&id, ids.iter().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            return Err(RequestError::Reference {
                field: "action".to_owned(),
                message,
            });
        }
        let resource = self.resolve(&q.resource, Slot::Resource)?;
        let entities = self.entities_from_json(q.entities.clone())?;
        self.prepare_with(principal, action, resource, q.context.clone(), entities)
    }

    /// Builds the request from resolved parts and an already built slice.
    pub fn prepare_with(
        &self,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: serde_json::Map<String, serde_json::Value>,
        entities: Entities,
    ) -> Result<Prepared, RequestError> {
        let request = self.request_with(principal, action, resource, context)?;
        Ok(Prepared { request, entities })
    }

    /// Builds the Cedar request from resolved parts, its context and itself validated
    /// against the schema.
    pub fn request_with(
        &self,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Request, RequestError> {
        let context =
            Context::from_json_value(serde_json::Value::Object(context), Some((&self.schema, &action)))
                .map_err(|e| RequestError::Context(crate::error::lower_first(&e.to_string())))?;
        Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| RequestError::Request(crate::error::lower_first(&e.to_string())))
    }

    /// Parses entities in Cedar's JSON format against the schema, adding the action entities.
    pub fn entities_from_json(&self, entities: Vec<serde_json::Value>) -> Result<Entities, RequestError> {
        Entities::from_json_value(serde_json::Value::Array(entities), Some(&self.schema))
            .map_err(|e| RequestError::Entities(crate::error::lower_first(&e.to_string())))
    }
}
