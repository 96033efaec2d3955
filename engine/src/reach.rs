//! What a policy set can reach in the entity store: how many attribute steps away from a
//! request's entities it can look, and which entities it names outright.
//!
//! Input: a validated `PolicySet` (its policies and templates, read as Cedar's JSON form).
//! Output: a [`Reach`], which a server that decides over a slice of its entities uses to put
//! into the slice every entity a decision can touch. Cedar treats a missing entity as one
//! that does not exist (`in` and `has` on it are false), so a slice that misses an entity
//! reached through `principal.manager` can silently switch a `forbid` off.
//!
//! The bound is syntactic and safe: an entity's data (attributes, tags, ancestors) is read
//! only by `.`, `has`, `getTag`, `hasTag`, `in` and `is ... in` applied to an expression that
//! evaluates to it, and an expression can only produce an entity found by following at most
//! as many attribute steps as it nests those operators. Counting every such operator (record
//! field access included) over-approximates Cedar's entity manifest, never under-approximates
//! it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;

use cedar_policy::{EntityUid, PolicySet};
use serde_json::Value;
use smol_str::SmolStr;

/// Operators that read the data of the entity their left operand evaluates to.
const READS_DATA: [&str; 6] = [".", "has", "getTag", "hasTag", "in", "is"];

/// How far a policy set can look from the entities of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The longest chain of data-reading operators in any policy or template: an entity
    /// more attribute steps than this away from a request's entities is never read.
    /// `None`: unbounded (a policy that could not be read as JSON), follow everything.
    pub depth: Option<usize>,
    /// Entities named as literals in policies whose data a policy reads (`Group::"g".owner`),
    /// each a root like the principal and the resource.
    pub literals: Vec<EntityUid>,
    /// Per request variable (`principal`, `resource`, `context`, `action`), the longest chain
    /// of data-reading operators above any of its occurrences: what can be read starting
    /// from that variable (never more than `depth`; a variable no policy names is absent,
    /// 0). `None` with `depth`.
    pub vars: Option<BTreeMap<String, usize>>,
    /// Every attribute name a policy reads with `.` or `has` (on an entity or a record): an
    /// entity's other attributes can change no decision, so a slice leaves them out. `None`:
    /// unknown (a policy that could not be read as JSON), keep every attribute.
    pub attrs: Option<HashSet<SmolStr, foldhash::fast::RandomState>>,
}

impl Reach {
    /// Reads the reach of every policy and template of `set`.
    pub fn of(set: &PolicySet) -> Reach {
        let mut depth = Some(0usize);
        let mut literals = BTreeSet::new();
        let mut vars = BTreeMap::new();
        let mut attrs = Some(HashSet::default());
        let jsons = set
            .policies()
            .map(|p| p.to_json().ok())
            .chain(set.templates().map(|t| t.to_json().ok()));
        for json in jsons {
            match json {
                Some(v) => {
                    depth = depth.map(|d| d.max(chain(&v)));
                    collect_literals(&v, false, &mut literals);
                    var_chains(&v, 0, &mut vars);
                    if let Some(set) = &mut attrs {
                        if !attr_names(&v, set) {
                            attrs = None;
                        }
                    }
                }
                None => depth = None,
            }
        }
        Reach {
            vars: depth.map(|_| vars),
            attrs: depth.and(attrs),
            depth,
            literals: literals.into_iter().collect(),
        }
    }

    /// True when a policy may read attribute `name` of an entity.
    pub fn reads_attr(&self, name: &str) -> bool {
        self.attrs.as_ref().is_none_or(|set| set.contains(name))
    }

    /// How many nested data reads can start from request variable `var` (`principal`,
    /// `resource`, ...): an entity `n` attribute steps from it has its data read only when
    /// this is more than `n`. `None`: unbounded.
    pub fn from_var(&self, var: &str) -> Option<usize> {
        self.vars.as_ref().map(|vars| vars.get(var).copied().unwrap_or(0))
    }

    /// True when an entity `steps` attribute steps away from a root may have its data read.
    pub fn reads(&self, steps: usize) -> bool {
        self.depth.is_none_or(|d| steps <= d)
    }
}

/// The longest chain of data-reading operators in a JSON policy expression (or any JSON
/// holding them).
fn chain(v: &Value) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, inner)| {
                if READS_DATA.contains(&k.as_str()) {
                    if let Value::Object(ops) = inner {
                        let left = ops.get("left").map_or(0, chain);
                        let rest = ops
                            .iter()
                            .filter(|(name, _)| *name != "left")
                            .map(|(_, x)| chain(x))
                            .max()
                            .unwrap_or(0);
                        return (left + 1).max(rest);
                    }
                }
                chain(inner)
            })
            .max()
            .unwrap_or(0),
        Value::Array(items) => items.iter().map(chain).max().unwrap_or(0),
        _ => 0,
    }
}

