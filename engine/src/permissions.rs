//! What a principal may do on a resource: every action the schema lets it ask about, decided
//! one by one, and the features those actions make up, so a UI can show or hide its buttons
//! with one call.
//!
//! Input: a snapshot, the principal and resource, a context, and the entity slice (plus any
//! template links). Output: `Permissions`, the allowed and denied actions and, when the folder
//! has a `roles.toml`, the features whose applicable actions are all allowed.

use cedar_policy::{Entities, EntityUid, PolicySet};
use serde::Serialize;

use crate::decide::Outcome;
use crate::snapshot::Snapshot;

/// The answer for one action.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionPermission {
    /// The action id.
    pub action: String,
    /// Allow or deny.
    pub decision: Outcome,
    /// The deciding policies.
    pub reasons: Vec<String>,
}

/// A feature of the matrix, judged on this resource.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeaturePermission {
    /// Feature name.
    pub feature: String,
    /// Feature title.
    pub title: String,
    /// True when every action of the feature that applies to this resource is allowed.
    pub allowed: bool,
    /// The feature's actions that apply to this resource.
    pub actions: Vec<String>,
}

/// Everything a principal may do on a resource.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Permissions {
    /// The allowed action ids.
    pub allowed: Vec<String>,
    /// Every applicable action with its decision.
    pub actions: Vec<ActionPermission>,
    /// Features with at least one applicable action.
    pub features: Vec<FeaturePermission>,
    /// Actions that apply but could not be asked with this context, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub skipped: Vec<(String, String)>,
    /// The policy version.
    pub version: String,
}

impl Snapshot {
    /// Decides every action the schema lets `principal` ask about `resource`, over one slice.
    pub fn permissions(
        &self,
        principal: &EntityUid,
        resource: &EntityUid,
        context: &serde_json::Map<String, serde_json::Value>,
        entities: &Entities,
        policies: &PolicySet,
    ) -> Permissions {
        self.permissions_by(principal, resource, |action| {
            let p = self.prepare_with(
                principal.clone(),
                action.clone(),
                resource.clone(),
                context.clone(),
                entities.clone(),
            )?;
            Ok(self.decide_with(&p, policies))
        })
    }

    /// The same, with the caller deciding each action (the server decides through its own
    /// slices and caches); an action whose request cannot be made is listed as skipped.
    pub fn permissions_by(
        &self,
        principal: &EntityUid,
        resource: &EntityUid,
        mut decide: impl FnMut(&EntityUid) -> Result<crate::Decision, crate::RequestError>,
    ) -> Permissions {
        let mut actions: Vec<EntityUid> = self
            .schema
            .actions_for_principal_and_resource(principal.type_name(), resource.type_name())
            .cloned()
            .collect();
        actions.sort_by_key(|a| a.id().unescaped().to_owned());
        let mut out = Permissions {
            allowed: Vec::new(),
            actions: Vec::new(),
            features: Vec::new(),
            skipped: Vec::new(),
            version: self.version.to_string(),
        };
        for action in actions {
            let id = action.id().unescaped().to_owned();
            match decide(&action) {
                Ok(d) => {
                    if d.allowed() {
                        out.allowed.push(id.clone());
                    }
                    let reasons = d.reason_ids().into_iter().map(str::to_owned).collect();
                    out.actions.push(ActionPermission {
                        action: id,
                        decision: d.decision,
                        reasons,
                    });
                }
                Err(e) => out.skipped.push((id, e.to_string())),
            }
        }
        if let Some(m) = self.model() {
            for f in &m.features {
                let applicable: Vec<String> = f
                    .actions
                    .iter()
                    .map(|a| a.value.clone())
                    .filter(|a| out.actions.iter().any(|x| &x.action == a))
                    .collect();
                if applicable.is_empty() {
                    continue;
                }
                let allowed = applicable.iter().all(|a| out.allowed.contains(a));
                out.features.push(FeaturePermission {
                    feature: f.name.clone(),
                    title: f.title.clone(),
                    allowed,
                    actions: applicable,
                });
            }
        }
        out
    }
}

impl Snapshot {
    /// What `principal` may do on a new resource of `resource_type` in its own company (for
    /// "create" buttons, before any such record exists): a placeholder resource with no
    /// attributes, a member of the principal's company, is decided over the given slice.
    /// The slice must hold the principal, its ancestors and the schema's action entities.
    pub fn permissions_for_type(
        &self,
        principal: &EntityUid,
        resource_type: &cedar_policy::EntityTypeName,
        context: &serde_json::Map<String, serde_json::Value>,
        entities: Entities,
        policies: &PolicySet,
    ) -> Result<Permissions, crate::RequestError> {
        let company_type = self.company_type();
        let company = entities.get(principal).and_then(|e| {
            let (_, _, parents) = e.clone().into_inner();
            parents
                .into_iter()
                .find(|p| p.type_name().to_string() == company_type)
        });
        let placeholder = EntityUid::from_type_name_and_id(
            resource_type.clone(),
            cedar_policy::EntityId::new(PLACEHOLDER_ID),
        );
        let parents: std::collections::HashSet<EntityUid> = company.into_iter().collect();
        let entities = entities
            .add_entities(
                [cedar_policy::Entity::new_no_attrs(placeholder.clone(), parents)],
                None,
            )
            .map_err(|e| crate::RequestError::Entities(e.to_string()))?;
        Ok(self.permissions(principal, &placeholder, context, &entities, policies))
    }
}

/// The id of the placeholder resource `permissions_for_type` decides on.
pub const PLACEHOLDER_ID: &str = "(new)";
