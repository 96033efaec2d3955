//! Command-line interface: one module per subcommand; doc comments are the help text.

mod authorize;
mod backup;
mod check;
mod diff;
mod explain;
mod matrix;
mod migrate;
mod schema;
mod serve;
mod test;
mod users;
mod verify;
mod what_can;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_engine::{Diagnostics, Snapshot};

/// Exit code: success (allow, all tests passed, folder valid).
pub const EXIT_OK: u8 = 0;
/// Exit code: a test case failed or the decision is deny.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage, or the folder or request does not load.
pub const EXIT_ERROR: u8 = 2;

/// Portcullis: authorization for customer portals, declared in policy folders.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a policy folder: roles.toml, the Cedar schema and every .cedar file.
    Check(check::CheckArgs),
    /// Run the fixture files of a policy folder and report coverage.
    Test(test::TestArgs),
    /// Decide one request from flags or a JSON file.
    Authorize(authorize::AuthorizeArgs),
    /// Render the effective role × feature matrix of a folder.
    Matrix(matrix::MatrixArgs),
    /// Write the JSON Schemas of the TOML formats.
    Schema(schema::SchemaArgs),
    /// Explain a decision: the deciding policies, or for a default deny the nearest permits.
    Explain(explain::ExplainArgs),
    /// List the actions and features a principal is allowed on a resource.
    WhatCan(what_can::WhatCanArgs),
    /// Show every matrix cell and fixture outcome that differs between two folders or revisions.
    Diff(diff::DiffArgs),
    /// Prove the folder's properties for every request (cvc5), with counterexamples as fixtures.
    Verify(verify::VerifyArgs),
    /// Serve decisions over HTTP, reloading the policy folder as it changes.
    Serve(Box<serve::ServeArgs>),
    /// Apply the user store's pending migrations.
    Migrate(migrate::MigrateArgs),
    /// Bootstrap users: create the first owner or admin with an API key, manage API keys.
    Users(users::UsersArgs),
    /// Copy the SQLite user store to a new file, online and consistent.
    Backup(backup::BackupArgs),
}

impl Cli {
    /// Runs the command and returns its exit code.
    pub fn run(self) -> u8 {
        match self.command {
            Command::Check(a) => check::run(a),
            Command::Test(a) => test::run(a),
            Command::Authorize(a) => authorize::run(a),
            Command::Matrix(a) => matrix::run(a),
            Command::Schema(a) => schema::run(a),
            Command::Explain(a) => explain::run(a),
            Command::WhatCan(a) => what_can::run(a),
            Command::Diff(a) => diff::run(a),
            Command::Verify(a) => verify::run(a),
            Command::Serve(a) => serve::run(*a),
            Command::Migrate(a) => migrate::run(a),
            Command::Users(a) => users::run(a),
            Command::Backup(a) => backup::run(a),
        }
    }
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ErrorFormat {
    /// `file:line:col`, the line and a caret.
    #[default]
    Human,
    /// A JSON array of diagnostics.
    Json,
}

/// The policy folder and how to report its problems.
#[derive(Debug, Clone, Args)]
pub struct FolderArgs {
    /// The policy folder.
    #[arg(default_value = "policies")]
    pub folder: PathBuf,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t)]
    pub error_format: ErrorFormat,
}

impl FolderArgs {
    /// Loads the folder, printing diagnostics (errors, or warnings on success) to stderr.
    pub fn load(&self) -> Result<Snapshot, u8> {
        match portcullis_engine::load(&self.folder) {
            Ok(s) => {
                if !s.warnings().is_empty() && self.error_format == ErrorFormat::Human {
                    eprint!("{}", self.render(s.warnings()));
                }
                Ok(s)
            }
            Err(d) => {
                eprint!("{}", self.render(&d));
                Err(EXIT_ERROR)
            }
        }
    }

    /// Renders diagnostics in the chosen format.
    pub fn render(&self, d: &Diagnostics) -> String {
        let root = root_name(&self.folder);
        match self.error_format {
            ErrorFormat::Human => d.render_human(&root),
            ErrorFormat::Json => d.render_json(&root) + "\n",
        }
    }
}

/// The folder as the user named it, for diagnostics.
pub fn root_name(p: &Path) -> String {
    p.to_string_lossy().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