/// For each request variable, the most data-reading operators whose left operand holds one of
/// its occurrences (`acc`: how many enclose the current node): the chain of [`chain`],
/// counted from each variable.
fn var_chains(v: &Value, acc: usize, out: &mut BTreeMap<String, usize>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(name)) = m.get("Var") {
                let d = out.entry(name.clone()).or_insert(0);
                *d = (*d).max(acc);
            }
            for (k, inner) in m {
                match inner {
                    Value::Object(ops) if READS_DATA.contains(&k.as_str()) => {
                        for (name, x) in ops {
                            var_chains(x, if name == "left" { acc + 1 } else { acc }, out);
                        }
                    }
                    _ => var_chains(inner, acc, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| var_chains(x, acc, out)),
        _ => {}
    }
}

/// Adds the attribute names that `.` and `has` read in a JSON policy expression (`has`
/// with a path reads each of its names); false when
/// one of them has no plain name (a form this reading does not know: keep every attribute).
fn attr_names(v: &Value, out: &mut HashSet<SmolStr, foldhash::fast::RandomState>) -> bool {
    match v {
        Value::Object(m) => m.iter().all(|(k, inner)| {
            if k == "." || k == "has" {
                // `e has a.b` holds its path: `["a", "b"]`.
                match inner.get("attr") {
                    Some(Value::String(name)) => {
                        out.insert(SmolStr::new(name));
                    }
                    Some(Value::Array(path)) if path.iter().all(Value::is_string) => {
                        out.extend(path.iter().filter_map(Value::as_str).map(SmolStr::new));
                    }
                    _ => return false,
                }
            }
            attr_names(inner, out)
        }),
        Value::Array(items) => items.iter().all(|x| attr_names(x, out)),
        _ => true,
    }
}

/// Every entity literal whose data a policy can read: `{"__entity": {...}}` values inside
/// the left operand of a data-reading operator. A literal anywhere else (`== User::"a"`,
/// `in Group::"g"`, a scope constraint) is only compared, never looked into.
fn collect_literals(v: &Value, read: bool, out: &mut BTreeSet<EntityUid>) {
    match v {
        Value::Object(m) => {
            if read {
                if let Some(e) = m.get("__entity").and_then(uid) {
                    out.insert(e);
                }
            }
            for (k, inner) in m {
                match inner {
                    Value::Object(ops) if READS_DATA.contains(&k.as_str()) => {
                        for (name, x) in ops {
                            collect_literals(x, read || name == "left", out);
                        }
                    }
                    _ => collect_literals(inner, read, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_literals(x, read, out)),
        _ => {}
    }
}

fn uid(v: &Value) -> Option<EntityUid> {
    let ty = v.get("type")?.as_str()?;
    let id = v.get("id")?.as_str()?;
    let ty = cedar_policy::EntityTypeName::from_str(ty).ok()?;
    Some(EntityUid::from_type_name_and_id(
        ty,
        cedar_policy::EntityId::new(id),
    ))
}

#[cfg(test)]
mod tests {
    use cedar_policy::PolicySet;

    use super::Reach;

    fn reach(text: &str) -> Reach {
        Reach::of(&text.parse::<PolicySet>().expect("policies parse"))
    }

    #[test]
    fn depth_counts_nested_reads_and_literals_are_collected() {
        let r = reach(
            r#"
            permit (principal, action, resource);
            forbid (principal, action, resource) when { principal.manager in Group::"blocked" };
            permit (principal in Team::"ops", action, resource) when { resource.owner.dept.head == principal };
            permit (principal, action, resource) when { Team::"ops".lead == principal && Team::"x" in Team::"y" };
            "#,
        );
        assert_eq!(r.depth, Some(3));
        // From the principal: `.manager` then `in`; from the resource: `.owner.dept.head`.
        assert_eq!(r.from_var("principal"), Some(2));
        assert_eq!(r.from_var("resource"), Some(3));
        assert_eq!(r.from_var("context"), Some(0));
        // Only literals whose data is read: not `Group::"blocked"` (compared), not the scope's
        // `Team::"ops"`, not `Team::"y"`.
        let names: Vec<String> = r.literals.iter().map(ToString::to_string).collect();
        assert_eq!(names, vec![r#"Team::"ops""#, r#"Team::"x""#]);
    }

    #[test]
    fn attributes_read_by_dot_and_has_are_collected() {
        let r = reach(
            r#"
            permit (principal, action, resource) when { principal.manager in Group::"blocked" };
            permit (principal, action, resource) when { resource has owner && resource["dept"].head == principal };
            permit (principal, action, resource) when { context.r has x.y && principal.hasTag("t") };
            "#,
        );
        let mut names: Vec<&str> = r.attrs.as_ref().unwrap().iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["dept", "head", "manager", "owner", "r", "x", "y"]);
        assert!(r.reads_attr("manager"));
        assert!(!r.reads_attr("salary"));
    }

    #[test]
    fn a_policy_that_reads_nothing_has_depth_zero() {
        let r = reach(r#"permit (principal == User::"a", action, resource);"#);
        assert_eq!(r.depth, Some(0));
        assert!(r.reads(0));
        assert!(!r.reads(1));
    }

    #[test]
    fn templates_count() {
        let r = reach(r#"permit (principal == ?principal, action, resource) when { resource.a.b };"#);
        assert_eq!(r.depth, Some(2));
    }
}
