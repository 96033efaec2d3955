//! Fixture files: policy outcomes asserted as data, and the runner behind `portcullis test`.
//!
//! Input: the `fixtures/**/*.toml` files of a folder (read into the `SourceSet`) and the
//! folder's snapshot. Each file declares companies, users (as facts), raw Cedar entities,
//! template links (visitor grants), single `[[case]]`s and `[[grid]]`s; it may `include` other
//! fixture files for shared entities. Output: one `CaseResult` per evaluated request, and a
//! `Coverage` naming the policies and matrix cells no case exercised.
//!
//! A grid lists principals × resources × actions; every combination not listed under `allow`
//! is expected to deny, so unintended extra access fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use cedar_policy::{PolicyId, PolicySet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decide::Outcome;
use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::facts::{CompanyFacts, UserFacts};
use crate::request::{EntityRef, RequestError, Slot};
use crate::snapshot::Snapshot;
use crate::source::SourceFile;
use crate::spanned::Spanned;

/// One fixture file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portcullis fixture file (fixtures/*.toml)")]
pub struct FixtureFile {
    /// Other fixture files (relative to `fixtures/`) whose companies, users, entities and links
    /// this file uses.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Companies by id.
    #[serde(default)]
    pub companies: BTreeMap<String, CompanyFacts>,
    /// Users by id, as the facts the user store would hold.
    #[serde(default)]
    pub users: BTreeMap<String, UserFacts>,
    /// Other entities (records, locations...) in Cedar's JSON entity format.
    #[serde(default)]
    pub entities: Vec<serde_json::Value>,
    /// Template links, such as approved visitor grants.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Single requests with their expected outcome.
    #[serde(default, rename = "case")]
    pub cases: Vec<Spanned<Case>>,
    /// Principals × resources × actions; what is not listed under `allow` must deny.
    #[serde(default, rename = "grid")]
    pub grids: Vec<Spanned<Grid>>,
}

/// A link of a policy template.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The template's policy id.
    pub template: String,
    /// The id of the linked policy.
    pub id: String,
    /// The `?principal` slot.
    #[serde(default)]
    pub principal: Option<EntityRef>,
    /// The `?resource` slot.
    #[serde(default)]
    pub resource: Option<EntityRef>,
}

/// One request and its expected outcome.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows.
    pub name: String,
    /// A user id of this file, or an entity reference.
    pub principal: EntityRef,
    /// An action id, or an entity reference.
    pub action: EntityRef,
    /// An entity reference.
    pub resource: EntityRef,
    /// The request context.
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// `allow` or `deny`.
    pub expect: Outcome,
    /// When given, the deciding policy ids must be exactly these.
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
}

/// A grid of expectations.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// What the grid shows.
    pub name: String,
    /// Principals (user ids or entity references).
    pub principals: Vec<String>,
    /// Resources (entity references).
    pub resources: Vec<EntityRef>,
    /// Actions (ids or entity references).
    pub actions: Vec<String>,
    /// The request context for every cell.
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Per principal, the actions allowed on every resource of the grid (`"*"` for all).
    pub allow: BTreeMap<String, Vec<String>>,
}

/// The result of one evaluated request.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Fixture file.
    pub file: String,
    /// 1-based line of the case or grid.
    pub line: usize,
    /// Case name (grid cells: grid name and the cell).
    pub name: String,
    /// What was expected.
    pub expected: Outcome,
    /// What was decided (`None` when the request could not be evaluated).
    pub actual: Option<Outcome>,
    /// The deciding policies.
    pub reasons: Vec<String>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl CaseResult {
    /// True when the case held.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// What no case exercised.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// Policies (not templates) that decided no case.
    pub unexercised_policies: Vec<String>,
    /// Matrix cells `account_type/role/feature` no case asked about.
    pub unexercised_cells: Vec<String>,
    /// Policies in the folder (templates excluded).
    pub total_policies: usize,
    /// Cells in the matrix.
    pub total_cells: usize,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One per evaluated request, in file order.
    pub results: Vec<CaseResult>,
    /// What was not exercised.
    pub coverage: Coverage,
}

impl Report {
    /// Cases that held.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }

