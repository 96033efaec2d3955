//! `portcullis what-can`: every action and feature a principal is allowed on a resource, as
//! JSON, for a UI that shows or hides its buttons.

use clap::Args;
use portcullis_engine::{EntityRef, Slot};

use super::authorize::{resolve, DataArgs};
use super::{FolderArgs, EXIT_ERROR, EXIT_OK};

/// Arguments of `portcullis what-can`.
#[derive(Debug, Args)]
pub struct WhatCanArgs {
    #[command(flatten)]
    folder: FolderArgs,
    /// The principal: `Portal::User::"alice"`, or a bare user id.
    #[arg(long)]
    principal: String,
    /// The resource: `Portal::Shipment::"s1"`.
    #[arg(long)]
    resource: String,
    #[command(flatten)]
    data: DataArgs,
}

pub fn run(a: WhatCanArgs) -> u8 {
    let snapshot = match a.folder.load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let render = |d: &portcullis_engine::Diagnostics| a.folder.render(d);
    let parts = (|| {
        let context = a.data.context()?;
        let (entities, policies) = a.data.environment(&snapshot, Vec::new(), &render)?;
        let principal = resolve(&snapshot, &EntityRef::Text(a.principal.clone()), Slot::Principal)?;
        let resource = resolve(&snapshot, &EntityRef::Text(a.resource.clone()), Slot::Resource)?;
        Ok::<_, String>((principal, resource, context, entities, policies))
    })();
    let (principal, resource, context, entities, policies) = match parts {
        Ok(p) => p,
        Err(m) => {
            eprintln!("error: {}", m.trim_end());
            return EXIT_ERROR;
        }
    };
    let p = snapshot.permissions(&principal, &resource, &context, &entities, &policies);
    println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
    EXIT_OK
}
