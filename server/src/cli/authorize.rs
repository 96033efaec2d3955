//! `portcullis authorize`: one decision, printed as JSON; exit 0 allow, 1 deny, 2 bad input.
//! Also the request arguments `explain` shares.

use std::path::PathBuf;

use cedar_policy::{Entities, EntityUid, PolicySet};
use clap::Args;
use portcullis_engine::{fixtures, AuthzQuery, EntityRef, Prepared, Slot, Snapshot};
use serde_json::json;

use super::{FolderArgs, EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Arguments of `portcullis authorize`.
#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
    #[command(flatten)]
    pub request: RequestArgs,
}

/// One request, from flags or a JSON file, with its entities.
#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// A JSON request (`principal`, `action`, `resource`, `context`, `entities`); `-` for stdin.
    #[arg(long, conflicts_with_all = ["principal", "action", "resource"])]
    pub request: Option<PathBuf>,
    /// The principal: `Portal::User::"alice"`, or a bare user id.
    #[arg(long, required_unless_present = "request")]
    pub principal: Option<String>,
    /// The action: `Portal::Action::"shipment.create"`, or a bare action id.
    #[arg(long, required_unless_present = "request")]
    pub action: Option<String>,
    /// The resource: `Portal::Shipment::"s1"`.
    #[arg(long, required_unless_present = "request")]
    pub resource: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Where the entities of a request come from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The context as a JSON object.
    #[arg(long)]
    pub context: Option<String>,
    /// A JSON file with the entities the decision needs (Cedar's JSON entity format).
    #[arg(long, conflicts_with = "fixture")]
    pub entities: Option<PathBuf>,
    /// Take the entities and template links of a fixture file of the folder
    /// (e.g. `fixtures/common.toml`).
    #[arg(long)]
    pub fixture: Option<String>,
}

fn read(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    }
}

impl DataArgs {
    /// The context object.
    pub fn context(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        match &self.context {
            Some(c) => serde_json::from_str(c).map_err(|e| format!("invalid --context: {e}")),
            None => Ok(Default::default()),
        }
    }

    /// The entity slice and policy set, from a fixture file, an entities file, or inline ones.
    pub fn environment(
        &self,
        snapshot: &Snapshot,
        inline: Vec<serde_json::Value>,
        render: &dyn Fn(&portcullis_engine::Diagnostics) -> String,
    ) -> Result<(Entities, PolicySet), String> {
        if let Some(f) = &self.fixture {
            return fixtures::environment(snapshot, f.trim_start_matches("./")).map_err(|d| render(&d));
        }
        let mut all = inline;
        if let Some(path) = &self.entities {
            let e: Vec<serde_json::Value> = serde_json::from_str(&read(path)?)
                .map_err(|e| format!("invalid entities in `{}`: {e}", path.display()))?;
            all.extend(e);
        }
        let entities = snapshot.entities_from_json(all).map_err(|e| e.to_string())?;
        Ok((entities, snapshot.policy_set().clone()))
    }
}

impl RequestArgs {
    fn query(&self) -> Result<AuthzQuery, String> {
        match &self.request {
            Some(path) => serde_json::from_str::<AuthzQuery>(&read(path)?)
                .map_err(|e| format!("invalid request in `{}`: {e}", path.display())),
            None => Ok(AuthzQuery {
                explain: false,
                principal: EntityRef::Text(self.principal.clone().unwrap_or_default()),
                action: EntityRef::Text(self.action.clone().unwrap_or_default()),
                resource: EntityRef::Text(self.resource.clone().unwrap_or_default()),
                context: Default::default(),
                entities: Vec::new(),
            }),
        }
    }

    /// The prepared request and the policy set to decide it with.
    pub fn prepare(&self, snapshot: &Snapshot, folder: &FolderArgs) -> Result<(Prepared, PolicySet), String> {
        let mut q = self.query()?;
        if self.data.context.is_some() {
            q.context = self.data.context()?;
        }
        let render = |d: &portcullis_engine::Diagnostics| folder.render(d);
        let (entities, policies) =
            self.data
                .environment(snapshot, std::mem::take(&mut q.entities), &render)?;
        let principal = resolve(snapshot, &q.principal, Slot::Principal)?;
        let action = resolve(snapshot, &q.action, Slot::Action)?;
        let resource = resolve(snapshot, &q.resource, Slot::Resource)?;
        if !snapshot.schema().actions().any(|a| a == &action) {
            // Let the engine's own check word the error, with its suggestion.
            return Err(snapshot
                .prepare(&q)
                .err()
                .map_or_else(|| "unknown action".to_owned(), |e| e.to_string()));
        }
        let prepared = snapshot
            .prepare_with(principal, action, resource, q.context, entities)
            .map_err(|e| e.to_string())?;
        Ok((prepared, policies))
    }
}

/// Resolves one reference, with the engine's error text.
pub fn resolve(snapshot: &Snapshot, r: &EntityRef, slot: Slot) -> Result<EntityUid, String> {
    snapshot.resolve(r, slot).map_err(|e| e.to_string())
}

/// The folder, built, and the request prepared against it; or the exit code, its error
/// printed.
pub fn load(folder: &FolderArgs, request: &RequestArgs) -> Result<(Snapshot, Prepared, PolicySet), u8> {
    let snapshot = folder.load()?;
    let (prepared, policies) = request.prepare(&snapshot, folder).map_err(|m| {
        eprintln!("error: {}", m.trim_end());
        EXIT_ERROR
    })?;
    Ok((snapshot, prepared, policies))
}

pub fn run(a: AuthorizeArgs) -> u8 {
    let (snapshot, prepared, policies) = match load(&a.folder, &a.request) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let d = snapshot.decide_with(&prepared, &policies);
    let out = json!({
        "decision": d.decision,
        "reasons": d.reasons,
        "errors": d.errors,
        "version": d.version,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    if d.allowed() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
