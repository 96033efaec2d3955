//! `portcullis schema`: write the JSON Schemas of `roles.toml` and the fixture files.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};

/// Arguments of `portcullis schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Folder to write them to.
    #[arg(long, default_value = "schema")]
    out: PathBuf,
}

pub fn run(a: SchemaArgs) -> u8 {
    if let Err(e) = std::fs::create_dir_all(&a.out) {
        eprintln!("error: cannot create `{}`: {e}", a.out.display());
        return EXIT_ERROR;
    }
    for (name, text) in portcullis_engine::schemas::all() {
        let path = a.out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return EXIT_ERROR;
        }
        println!("wrote {}", path.display());
    }
    EXIT_OK
}
