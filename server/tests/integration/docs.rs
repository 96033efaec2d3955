//! Documentation that cannot drift: every command of `README.md` and of each example's README
//! runs, and its output is compared with the output the text shows.
//!
//! Each file is one bash session in a temp copy of `policies/` and `examples/`, committed to a
//! fresh git repository as branch `main` (nothing in the checkout changes), run block by block
//! as a reader would type it, with three stand-ins:
//! `cargo run … -- ARGS` and `portcullis ARGS` run the built binary; `… serve …` starts it in the
//! background on a free port instead of `127.0.0.1:8180` (and returns once it serves); `curl`
//! sends what names `localhost:8180` to that port. `/tmp/` in a command becomes the session's
//! temp folder.
//!
//! What is compared:
//! - in a `sh` block, the `# ` comment lines right after a command are its output (stdout and
//!   stderr): the same text, where `...` stands for any text and a note after two or more spaces
//!   in parentheses is not output (`(5 times)` repeats the line);
//! - in a plain block of `$ command` lines, the lines after each command are its output: a JSON
//!   document compared as JSON, else as text, as above;
//! - a `json` block is a request body: it is sent to `POST /v1/authorize` of the session's
//!   server and must answer 200 (`[ ... ]` in it stands for elided items, sent as `[]`).
//!
//! A command's exit status must be 0, 1 when its output starts with `deny` and not 0 when it
//! starts with `error`. Volatile values are masked on both sides, narrowly: `version` and
//! `decision_id` in JSON, the closing `in N.N s` of `portcullis verify`, the two versions of
//! `portcullis diff`'s `policy version A -> B`. Ids, tokens and times are `...` in the text.
//!
//! A block after `<!-- docs-test: skip (reason) -->`, and the commands of `SKIPPED`, are not
//! run; the test prints them with their reasons.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::copy_dir;
use crate::procs::BIN;

/// The documents this test runs, relative to the repository root. `docs/deploy.md` is not
/// among them: its commands install and run the service as root under systemd and HAProxy
/// (`deploy/run.sh` tests that setup).
const FILES: &[&str] = &[
    "README.md",
    "examples/customs-portal/README.md",
    "examples/forwarding-portal/README.md",
    "examples/load-planner/README.md",
    "examples/service-portal/README.md",
    "examples/shipping-platform/README.md",
];

