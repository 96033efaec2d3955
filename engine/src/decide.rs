//! Decisions: the Cedar authorizer's answer, with reasons that name policies and where they
//! are written, the errors met, and the version decided under.
//!
//! Cedar skips a policy whose condition errors. For a `permit` that only loses an allow; for a
//! `forbid` it could turn a deny into an allow, so any error in a `forbid` makes the decision
//! deny: an evaluation error never allows.

use std::sync::Arc;

use cedar_policy::Response;
use serde::Serialize;

use crate::request::Prepared;
use crate::snapshot::{Effect, PolicyInfo, Snapshot};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// The action is allowed.
    Allow,
    /// The action is denied.
    Deny,
}

impl Outcome {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        }
    }
}

/// An error met while evaluating one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyError {
    /// The policy.
    pub policy: String,
    /// What went wrong.
    pub message: String,
}

/// The answer to one request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Allow or deny.
    pub decision: Outcome,
    /// The policies that decided it: the permits of an allow, the forbids of a deny (empty for a
    /// default deny).
    pub reasons: Vec<Arc<PolicyInfo>>,
    /// Policies that failed to evaluate.
    pub errors: Vec<PolicyError>,
    /// The policy version it was decided under.
    pub version: Arc<str>,
}

impl Decision {
    /// True for allow.
    pub fn allowed(&self) -> bool {
        self.decision == Outcome::Allow
    }

    /// The ids of the deciding policies, sorted.
    pub fn reason_ids(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.reasons.iter().map(|r| r.id.as_str()).collect();
        v.sort_unstable();
        v
    }
}

impl Snapshot {
    /// Decides a prepared request with this snapshot's policies.
    pub fn decide(&self, p: &Prepared) -> Decision {
        self.decide_parts(&p.request, &p.entities)
    }

    /// Decides a Cedar request over an entity slice, both borrowed (so a caller can decide
    /// several requests over one slice without copying it).
    pub fn decide_parts(
        &self,
        request: &cedar_policy::Request,
        entities: &cedar_policy::Entities,
    ) -> Decision {
        let policies = request
            .action()
            .and_then(|a| self.by_action.get(a))
            .unwrap_or(&self.policies);
        let response = self.authorizer.is_authorized(request, policies, entities);
        self.to_decision(&response, policies)
    }

    /// Decides with extra policies (e.g. template links from the user store) in place of the
    /// snapshot's own set, which must contain them.
    pub fn decide_with(&self, p: &Prepared, policies: &cedar_policy::PolicySet) -> Decision {
        let response = self.authorizer.is_authorized(&p.request, policies, &p.entities);
        self.to_decision(&response, policies)
    }

    fn to_decision(&self, response: &Response, policies: &cedar_policy::PolicySet) -> Decision {
        let diagnostics = response.diagnostics();
        let mut errors = Vec::new();
        let mut forbid_failed = false;
        for e in diagnostics.errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
            let info = self.info_or_link(pe.policy_id(), policies);
            if info.as_ref().is_some_and(|i| i.effect == Effect::Forbid) {
                forbid_failed = true;
            }
            errors.push(PolicyError {
                policy: info.map_or_else(|| pe.policy_id().to_string(), |i| i.id.clone()),
                message: crate::error::lower_first(&pe.inner().to_string()),
            });
        }
        let mut decision = match response.decision() {
            cedar_policy::Decision::Allow => Outcome::Allow,
            cedar_policy::Decision::Deny => Outcome::Deny,
        };
        let mut reasons: Vec<Arc<PolicyInfo>> = diagnostics
            .reason()
            .filter_map(|id| self.info_or_link(id, policies))
            .collect();
        if forbid_failed && decision == Outcome::Allow {
            decision = Outcome::Deny;
            reasons.clear();
        }
        reasons.sort_by(|a, b| a.id.cmp(&b.id));
        Decision {
            decision,
            reasons,
            errors,
            version: self.version.clone(),
        }
    }

    /// Info for a policy, or for the template a linked policy comes from.
    fn info_or_link(
        &self,
        id: &cedar_policy::PolicyId,
        policies: &cedar_policy::PolicySet,
    ) -> Option<Arc<PolicyInfo>> {
        if let Some(i) = self.info.get(id) {
            return Some(i.clone());
        }
        let template = policies.policy(id)?.template_id()?;
        let t = self.info.get(template)?;
        Some(Arc::new(PolicyInfo {
            id: id.to_string(),
            template: false,
            ..PolicyInfo::clone(t)
        }))
    }
}
