//! `portcullis authorize`: one decision, printed as JSON; exit 0 allow, 1 deny, 2 bad input.

use std::path::PathBuf;

use clap::Args;
use portcullis_engine::{AuthzQuery, EntityRef};
use serde_json::json;

use super::{FolderArgs, EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Arguments of `portcullis authorize`.
#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    folder: FolderArgs,
    /// A JSON request (`principal`, `action`, `resource`, `context`, `entities`); `-` for stdin.
    #[arg(long, conflicts_with_all = ["principal", "action", "resource"])]
    request: Option<PathBuf>,
    /// The principal: `Portal::User::"alice"`, or a bare user id.
    #[arg(long, required_unless_present = "request")]
    principal: Option<String>,
    /// The action: `Portal::Action::"shipment.create"`, or a bare action id.
    #[arg(long, required_unless_present = "request")]
    action: Option<String>,
    /// The resource: `Portal::Shipment::"s1"`.
    #[arg(long, required_unless_present = "request")]
    resource: Option<String>,
    /// The context as a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// A JSON file with the entities the decision needs (Cedar's JSON entity format).
    #[arg(long)]
    entities: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    }
}

fn query(a: &AuthorizeArgs) -> Result<AuthzQuery, String> {
    let mut q = match &a.request {
        Some(path) => serde_json::from_str::<AuthzQuery>(&read(path)?)
            .map_err(|e| format!("invalid request in `{}`: {e}", path.display()))?,
        None => AuthzQuery {
            principal: EntityRef::Text(a.principal.clone().unwrap_or_default()),
            action: EntityRef::Text(a.action.clone().unwrap_or_default()),
            resource: EntityRef::Text(a.resource.clone().unwrap_or_default()),
            context: Default::default(),
            entities: Vec::new(),
        },
    };
    if let Some(c) = &a.context {
        q.context = serde_json::from_str(c).map_err(|e| format!("invalid --context: {e}"))?;
    }
    if let Some(path) = &a.entities {
        let e: Vec<serde_json::Value> = serde_json::from_str(&read(path)?)
            .map_err(|e| format!("invalid entities in `{}`: {e}", path.display()))?;
        q.entities.extend(e);
    }
    Ok(q)
}

pub fn run(a: AuthorizeArgs) -> u8 {
    let snapshot = match a.folder.load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let q = match query(&a) {
        Ok(q) => q,
        Err(m) => {
            eprintln!("error: {m}");
            return EXIT_ERROR;
        }
    };
    let prepared = match snapshot.prepare(&q) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let d = snapshot.decide(&prepared);
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
