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
    /// Prove, per action and for every request (cvc5), whether the edit widened, narrowed or
    /// kept the rights, with a counterexample for each change.
    #[arg(long)]
    prove: bool,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t)]
    error_format: ErrorFormat,
}

/// Writes `folder` as of `rev` into `dest` with `git archive`.
pub(super) fn checkout(folder: &Path, rev: &str, dest: &Path) -> Result<PathBuf, String> {
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
    let rights = if a.prove {
        let proved = super::migrate::block_on_value(async {
            portcullis_server::verify::Prover::start()?
                .compare(&old, &new)
                .await
        });
        match proved {
            Some(Ok(changes)) => Some(changes),
            Some(Err(e)) => {
                eprintln!("error: {e}");
                return EXIT_ERROR;
            }
            None => return EXIT_ERROR,
        }
    } else {
        None
    };
    let changed_rights = rights
        .as_ref()
        .is_some_and(|r| r.iter().any(|c| c.widened.is_some() || c.narrowed.is_some()));
    match a.format {
        DiffFormat::Human => {
            print!("{}", d.render());
            if let Some(r) = &rights {
                print!("{}", render_rights(r));
            }
        }
        DiffFormat::Json => {
            let out = match &rights {
                Some(r) => serde_json::json!({ "diff": d, "rights": r }),
                None => serde_json::to_value(&d).unwrap_or_default(),
            };
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
    }
    if a.exit_code && (!d.is_empty() || changed_rights) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// The proved changes of rights, each with its counterexample as a fixture file of the new
/// folder.
fn render_rights(changes: &[portcullis_server::verify::ActionChange]) -> String {
    let mut out = String::from("rights, proved for every request:\n");
    let mut kept = 0;
    for c in changes {
        for (what, example) in [("widened", &c.widened), ("narrowed", &c.narrowed)] {
            let Some(x) = example else { continue };
            out.push_str(&format!(
                "  {what:<9}{}: {} {} {} is now {}\n",
                c.action, x.principal, x.action, x.resource, x.decision
            ));
            for line in x.fixture(&format!("{} {what}", c.action)).lines() {
                out.push_str(&format!("    | {line}\n"));
            }
        }
        if c.widened.is_none() && c.narrowed.is_none() {
            kept += 1;
        }
    }
    let changed = changes.len() - kept;
    out.push_str(&format!("  {changed} actions changed, {kept} kept\n"));
    out
}
