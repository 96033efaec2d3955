//! `portcullis backup`: an online, consistent copy of the SQLite user store.

use std::path::PathBuf;

use clap::Args;

use super::migrate::{block_on, DatabaseArgs};
use super::{EXIT_ERROR, EXIT_OK};

/// Arguments of `portcullis backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// The new backup file (it must not exist).
    #[arg(long)]
    to: PathBuf,
}

/// Writes the backup, or says why not.
pub fn run(a: BackupArgs) -> u8 {
    let url = a.db.url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        eprintln!(
            "error: `portcullis backup` copies a SQLite store; back up PostgreSQL with `pg_dump -Fc` \
             and restore with `pg_restore` (docs/deploy.md, \"Backups\")"
        );
        return EXIT_ERROR;
    }
    let path = PathBuf::from(
        url.strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(&url),
    );
    block_on(async move {
        match portcullis_store::backup(&path, &a.to).await {
            Ok(s) => {
                println!(
                    "ok: wrote `{}`: {} companies, {} users, {} visitor grants, {} audit entries \
                     ({} sessions, links and passkey ceremonies in progress left out)",
                    a.to.display(),
                    s.companies,
                    s.users,
                    s.grants,
                    s.audit,
                    s.left_out
                );
                let mut key = path.clone().into_os_string();
                key.push(".key");
                println!(
                    "note: the sealing key of TOTP secrets (`{}`, or `secret_key_file`) is not in the \
                     backup; keep a copy of it apart from the backup, or a restored store cannot check \
                     second factors",
                    PathBuf::from(key).display()
                );
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_ERROR
            }
        }
    })
}
