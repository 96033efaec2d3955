//! Explanations: why a request was allowed or denied, in the words a product owner uses.
//!
//! Input: a snapshot, a prepared request and its decision. On allow, the permits that allowed
//! it; on a deny by a `forbid`, that forbid; on a default deny, the permit policies that came
//! closest: those whose scope (principal, action, resource) matches the request, ranked by how
//! few of their conditions failed, each condition said in terms of roles, features, flags and
//! ownership. Conditions are the top-level `&&` parts of each `when`/`unless`, evaluated one by
//! one by Cedar against the same request and entities.

use std::sync::Arc;

use cedar_policy::{Authorizer, Policy, PolicyId, PolicySet};
use serde::Serialize;
use serde_json::{json, Value};

use crate::decide::{Decision, Outcome};
use crate::request::Prepared;
use crate::snapshot::{Effect, PolicyInfo, Snapshot};

/// One condition of a permit, and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    /// The condition in Cedar.
    pub cedar: String,
    /// The condition in words.
    pub text: String,
    /// Whether it held for this request.
    pub held: bool,
}

/// A permit that did not apply, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NearMiss {
    /// The policy.
    pub policy: Arc<PolicyInfo>,
    /// Its conditions, in order.
    pub conditions: Vec<Condition>,
    /// How many failed.
    pub failed: usize,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The decision itself.
    pub decision: Decision,
    /// One sentence.
    pub summary: String,
    /// For a default deny: the closest permits, closest first (at most three).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nearest: Vec<NearMiss>,
}

impl Explanation {
    /// Readable text, several lines.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.summary);
        for r in &self.decision.reasons {
            out.push_str(&format!("  {} {} ({}:{})", verb(r.effect), r.id, r.file, r.line));
            if let Some(d) = &r.describe {
                out.push_str(&format!(": {d}"));
            }
            out.push('\n');
        }
        for n in &self.nearest {
            out.push_str(&format!(
                "  nearest permit {} ({}:{}), {} of {} conditions failed:\n",
                n.policy.id,
                n.policy.file,
                n.policy.line,
                n.failed,
                n.conditions.len()
            ));
            for c in &n.conditions {
                let mark = if c.held { "held  " } else { "FAILED" };
                out.push_str(&format!("    {mark} {}\n", c.text));
            }
        }
        for e in &self.decision.errors {
            out.push_str(&format!("  error in {}: {}\n", e.policy, e.message));
        }
        out
    }
}

fn verb(e: Effect) -> &'static str {
    match e {
        Effect::Permit => "permitted by",
        Effect::Forbid => "forbidden by",
    }
}

impl Snapshot {
    /// Decides and explains.
    pub fn explain(&self, p: &Prepared) -> Explanation {
        self.explain_with(p, &self.policies)
    }

    /// Decides and explains with a policy set that extends the snapshot's (template links).
    pub fn explain_with(&self, p: &Prepared, policies: &PolicySet) -> Explanation {
        let decision = self.decide_with(p, policies);
        let action = p
            .request
            .action()
            .map(|a| a.id().unescaped().to_owned())
            .unwrap_or_default();
        if decision.decision == Outcome::Allow {
            let ids: Vec<&str> = decision.reasons.iter().map(|r| r.id.as_str()).collect();
            let summary = format!("allow: `{action}` is permitted by {}", list(&ids));
            return Explanation {
                decision,
                summary,
                nearest: Vec::new(),
            };
        }
        if !decision.reasons.is_empty() {
            let what: Vec<String> = decision
                .reasons
                .iter()
                .map(|r| match &r.describe {
                    Some(d) => format!("`{}` ({d})", r.id),
                    None => format!("`{}`", r.id),
                })
                .collect();
            let summary = format!("deny: `{action}` is forbidden by {}", what.join(", "));
            return Explanation {
                decision,
                summary,
                nearest: Vec::new(),
            };
        }
        if !decision.errors.is_empty() {
            let ids: Vec<&str> = decision.errors.iter().map(|e| e.policy.as_str()).collect();
            let summary = format!(
                "deny: a forbid failed to evaluate ({}), and an error never allows",
                list(&ids)
            );
            return Explanation {
                decision,
                summary,
                nearest: Vec::new(),
            };
        }
        let mut nearest = self.near_misses(p, policies);
        nearest.sort_by(|a, b| {
            a.failed
                .cmp(&b.failed)
                .then_with(|| a.policy.id.cmp(&b.policy.id))
        });
        nearest.truncate(3);
        let summary = if nearest.is_empty() {
            format!("deny: no permit policy applies to `{action}` for this principal and resource")
        } else {
            format!("deny: no permit policy's conditions all held for `{action}` (default deny)")
        };
        Explanation {
            decision,
            summary,
            nearest,
        }
    }

