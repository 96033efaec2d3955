//! `portcullis diff OLD NEW`: every matrix cell and fixture outcome that an edit changes.
//! OLD and NEW are two folders, or, with `--git`, two revisions of one folder in a git
//! repository. With `--exit-code`, exit 1 when anything changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, ValueEnum};
use portcullis_engine::diff;

use super::{ErrorFormat, FolderArgs, EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Output formats of `portcullis diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DiffFormat {
    /// Lines of text.
    #[default]
    Human,
    /// JSON.
    Json,
}

/// Arguments of `portcullis diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old folder, or with `--git` the old revision.
    old: String,
    /// The new folder, or with `--git` the new revision (`WORKTREE` for the files on disk).
    new: String,
    /// Compare two git revisions of this folder.
    #[arg(long, value_name = "FOLDER")]
    git: Option<PathBuf>,
    /// Exit 1 when anything changed.
    #[arg(long)]
    exit_code: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: DiffFormat,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t)]
    error_format: ErrorFormat,
}

/// Writes `folder` as of `rev` into `dest` with `git archive`.
fn checkout(folder: &Path, rev: &str, dest: &Path) -> Result<PathBuf, String> {
    if rev == "WORKTREE" {
        return Ok(folder.to_path_buf());
    }
    let dir = if folder.is_dir() { folder } else { Path::new(".") };
    let top = Command::new("git")
        .args(["rev-parse", "--show-prefix"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !top.status.success() {
        return Err(format!("`{}` is not inside a git repository", folder.display()));
    }
    let prefix = String::from_utf8_lossy(&top.stdout)
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let archive = Command::new("git")
        .args(["archive", "--format=tar", rev])
        .arg(if prefix.is_empty() {
            ".".to_owned()
        } else {
            format!(":/{prefix}")
        })
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !archive.status.success() {
        return Err(format!(
            "git archive {rev}: {}",
            String::from_utf8_lossy(&archive.stderr).trim()
        ));
    }
    std::fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    let tar_path = dest.join("folder.tar");
    std::fs::write(&tar_path, &archive.stdout).map_err(|e| e.to_string())?;
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .current_dir(dest)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !untar.success() {
        return Err("tar failed".to_owned());
    }
    // Run inside the folder, git archive writes paths relative to it.
    Ok(dest.to_path_buf())
}

pub fn run(a: DiffArgs) -> u8 {
    let scratch = std::env::temp_dir().join(format!("portcullis-diff-{}", std::process::id()));
    let folders = match &a.git {
        Some(folder) => checkout(folder, &a.old, &scratch.join("old"))
            .and_then(|o| checkout(folder, &a.new, &scratch.join("new")).map(|n| (o, n))),
        None => Ok((PathBuf::from(&a.old), PathBuf::from(&a.new))),
    };
    let code = match folders {
        Ok((old, new)) => compare(&a, old, new),
        Err(m) => {
            eprintln!("error: {m}");
            EXIT_ERROR
        }
    };
    let _ = std::fs::remove_dir_all(&scratch);
    code
}

fn compare(a: &DiffArgs, old: PathBuf, new: PathBuf) -> u8 {
    let load = |folder: PathBuf| {
        FolderArgs {
            folder,
            error_format: a.error_format,
        }
        .load()
    };
    let (old, new) = match (load(old), load(new)) {
        (Ok(o), Ok(n)) => (o, n),
        _ => return EXIT_ERROR,
    };
    let d = diff::compare(&old, &new);
    match a.format {
        DiffFormat::Human => print!("{}", d.render()),
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default()),
    }
    if a.exit_code && !d.is_empty() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
