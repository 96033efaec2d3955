//! `portcullis migrate`: applies the user store's pending migrations (SQLite or PostgreSQL).

use clap::Args;

use super::{EXIT_ERROR, EXIT_OK};

/// The user store a command works on.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The user store: `postgres://…` or a SQLite file [default: `database_url` of
    /// portcullis.toml, else portcullis.db].
    #[arg(long, env = "PORTCULLIS_DATABASE_URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    /// The flag, the environment, `portcullis.toml`, or the default, in that order.
    pub fn url(&self) -> String {
        if let Some(u) = &self.database_url {
            return u.clone();
        }
        let file = std::path::Path::new(portcullis_server::config::DEFAULT_CONFIG_FILE);
        file.is_file()
            .then(|| {
                portcullis_server::config::Layer::from_file(file)
                    .ok()?
                    .settings()
                    .ok()
            })
            .flatten()
            .map_or_else(
                || portcullis_server::config::DEFAULT_DATABASE.to_owned(),
                |s| s.database_url,
            )
    }
}

/// Arguments of `portcullis migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

/// Runs `f` on a fresh current-thread runtime; `None` (said on stderr) when none starts.
pub fn block_on_value<T, F: std::future::Future<Output = T>>(f: F) -> Option<T> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => Some(rt.block_on(f)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

/// Runs `f` on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future<Output = u8>>(f: F) -> u8 {
    block_on_value(f).unwrap_or(EXIT_ERROR)
}

pub fn run(a: MigrateArgs) -> u8 {
    block_on(async move {
        let url = a.db.url();
        match portcullis_server::manage::open_store(&url).await {
            Ok((store, _)) => match store.version().await {
                Ok(v) => {
                    println!("ok: `{url}` is migrated (change version {v})");
                    EXIT_OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_ERROR
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_ERROR
            }
        }
    })
}