    fn near_misses(&self, p: &Prepared, policies: &PolicySet) -> Vec<NearMiss> {
        let authorizer = Authorizer::new();
        let mut out = Vec::new();
        for policy in policies.policies() {
            if policy.effect() != cedar_policy::Effect::Permit {
                continue;
            }
            let Ok(est) = policy.to_json() else { continue };
            // Does its scope match? The same policy without conditions tells.
            let mut scope_only = est.clone();
            scope_only["conditions"] = json!([]);
            let Ok(scope) = Policy::from_json(Some(PolicyId::new("scope")), scope_only) else {
                continue;
            };
            let mut set = PolicySet::new();
            if set.add(scope).is_err() {
                continue;
            }
            let matched = authorizer.is_authorized(&p.request, &set, &p.entities);
            if matched.decision() != cedar_policy::Decision::Allow {
                continue;
            }
            let mut clauses: Vec<(String, Value)> = Vec::new();
            if let Some(conds) = est.get("conditions").and_then(Value::as_array) {
                for c in conds {
                    let kind = c.get("kind").and_then(Value::as_str).unwrap_or("when").to_owned();
                    if let Some(body) = c.get("body") {
                        let mut parts = Vec::new();
                        flatten_and(body, &mut parts);
                        clauses.extend(parts.into_iter().map(|b| (kind.clone(), b)));
                    }
                }
            }
            let mut set = PolicySet::new();
            let mut texts = Vec::new();
            for (i, (kind, body)) in clauses.iter().enumerate() {
                let clause = json!({
                    "effect": "permit",
                    "principal": {"op": "All"},
                    "action": {"op": "All"},
                    "resource": {"op": "All"},
                    "conditions": [{"kind": kind, "body": body}],
                });
                let Ok(pol) = Policy::from_json(Some(PolicyId::new(format!("c{i}"))), clause) else {
                    continue;
                };
                let text = condition_text(&pol, kind);
                if set.add(pol).is_ok() {
                    texts.push((format!("c{i}"), text));
                }
            }
            let r = authorizer.is_authorized(&p.request, &set, &p.entities);
            let held: std::collections::HashSet<String> =
                r.diagnostics().reason().map(ToString::to_string).collect();
            let conditions: Vec<Condition> = texts
                .into_iter()
                .map(|(id, cedar)| Condition {
                    text: humanize(&cedar),
                    held: held.contains(&id),
                    cedar,
                })
                .collect();
            let failed = conditions.iter().filter(|c| !c.held).count();
            let info = self.info.get(policy.id()).cloned().or_else(|| {
                let t = self.info.get(policy.template_id()?)?;
                Some(Arc::new(PolicyInfo {
                    id: policy.id().to_string(),
                    template: false,
                    ..PolicyInfo::clone(t)
                }))
            });
            if let Some(policy) = info {
                out.push(NearMiss {
                    policy,
                    conditions,
                    failed,
                });
            }
        }
        out
    }
}

fn list(ids: &[&str]) -> String {
    ids.iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits `a && b && c` into its parts.
fn flatten_and(e: &Value, out: &mut Vec<Value>) {
    if let Some(and) = e.get("&&") {
        if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
            flatten_and(l, out);
            flatten_and(r, out);
            return;
        }
    }
    out.push(e.clone());
}

/// The Cedar text of the single condition of a clause policy (`unless` shown as `not`).
fn condition_text(p: &Policy, kind: &str) -> String {
    let full = p.to_string();
    let body = full
        .find('{')
        .and_then(|start| full.rfind('}').map(|end| full[start + 1..end].trim().to_owned()))
        .unwrap_or(full);
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if kind == "unless" {
        format!("!({body})")
    } else {
        body
    }
}

/// Common compiled conditions said in words; anything else stays Cedar.
pub(crate) fn humanize(cedar: &str) -> String {
    let c = cedar.trim();
    let quoted = |s: &str| -> Vec<String> {
        s.split('"')
            .skip(1)
            .step_by(2)
            .map(|x| format!("`{x}`"))
            .collect()
    };
    if let Some(rest) = c.strip_prefix("principal in ") {
        if rest.contains("Role::") {
            let roles = quoted(rest);
            return if roles.len() == 1 {
                format!("the user's role is {}", roles[0])
            } else {
                format!("the user's role is one of {}", roles.join(", "))
            };
        }
    }
    if c == "resource in principal.company" {
        return "the resource belongs to the user's company".to_owned();
    }
    if c == "resource has owner" {
        return "the resource has an owner".to_owned();
    }
    if c == "resource.owner == principal" {
        return "the user owns the resource".to_owned();
    }
    if c.starts_with("principal.addons.contains(") {
        return format!("the user was granted the add-on {}", quoted(c).join(""));
    }
    if c.starts_with("principal.group_features.contains(") {
        return format!("the user's permission group holds feature {}", quoted(c).join(""));
    }
    if c.starts_with("principal.flags.contains(") {
        return format!("the user has the flag {}", quoted(c).join(""));
    }
    if c.starts_with("principal.company.account_type ==") {
        return format!("the user's company is of account type {}", quoted(c).join(""));
    }
    if c.ends_with(".contains(principal.company.account_type)") {
        return format!("the user's company is of account type {}", quoted(c).join(" or "));
    }
    if c == "principal.active" {
        return "the user is active".to_owned();
    }
    format!("`{c}`")
}
