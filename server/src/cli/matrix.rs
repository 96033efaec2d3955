//! `portcullis matrix`: the effective role × feature matrix per account type.

use clap::{Args, ValueEnum};
use portcullis_engine::matrix::{Format, Matrix};

use super::{FolderArgs, EXIT_ERROR, EXIT_OK};

/// Output formats of `portcullis matrix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MatrixFormat {
    /// Aligned text.
    #[default]
    Table,
    /// Markdown tables.
    Markdown,
    /// CSV: `account_type,role,feature,access`.
    Csv,
    /// A standalone HTML page.
    Html,
    /// JSON.
    Json,
}

/// Arguments of `portcullis matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    folder: FolderArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: MatrixFormat,
}

pub fn run(a: MatrixArgs) -> u8 {
    let snapshot = match a.folder.load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(model) = snapshot.model() else {
        eprintln!("error: the folder has no roles.toml, so it has no matrix");
        return EXIT_ERROR;
    };
    let format = match a.format {
        MatrixFormat::Table => Format::Table,
        MatrixFormat::Markdown => Format::Markdown,
        MatrixFormat::Csv => Format::Csv,
        MatrixFormat::Html => Format::Html,
        MatrixFormat::Json => Format::Json,
    };
    print!("{}", Matrix::of(model).render(format));
    EXIT_OK
}
