//! `portcullis check`: validate a folder; exit 0 when it would serve, 2 when it would not.

use clap::Args;

use super::{FolderArgs, EXIT_OK};

/// Arguments of `portcullis check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    folder: FolderArgs,
}

pub fn run(a: CheckArgs) -> u8 {
    match a.folder.load() {
        Ok(s) => {
            let policies = s.policies();
            let compiled = policies.iter().filter(|p| p.compiled).count();
            let templates = policies.iter().filter(|p| p.template).count();
            println!(
                "ok: {} policies ({compiled} compiled from roles.toml, {templates} templates), version {}",
                policies.len(),
                s.version()
            );
            // The management operations the folder enables, each with the action deciding it.
            let operations = s.model().map(|m| &m.operations);
            match operations {
                Some(ops) if !ops.is_empty() => {
                    println!("operations ({}):", ops.len());
                    for (op, action) in ops {
                        println!("  {op} -> {}", action.value);
                    }
                }
                _ => println!("operations: none (the management API refuses every call)"),
            }
            EXIT_OK
        }
        Err(code) => code,
    }
}
