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
    #[arg(
        long,
        required_unless_present = "resource_type",
        conflicts_with = "resource_type"
    )]
    resource: Option<String>,
    /// Or a resource type (`Portal::Shipment`): what the principal may do on a new record of
    /// that type in its own company.
    #[arg(long)]
    resource_type: Option<String>,
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
        let permissions = match (&a.resource, &a.resource_type) {
            (Some(r), _) => {
                let resource = resolve(&snapshot, &EntityRef::Text(r.clone()), Slot::Resource)?;
                snapshot.permissions(&principal, &resource, &context, &entities, &policies)
            }
            (None, Some(t)) => {
                let probe = EntityRef::Object {
                    ty: t.clone(),
                    id: String::new(),
                };
                let ty = resolve(&snapshot, &probe, Slot::Resource)?.type_name().clone();
                snapshot
                    .permissions_for_type(&principal, &ty, &context, entities, &policies)
                    .map_err(|e| e.to_string())?
            }
            (None, None) => return Err("give --resource or --resource-type".to_owned()),
        };
        Ok::<_, String>(permissions)
    })();
    let p = match parts {
        Ok(p) => p,
        Err(m) => {
            eprintln!("error: {}", m.trim_end());
            return EXIT_ERROR;
        }
    };
    println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
    EXIT_OK
}