    /// Cases that did not.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Readable text: failures in detail, the coverage report, and `N passed, N failed`.
    pub fn render_human(&self, root: &str, verbose: bool) -> String {
        let mut out = String::new();
        for r in &self.results {
            let at = format!("{}:{}", crate::diag::join_root(root, &r.file), r.line);
            match &r.failure {
                None if verbose => {
                    let _ = writeln!(out, "ok    {at} {} ({})", r.name, r.expected.as_str());
                }
                None => {}
                Some(f) => {
                    let _ = writeln!(out, "FAIL  {at} {}: {f}", r.name);
                }
            }
        }
        let c = &self.coverage;
        let _ = writeln!(
            out,
            "coverage: {}/{} policies exercised, {}/{} matrix cells exercised",
            c.total_policies - c.unexercised_policies.len(),
            c.total_policies,
            c.total_cells - c.unexercised_cells.len(),
            c.total_cells
        );
        for p in &c.unexercised_policies {
            let _ = writeln!(out, "  unexercised policy: {p}");
        }
        for cell in &c.unexercised_cells {
            let _ = writeln!(out, "  unexercised cell: {cell}");
        }
        let _ = writeln!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }

    /// JUnit XML, one test case per evaluated request.
    pub fn render_junit(&self, root: &str) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"portcullis\" tests=\"{}\" failures=\"{}\">",
            self.results.len(),
            self.failed()
        );
        let mut by_file: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
        for r in &self.results {
            by_file.entry(&r.file).or_default().push(r);
        }
        for (file, results) in by_file {
            let failures = results.iter().filter(|r| !r.passed()).count();
            let name = xml(&crate::diag::join_root(root, file));
            let _ = writeln!(
                out,
                "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\">",
                results.len()
            );
            for r in results {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{name}\" name=\"{}\" file=\"{name}\" line=\"{}\"",
                    xml(&r.name),
                    r.line
                );
                match &r.failure {
                    None => out.push_str("/>\n"),
                    Some(f) => {
                        let _ = writeln!(out, ">\n      <failure message=\"{}\"/>\n    </testcase>", xml(f));
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Text escaped for an XML attribute or element (JUnit reports).
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fixture file parsed, with its entities gathered from its includes.
struct Loaded<'a> {
    file: &'a SourceFile,
    parsed: FixtureFile,
    companies: BTreeMap<String, CompanyFacts>,
    users: BTreeMap<String, UserFacts>,
    entities: Vec<serde_json::Value>,
    links: Vec<Link>,
}

/// Runs every fixture file of the snapshot's folder.
pub fn run(snapshot: &Snapshot) -> Result<Report, Diagnostics> {
    run_files(snapshot, &snapshot.sources().fixtures)
}

/// Runs the given fixture files against a snapshot. Load problems (bad TOML, unknown names,
/// entities that do not fit the schema) come back as diagnostics; failed cases in the report.
pub fn run_files(snapshot: &Snapshot, files: &[SourceFile]) -> Result<Report, Diagnostics> {
    let parsed = parse_all(files)?;
    let loaded = gather(&parsed, files)?;
    run_loaded(snapshot, &loaded)
}

/// The entities and the policy set (with template links) a fixture file defines, for deciding
/// or explaining requests against it outside a test run. `path` is relative to the folder.
pub fn environment(
    snapshot: &Snapshot,
    path: &str,
) -> Result<(cedar_policy::Entities, PolicySet), Diagnostics> {
    let files = &snapshot.sources().fixtures;
    let parsed = parse_all(files)?;
    let loaded = gather(&parsed, files)?;
    let Some(l) = loaded.iter().find(|l| l.file.path == path) else {
        let names = files.iter().map(|f| f.path.as_str());
        let d = Diagnostic::error(
            "fixture::unknown-file",
            format!("no fixture file `{path}` in the folder"),
        )
        .suggest(path, names);
        return Err(Diagnostics(vec![d]));
    };
    let mut diags = Diagnostics::default();
    match environment_of(snapshot, l, &mut diags) {
        Some(env) if !diags.has_errors() => Ok(env),
        _ => Err(diags),
    }
}

type Parsed<'a> = HashMap<String, (&'a SourceFile, FixtureFile)>;

fn parse_all(files: &[SourceFile]) -> Result<Parsed<'_>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut parsed: HashMap<String, (&SourceFile, FixtureFile)> = HashMap::new();
    for f in files {
        match toml::from_str::<FixtureFile>(&f.text) {
            Ok(p) => {
                parsed.insert(f.path.clone(), (f, p));
            }
            Err(e) => {
                let mut d = Diagnostic::error("fixture::syntax", crate::error::lower_first(e.message()));
                if let Some(span) = e.span() {
                    d = d.at_span(&f.path, &f.text, span);
                }
                diags.push(crate::diag::suggest_field(d, e.message()));
            }
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(parsed)
}

fn gather<'a>(parsed: &Parsed<'a>, files: &'a [SourceFile]) -> Result<Vec<Loaded<'a>>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut loaded = Vec::new();
    for f in files {
        let Some((file, p)) = parsed.get(&f.path) else {
            continue;
        };
        let mut l = Loaded {
            file,
            parsed: p.clone(),
            companies: p.companies.clone(),
            users: p.users.clone(),
            entities: p.entities.clone(),
            links: p.links.clone(),
        };
        for inc in &p.include {
            let path = format!("{}/{}", crate::source::FIXTURES_DIR, inc.value);
            match parsed.get(&path) {
                Some((_, other)) => {
                    for (k, v) in &other.companies {
                        l.companies.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    for (k, v) in &other.users {
                        l.users.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    l.entities.extend(other.entities.iter().cloned());
                    l.links.extend(other.links.iter().cloned());
                }
                None => {
                    let names: Vec<String> = parsed
                        .keys()
                        .filter_map(|k| {
                            k.strip_prefix(&format!("{}/", crate::source::FIXTURES_DIR))
                                .map(str::to_owned)
                        })
                        .collect();
                    diags.push(
                        Diagnostic::error(
                            "fixture::unknown-include",
                            format!("no fixture file `{}` to include", inc.value),
                        )
                        .at_span(&f.path, &f.text, inc.span.clone())
                        .suggest(&inc.value, names.iter().map(String::as_str)),
                    );
                }
            }
        }
        loaded.push(l);
    }
    if diags.has_errors() {
        return Err(diags);
    }

    Ok(loaded)
}

fn run_loaded(snapshot: &Snapshot, loaded: &[Loaded<'_>]) -> Result<Report, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut report = Report::default();
    let mut exercised_policies: BTreeSet<String> = BTreeSet::new();
    let mut asked: BTreeSet<(String, String, String)> = BTreeSet::new();
    for l in loaded {
        run_one(
            snapshot,
            l,
            &mut report,
            &mut exercised_policies,
            &mut asked,
            &mut diags,
        );
    }
    if diags.has_errors() {
        return Err(diags);
    }
    report.coverage = coverage(snapshot, &exercised_policies, &asked);
    Ok(report)
}

fn environment_of(
    snap: &Snapshot,
    l: &Loaded<'_>,
    diags: &mut Diagnostics,
) -> Option<(cedar_policy::Entities, PolicySet)> {
    let file = l.file;
    let at = |span: std::ops::Range<usize>| Location::new(&file.path, &file.text, span);
    let file_loc = Location::file_only(&file.path);

    // Names must resolve before anything is evaluated.
    let model = snap.model();
    for (id, u) in &l.users {
        if !l.companies.contains_key(&u.company) {
            diags.push(
                Diagnostic::error(
                    "fixture::unknown-company",
                    format!("user `{id}` names unknown company `{}`", u.company),
                )
                .at(find(file, &u.company).map_or(file_loc.clone(), &at))
                .suggest(&u.company, l.companies.keys().map(String::as_str)),
            );
        }
        if let Some(m) = model {
            if m.role(&u.role).is_none() {
                diags.push(
                    Diagnostic::error(
                        "fixture::unknown-role",
                        format!("user `{id}` has unknown role `{}`", u.role),
                    )
                    .at(find(file, &u.role).map_or(file_loc.clone(), &at))
                    .suggest(&u.role, m.roles.iter().map(|r| r.name.as_str())),
                );
            }
            for f in u.addons.iter() {
                if m.feature(f).is_none() {
                    diags.push(
                        Diagnostic::error(
                            "fixture::unknown-feature",
                            format!("user `{id}` has unknown add-on `{f}`"),
                        )
                        .at(find(file, f).map_or(file_loc.clone(), &at))
                        .suggest(f, m.features.iter().map(|x| x.name.as_str())),
                    );
                }
            }
            for fl in u.flags.iter() {
                if !m.flags.iter().any(|x| &x.name == fl) {
                    diags.push(
                        Diagnostic::error(
                            "fixture::unknown-flag",
                            format!("user `{id}` has unknown flag `{fl}`"),
                        )
                        .at(find(file, fl).map_or(file_loc.clone(), &at))
                        .suggest(fl, m.flags.iter().map(|x| x.name.as_str())),
                    );
                }
            }
            if let Some(g) = &u.group {
                if !m.groups.iter().any(|x| &x.name == g) {
                    diags.push(
                        Diagnostic::error(
                            "fixture::unknown-group",
                            format!("user `{id}` has unknown permission group `{g}`"),
                        )
                        .at(find(file, g).map_or(file_loc.clone(), &at))
                        .suggest(g, m.groups.iter().map(|x| x.name.as_str())),
                    );
                }
            }
        }
    }
    for (id, c) in &l.companies {
        if let Some(m) = model {
            if !m.account_types.is_empty() && m.account_type(&c.account_type).is_none() {
                diags.push(
                    Diagnostic::error(
                        "fixture::unknown-account-type",
                        format!("company `{id}` has unknown account type `{}`", c.account_type),
                    )
                    .at(find(file, &c.account_type).map_or(file_loc.clone(), &at))
                    .suggest(&c.account_type, m.account_types.iter().map(|a| a.name.as_str())),
                );
            }
        }
    }
    if diags.has_errors() {
        return None;
    }

    let mut json = Vec::new();
    for (id, c) in &l.companies {
        json.push(snap.company_entity(id, c));
    }
    for (id, u) in &l.users {
        json.push(snap.user_entity(id, u));
    }
    json.extend(l.entities.iter().cloned());
    let entities = match snap.entities_from_json(json) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::error("fixture::entities", e.to_string()).at(file_loc));
            return None;
        }
    };

    let mut policies: PolicySet = snap.policy_set().clone();
    for link in &l.links {
        let mut slots = HashMap::new();
        let mut resolve = |r: &Option<EntityRef>, slot: Slot, id: cedar_policy::SlotId| {
            if let Some(r) = r {
                match snap.resolve(r, slot).map_err(|e| e.to_string()) {
                    Ok(uid) => {
                        slots.insert(id, uid);
                    }
                    Err(m) => diags.push(
                        Diagnostic::error("fixture::link", m)
                            .at(find(file, &link.id).map_or(file_loc.clone(), &at)),
                    ),
                }
            }
        };
        resolve(
            &link.principal,
            Slot::Principal,
            cedar_policy::SlotId::principal(),
        );
        resolve(&link.resource, Slot::Resource, cedar_policy::SlotId::resource());
        if let Err(e) = policies.link(PolicyId::new(&link.template), PolicyId::new(&link.id), slots) {
            diags.push(
                Diagnostic::error("fixture::link", crate::error::lower_first(&e.to_string())).at(find(
                    file,
                    &link.template,
                )
                .map_or(file_loc.clone(), &at)),
            );
        }
    }
    if diags.has_errors() {
        return None;
    }

    Some((entities, policies))
}

fn run_one(
    snap: &Snapshot,
    l: &Loaded<'_>,
    report: &mut Report,
    exercised: &mut BTreeSet<String>,
    asked: &mut BTreeSet<(String, String, String)>,
    diags: &mut Diagnostics,
) {
    let file = l.file;
    let at = |span: std::ops::Range<usize>| Location::new(&file.path, &file.text, span);
    let file_loc = Location::file_only(&file.path);
    let Some((entities, policies)) = environment_of(snap, l, diags) else {
        return;
    };
    let mut requests: Vec<Request> = Vec::new();
    for case in &l.parsed.cases {
        let c = &case.value;
        requests.push(Request {
            line: at(case.span.clone()).line,
            name: c.name.clone(),
            principal: c.principal.clone(),
            action: c.action.clone(),
            resource: c.resource.clone(),
            context: c.context.clone(),
            expect: c.expect,
            reasons: c.reasons.clone(),
            from_grid: false,
        });
    }
    for grid in &l.parsed.grids {
        let g = &grid.value;
        let line = at(grid.span.clone()).line;
        for key in g.allow.keys() {
            if !g.principals.contains(key) {
                diags.push(
                    Diagnostic::error(
                        "fixture::grid",
                        format!(
                            "grid `{}` allows `{key}`, which is not among its principals",
                            g.name
                        ),
                    )
                    .at(find(file, key).map_or(file_loc.clone(), &at))
                    .suggest(key, g.principals.iter().map(String::as_str)),
                );
            }
        }
        for (key, acts) in &g.allow {
            for a in acts {
                if a != "*" && !g.actions.contains(a) {
                    diags.push(
                        Diagnostic::error(
                            "fixture::grid",
                            format!(
                                "grid `{}` allows `{key}` action `{a}`, which is not among its actions",
                                g.name
                            ),
                        )
                        .at(find(file, a).map_or(file_loc.clone(), &at))
                        .suggest(a, g.actions.iter().map(String::as_str)),
                    );
                }
            }
        }
        for p in &g.principals {
            let allowed = g.allow.get(p).cloned().unwrap_or_default();
            for r in &g.resources {
                for a in &g.actions {
                    let expect = if allowed.iter().any(|x| x == a || x == "*") {
                        Outcome::Allow
                    } else {
                        Outcome::Deny
                    };
                    requests.push(Request {
                        line,
                        name: format!("{} [{p} {a} {r}]", g.name),
                        principal: EntityRef::Text(p.clone()),
                        action: EntityRef::Text(a.clone()),
                        resource: r.clone(),
                        context: g.context.clone(),
                        expect,
                        reasons: None,
                        from_grid: true,
                    });
                }
            }
        }
    }
    if diags.has_errors() {
        return;
    }

    for r in requests {
        if let Some(result) = evaluate(snap, l, &entities, &policies, &r, exercised, asked) {
            report.results.push(CaseResult {
                file: file.path.clone(),
                line: r.line,
                name: r.name,
                ..result
            });
        }
    }
}

struct Request {
    line: usize,
    name: String,
    principal: EntityRef,
    action: EntityRef,
    resource: EntityRef,
    context: serde_json::Map<String, serde_json::Value>,
    expect: Outcome,
    reasons: Option<Vec<String>>,
    /// Grid cells whose action does not apply to the principal or resource type (by the
    /// schema) and are expected to deny are skipped: no such request can be made.
    from_grid: bool,
}

fn evaluate(
    snap: &Snapshot,
    l: &Loaded<'_>,
    entities: &cedar_policy::Entities,
    policies: &PolicySet,
    r: &Request,
    exercised: &mut BTreeSet<String>,
    asked: &mut BTreeSet<(String, String, String)>,
) -> Option<CaseResult> {
    let fail = |msg: String| CaseResult {
        file: String::new(),
        line: 0,
        name: String::new(),
        expected: r.expect,
        actual: None,
        reasons: Vec::new(),
        failure: Some(msg),
    };
    let principal = match snap.resolve(&r.principal, Slot::Principal) {
        Ok(p) => p,
        Err(e) => return Some(fail(e.to_string())),
    };
    let action = match snap.resolve(&r.action, Slot::Action) {
        Ok(a) => a,
        Err(e) => return Some(fail(e.to_string())),
    };
    let resource = match snap.resolve(&r.resource, Slot::Resource) {
        Ok(x) => x,
        Err(e) => return Some(fail(e.to_string())),
    };
    // A name no entity of the file carries is a typo, not a deny.
    for (what, uid) in [("principal", &principal), ("resource", &resource)] {
        if entities.get(uid).is_none() {
            let id = uid.id().unescaped();
            let known: Vec<String> = entities
                .iter()
                .filter(|e| e.uid().type_name() == uid.type_name())
                .map(|e| e.uid().id().unescaped().to_owned())
                .collect();
            let mut m = format!("unknown {what} `{uid}`: no entity of the fixture file has this id");
            if let Some(close) = crate::diag::did_you_mean(id, known.iter().map(String::as_str)) {
                m.push_str(&format!("; did you mean `{close}`?"));
            }
            return Some(fail(m));
        }
    }
    let cell = principal.type_name().to_string() == snap.user_type();
    let user = cell.then(|| l.users.get(principal.id().unescaped())).flatten();
    // Without account types the matrix has one table, `*`, for every company.
    let typed = snap.model().is_some_and(|m| !m.account_types.is_empty());
    let asks = user.map(|u| {
        let at = match l.companies.get(&u.company) {
            Some(c) if typed => c.account_type.clone(),
            _ => "*".to_owned(),
        };
        (at, u.role.clone(), action.id().unescaped().to_owned())
    });
    let prepared = match snap.prepare_with(principal, action, resource, r.context.clone(), entities.clone()) {
        Ok(p) => p,
        Err(RequestError::Request(_)) if r.from_grid && r.expect == Outcome::Deny => return None,
        Err(e) => return Some(fail(e.to_string())),
    };
    // Record which matrix cell this request asks about.
    asked.extend(asks);
    // Without template links the snapshot's own (action-indexed) path decides, as in the server.
    let d = if l.links.is_empty() {
        snap.decide(&prepared)
    } else {
        snap.decide_with(&prepared, policies)
    };
    let reasons: Vec<String> = d.reason_ids().into_iter().map(str::to_owned).collect();
    exercised.extend(reasons.iter().cloned());
    let mut failure = None;
    if d.decision != r.expect {
        let why = if reasons.is_empty() {
            "no policy applied".to_owned()
        } else {
            format!("by {}", reasons.join(", "))
        };
        failure = Some(format!(
            "expected {}, got {} ({why})",
            r.expect.as_str(),
            d.decision.as_str()
        ));
    } else if let Some(expected) = &r.reasons {
        let mut e = expected.clone();
        e.sort();
        if e != reasons {
            failure = Some(format!(
                "expected reasons [{}], got [{}]",
                e.join(", "),
                reasons.join(", ")
            ));
        }
    }
    Some(CaseResult {
        file: String::new(),
        line: 0,
        name: String::new(),
        expected: r.expect,
        actual: Some(d.decision),
        reasons,
        failure,
    })
}

fn coverage(
    snap: &Snapshot,
    exercised: &BTreeSet<String>,
    asked: &BTreeSet<(String, String, String)>,
) -> Coverage {
    let mut c = Coverage::default();
    for p in snap.policies() {
        if p.template {
            continue;
        }
        c.total_policies += 1;
        if !exercised.contains(&p.id) {
            c.unexercised_policies.push(p.id.clone());
        }
    }
    if let Some(m) = snap.model() {
        let types: Vec<(String, Vec<String>)> = if m.account_types.is_empty() {
            vec![("*".to_owned(), m.roles.iter().map(|r| r.name.clone()).collect())]
        } else {
            m.account_types
                .iter()
                .map(|a| (a.name.clone(), a.roles.clone()))
                .collect()
        };
        for (at, roles) in types {
            for role in &roles {
                for f in &m.features {
                    c.total_cells += 1;
                    let hit = f
                        .actions
                        .iter()
                        .any(|a| asked.contains(&(at.clone(), role.clone(), a.value.clone())));
                    if !hit {
                        c.unexercised_cells.push(format!("{at}/{role}/{}", f.name));
                    }
                }
            }
        }
    }
    c
}

/// The span of the first quoted occurrence of `word` in a fixture file, for pointing at names.
fn find(file: &SourceFile, word: &str) -> Option<std::ops::Range<usize>> {
    for q in ['"', '\''] {
        let needle = format!("{q}{word}{q}");
        if let Some(i) = file.text.find(&needle) {
            return Some(i..i + needle.len());
        }
    }
    file.text.find(word).map(|i| i..i + word.len())
}