/// Commands that are not run, by the start of their text, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    (
        "cargo test --workspace",
        "runs the whole test suite, this test included",
    ),
    (
        "portcullis diff policies edited --prove",
        "needs an edited copy of the folder; its output is an example",
    ),
    (
        "portcullis verify policies",
        "the folder after the edit the text describes; proving takes 20-30 s here; verify.rs tests it",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fenced code block.
#[derive(Debug)]
struct Block {
    line: usize,
    info: String,
    body: Vec<String>,
    skip: Option<String>,
}

/// The fenced blocks of a markdown text, with the skip mark before each.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut last_text = String::new();
    // The block being read, with the indentation of its fence.
    let mut open: Option<(usize, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let skip = last_text
                        .trim()
                        .strip_prefix("<!-- docs-test: skip (")
                        .and_then(|r| r.strip_suffix(") -->"))
                        .map(str::to_owned);
                    let block = Block {
                        line: i + 1,
                        info: info.trim().to_owned(),
                        body: Vec::new(),
                        skip,
                    };
                    open = Some((indent, block));
                } else if !line.trim().is_empty() {
                    last_text = line.to_owned();
                }
            }
            Some((fence, mut block)) => {
                if trimmed == "```" {
                    out.push(block);
                    last_text.clear();
                } else {
                    block
                        .body
                        .push(line.get(fence.min(indent)..).unwrap_or("").to_owned());
                    open = Some((fence, block));
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    out
}

/// One command of a document and what the text says it prints.
#[derive(Debug)]
struct Step {
    /// `file:line` of the command.
    at: String,
    cmd: String,
    expected: Option<String>,
    /// A JSON response is compared as JSON.
    json: bool,
}

/// Whether bash reads `text` as complete commands.
fn complete(text: &str) -> bool {
    if text.trim_end().ends_with('\\') {
        return false;
    }
    Command::new("bash")
        .args(["-n", "-c", text])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The steps of one document; skipped commands are listed in `skipped` with their reason.
fn steps(file: &str, text: &str, scratch: &Path, skipped: &mut Vec<String>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for (n, block) in blocks(text).into_iter().enumerate() {
        let at = |line: usize| format!("{file}:{line}");
        let first = out.len();
        match block.info.as_str() {
            "sh" => {
                let mut buf: Vec<String> = Vec::new();
                let mut start = 0;
                for (i, line) in block.body.iter().enumerate() {
                    if buf.is_empty() {
                        if line.trim().is_empty() {
                            continue;
                        }
                        if let Some(c) = line.strip_prefix('#') {
                            assert!(
                                out.len() > first,
                                "{}: an output line before any command",
                                at(block.line + 1 + i)
                            );
                            let c = c.strip_prefix(' ').unwrap_or(c);
                            let last = out.last_mut().unwrap();
                            let e = last.expected.get_or_insert_with(String::new);
                            if !e.is_empty() {
                                e.push('\n');
                            }
                            e.push_str(c);
                            continue;
                        }
                        start = block.line + 1 + i;
                    }
                    buf.push(line.clone());
                    let cmd = buf.join("\n");
                    if complete(&cmd) {
                        out.push(Step {
                            at: at(start),
                            cmd,
                            expected: None,
                            json: false,
                        });
                        buf.clear();
                    }
                }
                assert!(buf.is_empty(), "{}: an incomplete command", at(start));
            }
            "" if block.body.first().is_some_and(|l| l.starts_with("$ ")) => {
                let mut i = 0;
                while i < block.body.len() {
                    let line = &block.body[i];
                    let Some(first_line) = line.strip_prefix("$ ") else {
                        unreachable!("{}: output before a command", at(block.line + 1 + i))
                    };
                    let start = block.line + 1 + i;
                    let mut cmd = first_line.to_owned();
                    while cmd.ends_with('\\') {
                        i += 1;
                        cmd.push('\n');
                        cmd.push_str(&block.body[i]);
                    }
                    i += 1;
                    let mut expected = Vec::new();
                    while i < block.body.len() && !block.body[i].starts_with("$ ") {
                        expected.push(block.body[i].clone());
                        i += 1;
                    }
                    let expected = expected.join("\n").trim_end().to_owned();
                    let json = serde_json::from_str::<Value>(&expected).is_ok();
                    out.push(Step {
                        at: at(start),
                        cmd,
                        expected: Some(expected),
                        json,
                    });
                }
            }
            "json" => {
                let body = block.body.join("\n").replace("[ ... ]", "[]");
                let sample: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| unreachable!("{}: not JSON: {e}", at(block.line)));
                let name = format!("sample-{n}.json");
                std::fs::write(scratch.join(&name), serde_json::to_vec(&sample).unwrap()).unwrap();
                out.push(Step {
                    at: at(block.line),
                    cmd: format!(
                        "curl -s -w ' %{{http_code}}\\n' localhost:8180/v1/authorize \
                         -H 'content-type: application/json' --data-binary @../{name}"
                    ),
                    // Any answer, with the status 200 (a failure shows the answer).
                    expected: Some("... 200".to_owned()),
                    json: false,
                });
            }
            _ => {}
        }
        for step in out.drain(first..).collect::<Vec<_>>() {
            let listed = SKIPPED.iter().find(|(prefix, _)| step.cmd.starts_with(prefix));
            let reason = block.skip.as_deref().or(listed.map(|(_, r)| *r));
            match reason {
                Some(reason) => {
                    skipped.push(format!("{}: `{}`: {reason}", step.at, first_line(&step.cmd)));
                }
                None => out.push(step),
            }
        }
    }
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The session's prelude: the stand-ins for `cargo run`, `portcullis`, `serve` and `curl`.
fn prelude(tmp: &Path) -> String {
    format!(
        r#"__BIN='{bin}'
__T='{tmp}'
__ADDR=127.0.0.1:1
__PID=
trap '[ -n "$__PID" ] && kill "$__PID" 2>/dev/null' EXIT
cargo() {{
  while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
  [ $# -gt 0 ] || {{ echo "docs test: not a cargo run" >&2; return 99; }}
  shift
  portcullis "$@"
}}
portcullis() {{
  if [ "$1" = serve ]; then __serve "$@"; else "$__BIN" "$@"; fi
}}
__serve() {{
  [ -n "$__PID" ] && kill "$__PID" 2>/dev/null
  PORTCULLIS_LOG=warn "$__BIN" "$@" --listen 127.0.0.1:0 >"$__T/serve.log" 2>&1 </dev/null &
  __PID=$!
  for __i in $(seq 400); do
    __ADDR=$(sed -n 's#^portcullis: serving on http://##p' "$__T/serve.log")
    [ -n "$__ADDR" ] && return 0
    kill -0 "$__PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$__T/serve.log" >&2
  return 1
}}
curl() {{ command curl --max-time 20 "${{@//localhost:8180/$__ADDR}}"; }}
"#,
        bin = BIN,
        tmp = tmp.display()
    )
}

/// Runs the steps of one document in one bash session; the output and status of each.
fn run_session(file: &str, steps: &[Step], dir: &Path) -> Vec<(String, i32)> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut script = prelude(dir);
    for (i, step) in steps.iter().enumerate() {
        let cmd = step.cmd.replace("/tmp/", &format!("{}/", dir.display()));
        let file = out.join(i.to_string());
        writeln!(
            script,
            "{{\n{cmd}\n}} >'{f}' 2>&1 </dev/null; echo $? >'{f}.rc'",
            f = file.display()
        )
        .unwrap();
    }
    let path = dir.join("session.sh");
    std::fs::write(&path, script).unwrap();
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "bash"]).arg(&path).current_dir(dir.join("repo"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "{file}: the session failed: {status}");
    (0..steps.len())
        .map(|i| {
            let f = out.join(i.to_string());
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let rc = std::fs::read_to_string(f.with_extension("rc"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(-1);
            (text, rc)
        })
        .collect()
}

/// The expected text without notes: `(N times)` repeats its line.
fn without_notes(expected: &str) -> String {
    let mut lines = Vec::new();
    for line in expected.lines() {
        let (text, note) = match line.trim_end().rfind("  (") {
            Some(at) if line.trim_end().ends_with(')') => (
                line[..at].trim_end(),
                Some(&line.trim_end()[at + 3..line.trim_end().len() - 1]),
            ),
            _ => (line.trim_end(), None),
        };
        let times = note
            .and_then(|n| n.strip_suffix(" times"))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(1);
        for _ in 0..times {
            lines.push(text.to_owned());
        }
    }
    lines.join("\n")
}

/// `pattern` with `...` standing for any text (spaces beside it ignored) matches all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let n = parts.len();
    let part = |i: usize| {
        let mut p = parts[i];
        if i > 0 {
            p = p.trim_start_matches(' ');
        }
        if i + 1 < n {
            p = p.trim_end_matches(' ');
        }
        p
    };
    if n == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(part(0)) else {
        return false;
    };
    for i in 1..n - 1 {
        match rest.find(part(i)) {
            Some(at) => rest = &rest[at + part(i).len()..],
            None => return false,
        }
    }
    rest.ends_with(part(n - 1))
}

/// A policy version: 16 hex digits.
fn is_version(s: &str) -> bool {
    s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Masks `in 4.3 s` at the end of a line (the time `portcullis verify` took) and the two
/// versions of `policy version OLD -> NEW` (`portcullis diff`: any edit of the folder changes
/// them).
fn mask_text(s: &str) -> String {
    s.lines()
        .map(|l| {
            if let Some((old, new)) = l
                .strip_prefix("policy version ")
                .and_then(|r| r.split_once(" -> "))
            {
                if is_version(old) && is_version(new) {
                    return "policy version <version> -> <version>".to_owned();
                }
            }
            match l.rfind(" in ") {
                Some(at)
                    if l.ends_with(" s")
                        && l[at + 4..l.len() - 2]
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '.') =>
                {
                    format!("{} in <time> s", &l[..at])
                }
                _ => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Masks `version` (a 16-digit hex policy version) and `decision_id` (a UUID) in JSON.
fn mask_json(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let volatile = match (k.as_str(), x.as_str()) {
                    ("version", Some(s)) => is_version(s),
                    ("decision_id", Some(s)) => s.len() == 36,
                    _ => false,
                };
                if volatile {
                    *x = Value::String("<masked>".to_owned());
                } else {
                    mask_json(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// What is wrong with one step's result, if anything.
fn check(step: &Step, output: &str, rc: i32) -> Option<String> {
    let output = output.trim_end();
    let expected = step.expected.as_deref().map(without_notes);
    let want_rc = match expected.as_deref() {
        Some(e) if e.starts_with("deny") => Some(1),
        Some(e) if e.starts_with("error") => None,
        _ => Some(0),
    };
    let rc_ok = match want_rc {
        Some(w) => rc == w,
        None => rc != 0,
    };
    if !rc_ok {
        return Some(format!(
            "exit status {rc} (expected {})\n  output:\n{output}",
            want_rc.map_or("not 0".to_owned(), |w| w.to_string())
        ));
    }
    let expected = expected?;
    let same = if step.json {
        match (
            serde_json::from_str::<Value>(&expected),
            serde_json::from_str::<Value>(output),
        ) {
            (Ok(mut e), Ok(mut o)) => {
                mask_json(&mut e);
                mask_json(&mut o);
                e == o
            }
            _ => false,
        }
    } else {
        glob(&mask_text(&expected), &mask_text(output))
    };
    (!same).then(|| format!("output differs\n  expected:\n{expected}\n  got:\n{output}"))
}

/// Runs one document; its failures and skipped commands.
fn document(file: &str) -> (usize, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    copy_dir(&root().join("policies"), &repo.join("policies"));
    copy_dir(&root().join("examples"), &repo.join("examples"));
    // A reader runs the commands in a clone: `main` holds the folders as they are.
    let git = Command::new("sh")
        .arg("-c")
        .arg(
            "git init -q -b main . && git add -A && \
             git -c user.name=docs -c user.email=docs@invalid commit -q -m docs",
        )
        .current_dir(&repo)
        .status()
        .unwrap();
    assert!(git.success(), "git init of the copy");
    let mut skipped = Vec::new();
    let steps = steps(file, &text, dir.path(), &mut skipped);
    let results = run_session(file, &steps, dir.path());
    let failures = steps
        .iter()
        .zip(&results)
        .filter_map(|(step, (output, rc))| {
            check(step, output, *rc).map(|why| format!("{}: `{}`: {why}", step.at, first_line(&step.cmd)))
        })
        .collect();
    (steps.len(), failures, skipped)
}

#[test]
fn every_command_of_the_documentation_prints_what_the_text_shows() {
    for tool in ["bash", "curl", "jq", "python3", "timeout"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(found, "the documentation's commands need `{tool}`");
    }
    let handles: Vec<_> = FILES
        .iter()
        .map(|f| std::thread::spawn(move || (*f, document(f))))
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        let (file, (ran, failed, skipped)) = h.join().unwrap();
        eprintln!(
            "{file}: {ran} commands and samples run, {} skipped",
            skipped.len()
        );
        for s in &skipped {
            eprintln!("  skipped {s}");
        }
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} documented commands do not do what the text says:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_comparison_is_exact_but_for_ellipses_notes_and_masks() {
    assert!(glob(
        r#"{"id":"a", ... "role":"x" ...} 201"#,
        r#"{"id":"a","b":1,"role":"x","c":2} 201"#
    ));
    assert!(!glob(
        r#"{"id":"a", ... "role":"x" ...} 201"#,
        r#"{"id":"a","role":"y"} 201"#
    ));
    assert!(!glob("allow", "allow\nextra"));
    assert_eq!(without_notes("x 401   (3 times)"), "x 401\nx 401\nx 401");
    assert_eq!(without_notes("otp...   (scan it)"), "otp...");
    assert_eq!(
        mask_text("policy version 6a78cf4980f7a23a -> 6495676472da6759"),
        mask_text("policy version 5780f8914f4de06f -> e99d34498e6cd5a8")
    );
    assert_eq!(
        mask_text("23 proved, 1 refuted in 4.3 s"),
        "23 proved, 1 refuted in <time> s"
    );
    let mut a: Value = serde_json::json!({"version": "b2bc4544501dda4d", "decision": "allow"});
    let mut b: Value = serde_json::json!({"version": "6a78cf4980f7a23a", "decision": "allow"});
    mask_json(&mut a);
    mask_json(&mut b);
    assert_eq!(a, b);
    let mut c: Value = serde_json::json!({"version": "not-a-hash", "decision": "allow"});
    mask_json(&mut c);
    assert_ne!(a, c);
}
